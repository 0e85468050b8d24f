"""Register-blocked micro-kernels written in LLVM IR (Numba `@intrinsic`).

Each micro-kernel computes one MR x NR tile of int32 sums over k from packed panels and stores
it, row-major, into `tile` (MR*NR int32, overwritten):

    tile[r*NR + j] = sum_{s < steps} sum_{t < G} a_grp[s, r][t] * b_grp[s, j][t]   (int32, wraps)

with G products per lane and step: G = 2 for `mk_avx2` (vpmaddwd: int16 x int16, a pair summed
exactly in int32 as long as no pair is (-32768)*(-32768) twice), G = 4 for `mk_vnni512`
(vpdpbusd: u8 x s8, four products summed into int32 without intermediate saturation).
Panels (see kernels.fast_gemm): `apack[a_off + s*MR + r]` is one int32 holding the G values of
row r for step s (lowest lane first); `bpack[b_off + (s*NR + j)*G + t]` is element t of column j.
Both arrays must be 1-D, C-contiguous; offsets and `steps` are checked by the caller.

An intrinsic is only lowered when a jitted function calling it is compiled, so callers must
compile (call) a path only on a host that has its ISA (kernels.cpu).
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

I32 = ir.IntType(32)
I64 = ir.IntType(64)


def _data(context, builder, aty, aval):
    return context.make_array(aty)(context, builder, aval).data


def _emit_tile_loop(builder, a_ptr, b_ptr, steps, tile_ptr, mr, nv, lanes, b_vty, madd):
    """Emit: zero MR*NV accumulators (<lanes x i32>), loop `steps` times over the panels,
    store the accumulators to tile_ptr. b_ptr is a pointer to b_vty; a_ptr to i32."""
    acc_ty = ir.VectorType(I32, lanes)
    zero = ir.Constant(acc_ty, None)
    entry = builder.block
    fn = builder.function
    loop = fn.append_basic_block("mk_loop")
    done = fn.append_basic_block("mk_done")
    builder.cbranch(builder.icmp_signed(">", steps, ir.Constant(I64, 0)), loop, done)

    builder.position_at_end(loop)
    idx = builder.phi(I64, "s")
    accs = [builder.phi(acc_ty) for _ in range(mr * nv)]
    for p in accs:
        p.add_incoming(zero, entry)
    idx.add_incoming(ir.Constant(I64, 0), entry)
    bbase = builder.mul(idx, ir.Constant(I64, nv))
    bvec = [builder.load(builder.gep(b_ptr, [builder.add(bbase, ir.Constant(I64, v))]), align=1)
            for v in range(nv)]
    abase = builder.mul(idx, ir.Constant(I64, mr))
    new = []
    for r in range(mr):
        a32 = builder.load(builder.gep(a_ptr, [builder.add(abase, ir.Constant(I64, r))]), align=4)
        splat = builder.insert_element(ir.Constant(acc_ty, ir.Undefined), a32, ir.Constant(I32, 0))
        splat = builder.shuffle_vector(splat, ir.Constant(acc_ty, ir.Undefined),
                                       ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))
        for v in range(nv):
            new.append(madd(builder, accs[r * nv + v], splat, bvec[v]))
    nxt = builder.add(idx, ir.Constant(I64, 1))
    idx.add_incoming(nxt, builder.block)
    for p, n in zip(accs, new):
        p.add_incoming(n, builder.block)
    builder.cbranch(builder.icmp_signed("<", nxt, steps), loop, done)

    builder.position_at_end(done)
    outs = []
    for i in range(mr * nv):
        ph = builder.phi(acc_ty)
        ph.add_incoming(zero, entry)
        ph.add_incoming(new[i], loop)
        outs.append(ph)
    tvec = builder.bitcast(tile_ptr, acc_ty.as_pointer())
    for i, val in enumerate(outs):
        builder.store(val, builder.gep(tvec, [ir.Constant(I64, i)]), align=4)


def _pmaddwd(builder, acc, a_splat, b16):
    """acc + vpmaddwd(a, b): int16 pairs multiplied and summed into int32 lanes."""
    v16 = ir.VectorType(ir.IntType(16), 16)
    fnty = ir.FunctionType(ir.VectorType(I32, 8), [v16, v16])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pmadd.wd")
    prod = builder.call(fn, [builder.bitcast(a_splat, v16), b16])
    return builder.add(acc, prod)


def _vpdpbusd512(builder, acc, a_splat, b8):
    """vpdpbusd zmm: acc + sum of four u8(a) x s8(b) products per int32 lane, no saturation."""
    v16 = ir.VectorType(I32, 16)
    fnty = ir.FunctionType(v16, [v16, v16, v16])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
    return builder.call(fn, [acc, a_splat, builder.bitcast(b8, v16)])


def _make_microkernel(mr, nv, lanes, b_elem_bits, madd):
    b_vty = ir.VectorType(ir.IntType(b_elem_bits), lanes * 32 // b_elem_bits)

    @intrinsic
    def mk(typingctx, apack, a_off, bpack, b_off, steps, tile):
        sig = types.void(apack, a_off, bpack, b_off, steps, tile)

        def codegen(context, builder, signature, args):
            ap, ao, bp, bo, st, tl = args
            a_ptr = builder.gep(_data(context, builder, signature.args[0], ap), [ao])
            b_raw = builder.gep(_data(context, builder, signature.args[2], bp), [bo])
            b_ptr = builder.bitcast(b_raw, b_vty.as_pointer())
            t_ptr = _data(context, builder, signature.args[5], tl)
            _emit_tile_loop(builder, a_ptr, b_ptr, st, t_ptr, mr, nv, lanes, b_vty, madd)
            return context.get_dummy_value()
        return sig, codegen
    return mk


AVX2_MR, AVX2_NR = 6, 16          # 12 ymm accumulators + 2 B vectors + 1 broadcast
VNNI_MR, VNNI_NR = 6, 32          # 12 zmm accumulators (of 32 registers)

mk_avx2 = _make_microkernel(AVX2_MR, AVX2_NR // 8, 8, 16, _pmaddwd)
mk_vnni512 = _make_microkernel(VNNI_MR, VNNI_NR // 16, 16, 8, _vpdpbusd512)
