"""Register-blocked micro-kernels written in LLVM IR (Numba `@intrinsic`).

Each micro-kernel adds the int32 sums of one MR x NR tile over k from packed panels into a
C tile held in memory (row r at c[c_off + r*ldc], NR int32 each), in registers throughout:

    c[r, j] = start[r, j] + sum_{s < steps} sum_{t < G} a_grp[s, r][t] * b_grp[s, j][t]   (int32, wraps)

where start[r, j] = init[i_off + j] (one row for every r) when `first` != 0, else c[r, j] itself
(the tile is loaded once, accumulated in registers, stored once; nothing is added afterwards),
with G products per lane and step: G = 2 for `mk_avx2` (vpmaddwd: int16 x int16, a pair summed
exactly in int32 as long as no pair is (-32768)*(-32768) twice), G = 4 for `mk_vnni512`
(vpdpbusd: u8 x s8, four products summed into int32 without intermediate saturation).
Panels (see kernels.fast_gemm): A is read as int32 words, word a_off + r*lda + s holding the G
lanes of row r for step s (lowest lane first; apack of any dtype, its bytes reinterpreted, so a
row-major uint8 A with K % 4 == 0 is used in place); `bpack[b_off + (s*NR + j)*G + t]` is element
t of column j. c and init are int32 memory (c of any rank, its data pointer used: row r of the
tile at word c_off + r*ldc). Every offset, `steps`, `lda` and `ldc` (int64, in int32 words) is
checked by the caller: nothing is bounds-checked here.

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


def _row_vectors(builder, base, stride, mr, nv, acc_ty):
    """The MR*NV <lanes x i32> vectors at base + r*stride + v*lanes (i32 elements, unaligned)."""
    out = []
    for r in range(mr):
        row = builder.gep(base, [builder.mul(stride, ir.Constant(I64, r))])
        vec = builder.bitcast(row, acc_ty.as_pointer())
        for v in range(nv):
            out.append(builder.load(builder.gep(vec, [ir.Constant(I64, v)]), align=4))
    return out


def _emit_tile_loop(builder, a_ptr, lda, b_ptr, steps, c_ptr, ldc, init_ptr, first, mr, nv, lanes, madd):
    """Emit: load MR*NV accumulators (<lanes x i32>) from the C tile (c_ptr, row stride ldc),
    or from the row init_ptr for every row when `first` != 0; loop `steps` times over the
    panels (A row r at a_ptr + r*lda, i32 words); store the accumulators back to the C tile."""
    acc_ty = ir.VectorType(I32, lanes)
    is_first = builder.icmp_signed("!=", first, ir.Constant(I64, 0))
    base = builder.select(is_first, init_ptr, c_ptr)
    stride = builder.select(is_first, ir.Constant(I64, 0), ldc)
    start = _row_vectors(builder, base, stride, mr, nv, acc_ty)
    a_rows = [builder.gep(a_ptr, [builder.mul(lda, ir.Constant(I64, r))]) for r in range(mr)]
    entry = builder.block
    fn = builder.function
    loop = fn.append_basic_block("mk_loop")
    done = fn.append_basic_block("mk_done")
    builder.cbranch(builder.icmp_signed(">", steps, ir.Constant(I64, 0)), loop, done)

    builder.position_at_end(loop)
    idx = builder.phi(I64, "s")
    accs = [builder.phi(acc_ty) for _ in range(mr * nv)]
    for p, v0 in zip(accs, start):
        p.add_incoming(v0, entry)
    idx.add_incoming(ir.Constant(I64, 0), entry)
    bbase = builder.mul(idx, ir.Constant(I64, nv))
    bvec = [builder.load(builder.gep(b_ptr, [builder.add(bbase, ir.Constant(I64, v))]), align=1)
            for v in range(nv)]
    new = []
    for r in range(mr):
        a32 = builder.load(builder.gep(a_rows[r], [idx]), align=1)
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
    final = []
    for v0, v1 in zip(start, new):
        ph = builder.phi(acc_ty)
        ph.add_incoming(v0, entry)
        ph.add_incoming(v1, loop)
        final.append(ph)
    for r in range(mr):
        row = builder.bitcast(builder.gep(c_ptr, [builder.mul(ldc, ir.Constant(I64, r))]), acc_ty.as_pointer())
        for v in range(nv):
            builder.store(final[r * nv + v], builder.gep(row, [ir.Constant(I64, v)]), align=4)


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
    def mk(typingctx, apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first):
        sig = types.void(apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first)

        def codegen(context, builder, signature, args):
            ty = signature.args
            ap, ao, ld_a, bp, bo, st, cc, co, ld, ini, io, fi = (
                v if isinstance(t, types.Array) else context.cast(builder, v, t, types.int64)
                for v, t in zip(args, ty))
            i32p = I32.as_pointer()
            a_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[0], ap), i32p), [ao])
            b_raw = builder.gep(_data(context, builder, ty[3], bp), [bo])
            b_ptr = builder.bitcast(b_raw, b_vty.as_pointer())
            c_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[6], cc), i32p), [co])
            i_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[9], ini), i32p), [io])
            _emit_tile_loop(builder, a_ptr, ld_a, b_ptr, st, c_ptr, ld, i_ptr, fi, mr, nv, lanes, madd)
            return context.get_dummy_value()
        return sig, codegen
    return mk


AVX2_MR, AVX2_NR = 6, 16          # 12 ymm accumulators + 2 B vectors + 1 broadcast
VNNI_MR, VNNI_NR = 6, 32          # 12 zmm accumulators (of 32 registers)

mk_avx2 = _make_microkernel(AVX2_MR, AVX2_NR // 8, 8, 16, _pmaddwd)
mk_vnni512 = _make_microkernel(VNNI_MR, VNNI_NR // 16, 16, 8, _vpdpbusd512)
