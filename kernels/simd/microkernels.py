"""Register-blocked micro-kernels written in LLVM IR (Numba `@intrinsic`).

Each micro-kernel adds the int32 sums of one MR x NR tile over k from packed panels into a
C tile held in memory (row r at c[c_off + r*ldc], NR int32 each), in registers throughout:

    c[r, j] = start[r, j] + sum_{s < steps} sum_{t < G} a_grp[s, r][t] * b_grp[s, j][t]   (int32, wraps)

where start[r, j] = init[i_off + j] (one row for every r) when `first` != 0, else c[r, j] itself
(the tile is loaded once, accumulated in registers, stored once; nothing is added afterwards),
with G products per lane and step: G = 2 for `mk_avx2` (vpmaddwd: int16 x int16, a pair summed
exactly in int32 as long as no pair is (-32768)*(-32768) twice), G = 4 for `mk_vnni512`
(vpdpbusd: u8 x s8, four products summed into int32 without intermediate saturation).
Panels (see kernels.simd.packing): A is read as int32 words, word a_off + r*lda + s holding the G
lanes of row r for step s (lowest lane first; apack of any dtype, its bytes reinterpreted, so a
row-major uint8 A with K % 4 == 0 is used in place); `bpack[b_off + (s*NR + j)*G + t]` is element
t of column j. c and init are int32 memory (c of any rank, its data pointer used: row r of the
tile at word c_off + r*ldc). Every offset, `steps`, `lda` and `ldc` (int64, in int32 words) is
checked by the caller: nothing is bounds-checked here.

The requantizing variants (`mk_avx2_q`, `mk_vnni512_q`, `make_microkernel_q`) run the same
k loop for the LAST K block of a GEMM whose output is 8-bit, and never store the int32 sums:
each <lanes x i32> accumulator vector becomes, in registers (ORT's MLAS float requant, as
kernels.requant.requant_float and kernels.simd.drivers.epilogue),

    f = f32(acc)                      sitofp: round to nearest even, as numpy's float32(int32)
    f = f * mult[n]                   float32 multiply (one rounding)
    f = min(max(f, f32(lo - zp)), f32(hi - zp))   ordered compares + selects (f is never NaN)
    q = i8(fptosi(rint(f) + zp))      rint: half to even (vroundps, default MXCSR); the sum is an
                                      exact integer in [lo, hi], so the truncation is exact
                                      for uint8 and int8 outputs alike

and the tile's bytes are stored at dst[m0 + r, n0 + j] for r < M - m0, j < N - n0 only (full
tiles as vector stores, edge tiles through a stack block and a memcpy per valid row).

The AMX micro-kernel (`mk_amx`, `amx_begin`, `amx_end`) computes the same int32 sums with tile
instructions: tdpbusd tC += tA . tB, tA 16 rows x 64 u8 (16 steps of 4), tB 16 rows (steps) x
64 s8 (16 columns x 4), each int32 lane of tC the sum of its 64 u8 x s8 products, wrapping,
with no intermediate saturation (the arithmetic of vpdpbusd). It works on a 2 x 2 block of
16 x 16 C tiles (AMX_MR = AMX_NR = 32) over whole tile steps (16 steps = 64 k; the panels and
A tiles are zero beyond K), reading the VNNI panel layout with NR = 32: a step row of 128 bytes
holds the B rows of both column tiles. Tile shapes are fixed by amx_begin's config (every tile
16 rows x 64 bytes), loaded by the driver on its own thread before any tile instruction.

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


def _emit_tile_sums(builder, a_ptr, lda, b_ptr, steps, c_ptr, ldc, init_ptr, first, mr, nv, lanes, madd,
                    koff_ptr=None, b_step=None, a_bytes=False):
    """Emit: load MR*NV accumulators (<lanes x i32>) from the C tile (c_ptr, row stride ldc),
    or from the row init_ptr for every row when `first` != 0; loop `steps` times over the
    panels (A row r, step s at word a_ptr + r*lda + s, or + koff_ptr[s] (i64) when koff_ptr is
    given: an implicit im2col read straight from an image; the B vectors of step s at
    b_ptr + s*b_step, b_step = NV unless given: a kernel using the first NV vectors of wider
    panel rows; a_bytes: a_ptr is an i8 pointer and lda a byte stride, row r at a_ptr + r*lda,
    its words at + 4*s). Returns the final accumulators, row-major."""
    acc_ty = ir.VectorType(I32, lanes)
    is_first = builder.icmp_signed("!=", first, ir.Constant(I64, 0))
    base = builder.select(is_first, init_ptr, c_ptr)
    stride = builder.select(is_first, ir.Constant(I64, 0), ldc)
    start = _row_vectors(builder, base, stride, mr, nv, acc_ty)
    a_rows = [builder.gep(a_ptr, [builder.mul(lda, ir.Constant(I64, r))]) for r in range(mr)]
    if a_bytes:
        a_rows = [builder.bitcast(row, I32.as_pointer()) for row in a_rows]
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
    bbase = builder.mul(idx, ir.Constant(I64, nv if b_step is None else b_step))
    bvec = [builder.load(builder.gep(b_ptr, [builder.add(bbase, ir.Constant(I64, v))]), align=1)
            for v in range(nv)]
    aidx = idx if koff_ptr is None else builder.load(builder.gep(koff_ptr, [idx]), align=8)
    new = []
    for r in range(mr):
        a32 = builder.load(builder.gep(a_rows[r], [aidx]), align=1)
        splat = _splat(builder, a32, lanes)
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
    return final


def _store_c(builder, final, c_ptr, ldc, mr, nv, lanes):
    """Store the MR*NV int32 accumulators to the C tile (row r at c_ptr + r*ldc, i32 words)."""
    acc_ty = ir.VectorType(I32, lanes)
    for r in range(mr):
        row = builder.bitcast(builder.gep(c_ptr, [builder.mul(ldc, ir.Constant(I64, r))]), acc_ty.as_pointer())
        for v in range(nv):
            builder.store(final[r * nv + v], builder.gep(row, [ir.Constant(I64, v)]), align=4)


def _rint(builder, x):
    """llvm.rint: round to integral in the current mode (round half to even under the default
    MXCSR, as numpy's rint), vroundps imm 4."""
    fnty = ir.FunctionType(x.type, [x.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.rint.v{x.type.count}f32")
    return builder.call(fn, [x])


def _requant_vector(builder, acc, mult, flo, fhi, zp):
    """<lanes x i32> = fptosi(rint(clamp(f32(acc) * mult, flo, fhi))) + zp: sitofp rounds to
    nearest even as numpy's float32(int32); the clamp is an ordered compare + select (the value
    is never NaN: acc and mult are finite); the result is an exact small integer in [lo, hi]."""
    f = builder.fmul(builder.sitofp(acc, mult.type), mult)
    f = builder.select(builder.fcmp_ordered("<", f, flo), flo, f)
    f = builder.select(builder.fcmp_ordered(">", f, fhi), fhi, f)
    return builder.add(builder.fptosi(_rint(builder, f), acc.type), zp)


def _row_bytes(builder, vecs, signed):
    """The NV <lanes x i32> vectors of one tile row (values in the 8-bit range; NV a power of
    two) as one <NR x i8> vector: concatenated, clamped to the dtype's range (a no-op on these
    values, which lets LLVM narrow with saturating packs: vpackssdw + vpacksswb/vpackuswb) and
    truncated."""
    while len(vecs) > 1:
        n = vecs[0].type.count
        both = ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))
        vecs = [builder.shuffle_vector(vecs[i], vecs[i + 1], both) for i in range(0, len(vecs), 2)]
    row = vecs[0]
    for name, bound in (("smax", -128 if signed else 0), ("smin", 127 if signed else 255)):
        fnty = ir.FunctionType(row.type, [row.type, row.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.{name}.v{row.type.count}i32")
        row = builder.call(fn, [row, ir.Constant(row.type, [bound] * row.type.count)])
    return builder.trunc(row, ir.VectorType(ir.IntType(8), row.type.count))


def _splat(builder, value, lanes):
    """<lanes x type> with every lane equal to the scalar value."""
    vty = ir.VectorType(value.type, lanes)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(I32, 0))
    zeros = ir.Constant(ir.VectorType(I32, lanes), [0] * lanes)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def _store_q(builder, final, q_ptr, ldq, rows, cols, m_ptr, rqs_ptr, mr, nv, lanes, signed, masked=False):
    """Requantize the MR*NV accumulators in registers (_requant_vector) and store the bytes of
    rows r < rows, columns j < cols at q_ptr + r*ldq + j (int8 when `signed`, else uint8);
    multipliers m_ptr[j] (j < NR, padded), rqs_ptr = float32 [lo - zp, hi - zp, zp]. A full tile
    stores one <NR x i8> vector per row in place; an edge tile stores each valid row under the
    mask j < cols (`masked`: llvm.masked.store, one AVX-512BW vmovdqu8 per row) or through a
    stack block and one memcpy of `cols` bytes per valid row, so nothing outside the rows x cols
    corner is written."""
    fvec = ir.VectorType(ir.FloatType(), lanes)
    nr = nv * lanes
    flo, fhi, zpf = (_splat(builder, builder.load(builder.gep(rqs_ptr, [ir.Constant(I64, i)])), lanes)
                     for i in range(3))
    zp = builder.fptosi(zpf, ir.VectorType(I32, lanes))
    mvec = builder.bitcast(m_ptr, fvec.as_pointer())
    mults = [builder.load(builder.gep(mvec, [ir.Constant(I64, v)]), align=4) for v in range(nv)]
    rows_q = [_row_bytes(builder, [_requant_vector(builder, final[r * nv + v], mults[v], flo, fhi, zp)
                                   for v in range(nv)], signed) for r in range(mr)]
    _store_tile_rows(builder, rows_q, q_ptr, ldq, rows, cols, mr, nr, masked)


def _store_tile_rows(builder, rows_q, q_ptr, ldq, rows, cols, mr, nr, masked):
    """Store the MR <NR x i8> row vectors of a tile (_store_q's stores)."""
    full = builder.and_(builder.icmp_signed("==", rows, ir.Constant(I64, mr)),
                        builder.icmp_signed("==", cols, ir.Constant(I64, nr)))
    with builder.if_else(full) as (in_place, edge):
        with in_place:
            _store_rows(builder, rows_q, q_ptr, ldq)
        with edge:
            if masked:
                _store_rows_masked(builder, rows_q, q_ptr, ldq, rows, cols)
            else:
                _store_rows_staged(builder, rows_q, q_ptr, ldq, rows, cols)


def _store_rows_staged(builder, rows_q, base, stride, rows, cols):
    """Store row r < rows of the <NR x i8> row vectors at base + r*stride, its bytes j < cols only,
    through a stack block and one memcpy of `cols` bytes per row."""
    mr, nr = len(rows_q), rows_q[0].type.count
    buf = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(8), mr * nr))
    buf = builder.bitcast(buf, ir.IntType(8).as_pointer())
    _store_rows(builder, rows_q, buf, ir.Constant(I64, nr))
    for r in range(mr):
        n = builder.select(builder.icmp_signed(">", rows, ir.Constant(I64, r)), cols, ir.Constant(I64, 0))
        src = builder.gep(buf, [ir.Constant(I64, r * nr)])
        cgutils.raw_memcpy(builder, builder.gep(base, [builder.mul(stride, ir.Constant(I64, r))]), src, n, 1)


def _store_rows_masked(builder, rows_q, base, stride, rows, cols):
    """Store row r < rows of the <NR x i8> row vectors at base + r*stride, its bytes j < cols only
    (llvm.masked.store; the other bytes are not touched)."""
    vty = rows_q[0].type
    n = vty.count
    lane = ir.Constant(ir.VectorType(I64, n), list(range(n)))
    mask = builder.icmp_signed("<", lane, _splat(builder, cols, n))
    fnty = ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), I32, mask.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{n}i8.p0")
    for r, q in enumerate(rows_q):
        with builder.if_then(builder.icmp_signed(">", rows, ir.Constant(I64, r))):
            row = builder.gep(base, [builder.mul(stride, ir.Constant(I64, r))])
            builder.call(fn, [q, builder.bitcast(row, vty.as_pointer()), ir.Constant(I32, 1), mask])


def _store_rows(builder, rows_q, base, stride):
    """Store the <NR x i8> row vectors, row r at base + r*stride (i8 pointer, unaligned)."""
    for r, q in enumerate(rows_q):
        row = builder.gep(base, [builder.mul(stride, ir.Constant(I64, r))])
        builder.store(q, builder.bitcast(row, q.type.as_pointer()), align=1)


def pmaddwd_fn(builder):
    """The declaration of vpmaddwd ymm (llvm.x86.avx2.pmadd.wd): <16 x i16> x <16 x i16> ->
    <8 x i32>, each lane the exact sum of one pair of int16 products."""
    v16 = ir.VectorType(ir.IntType(16), 16)
    fnty = ir.FunctionType(ir.VectorType(I32, 8), [v16, v16])
    return cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pmadd.wd")


def _pmaddwd(builder, acc, a_splat, b16):
    """acc + vpmaddwd(a, b): int16 pairs multiplied and summed into int32 lanes."""
    v16 = ir.VectorType(ir.IntType(16), 16)
    return builder.add(acc, builder.call(pmaddwd_fn(builder), [builder.bitcast(a_splat, v16), b16]))


def vpdpbusd_fn(builder, lanes: int = 16):
    """The declaration of vpdpbusd on `lanes` int32 lanes (16: zmm, llvm.x86.avx512.vpdpbusd.512;
    8: ymm, .256): f(acc, a, b) = acc + per lane the sum of four u8(a) x s8(b) byte products, no
    saturation."""
    v = ir.VectorType(I32, lanes)
    fnty = ir.FunctionType(v, [v, v, v])
    return cgutils.get_or_insert_function(builder.module, fnty, f"llvm.x86.avx512.vpdpbusd.{32 * lanes}")


def _vpdpbusd512(builder, acc, a_splat, b8):
    """vpdpbusd zmm: acc + sum of four u8(a) x s8(b) products per int32 lane, no saturation."""
    return builder.call(vpdpbusd_fn(builder), [acc, a_splat, builder.bitcast(b8, ir.VectorType(I32, 16))])


def _panel_pointers(context, builder, ty, args):
    """(a_ptr, b_ptr, c_ptr, i_ptr, lda, steps, ldc, first) of the 12 shared arguments."""
    ap, ao, ld_a, bp, bo, st, cc, co, ld, ini, io, fi = (
        v if isinstance(t, types.Array) else context.cast(builder, v, t, types.int64)
        for v, t in zip(args[:12], ty[:12]))
    i32p = I32.as_pointer()
    a_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[0], ap), i32p), [ao])
    b_raw = builder.gep(_data(context, builder, ty[3], bp), [bo])
    c_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[6], cc), i32p), [co])
    i_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[9], ini), i32p), [io])
    return a_ptr, b_raw, c_ptr, i_ptr, ld_a, st, ld, fi


def _a_bytes_ptr(context, builder, ty, args):
    """The i8 pointer to byte a_off (args[1]) of apack (args[0]): A addressed in bytes."""
    return builder.gep(builder.bitcast(_data(context, builder, ty[0], args[0]), ir.IntType(8).as_pointer()),
                       [context.cast(builder, args[1], ty[1], types.int64)])


def make_microkernel(mr, nv, lanes, b_elem_bits, madd, b_step=None, a_bytes=False):
    """The MR x (NV*lanes) tile-sum micro-kernel (module doc); b_step: B vectors per panel step
    when the panel rows are wider than the tile (_emit_tile_sums); a_bytes: a_off and lda count
    bytes, not int32 words (rows at any byte stride: a row-major A with K % 4 != 0 in place)."""
    b_vty = ir.VectorType(ir.IntType(b_elem_bits), lanes * 32 // b_elem_bits)

    @intrinsic
    def mk(typingctx, apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first):
        sig = types.void(apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first)

        def codegen(context, builder, signature, args):
            a_ptr, b_raw, c_ptr, i_ptr, lda_, st, ld, fi = _panel_pointers(context, builder, signature.args, args)
            if a_bytes:
                a_ptr = _a_bytes_ptr(context, builder, signature.args, args)
            b_ptr = builder.bitcast(b_raw, b_vty.as_pointer())
            final = _emit_tile_sums(builder, a_ptr, lda_, b_ptr, st, c_ptr, ld, i_ptr, fi, mr, nv, lanes, madd,
                                    b_step=b_step, a_bytes=a_bytes)
            _store_c(builder, final, c_ptr, ld, mr, nv, lanes)
            return context.get_dummy_value()
        return sig, codegen
    return mk


def _q_pointers(context, builder, ty, qout, m0, n0, geo, mr, nr):
    """(q_ptr, ldq, rows, cols, m_ptr, rqs_ptr) for the tile at (m0, n0) of qout = (dst 2-D
    8-bit array, mult float32 padded, rqs float32 [lo - zp, hi - zp, zp]); geo: int64 [., M, ., N]."""
    dst_ty, m_ty, r_ty = ty.types
    dst = context.make_array(dst_ty)(context, builder, builder.extract_value(qout, 0))
    ldq = cgutils.unpack_tuple(builder, dst.strides, 2)[0]
    start = builder.add(builder.mul(m0, ldq), n0)
    q_ptr = builder.gep(builder.bitcast(dst.data, ir.IntType(8).as_pointer()), [start])
    f32p = ir.FloatType().as_pointer()
    m_ptr = builder.gep(builder.bitcast(_data(context, builder, m_ty, builder.extract_value(qout, 1)), f32p), [n0])
    r_ptr = builder.bitcast(_data(context, builder, r_ty, builder.extract_value(qout, 2)), f32p)
    g = builder.bitcast(geo, I64.as_pointer())
    rows, cols = (builder.sub(builder.load(builder.gep(g, [ir.Constant(I64, i)])), v) for i, v in ((1, m0), (3, n0)))
    rows = builder.select(builder.icmp_signed("<", rows, ir.Constant(I64, mr)), rows, ir.Constant(I64, mr))
    cols = builder.select(builder.icmp_signed("<", cols, ir.Constant(I64, nr)), cols, ir.Constant(I64, nr))
    return q_ptr, ldq, rows, cols, m_ptr, r_ptr


def make_microkernel_q(mr, nv, lanes, b_elem_bits, madd, masked=False, b_step=None, a_bytes=False):
    """As make_microkernel, for the LAST K block of a requantized GEMM: the sums are not stored;
    each <lanes x i32> accumulator is requantized in registers (_requant_vector, the ORT float
    formula of kernels.requant) and the tile at row m0, column n0 of qout[0] is stored as bytes
    (_store_q: only rows < M - m0 and columns < N - n0, M = geo[1], N = geo[3]). qout = (dst
    (M, N) uint8/int8 with unit column stride, mult float32 padded to the panels, rqs float32
    [lo - zp, hi - zp, zp]); m0, n0 are checked by the caller (m0 < M, n0 < N). masked: edge
    tiles stored by masked row stores (hosts with AVX-512BW), else through a stack block.
    b_step, a_bytes as make_microkernel."""
    b_vty = ir.VectorType(ir.IntType(b_elem_bits), lanes * 32 // b_elem_bits)

    @intrinsic
    def mk_q(typingctx, apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first, qout, m0, n0, geo):
        sig = types.void(apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first, qout, m0, n0, geo)

        def codegen(context, builder, signature, args):
            ty = signature.args
            a_ptr, b_raw, c_ptr, i_ptr, lda_, st, ld, fi = _panel_pointers(context, builder, ty, args)
            if a_bytes:
                a_ptr = _a_bytes_ptr(context, builder, ty, args)
            b_ptr = builder.bitcast(b_raw, b_vty.as_pointer())
            final = _emit_tile_sums(builder, a_ptr, lda_, b_ptr, st, c_ptr, ld, i_ptr, fi, mr, nv, lanes, madd,
                                    b_step=b_step, a_bytes=a_bytes)
            m0_, n0_ = (context.cast(builder, args[i], ty[i], types.int64) for i in (13, 14))
            geo_ptr = _data(context, builder, ty[15], args[15])
            ptrs = _q_pointers(context, builder, ty[12], args[12], m0_, n0_, geo_ptr, mr, nv * lanes)
            _store_q(builder, final, *ptrs, mr, nv, lanes, ty[12].types[0].dtype.signed, masked)
            return context.get_dummy_value()
        return sig, codegen
    return mk_q


def _store_q_rows(builder, final, q_ptr, ldq, rows, cols, m_ptr, c_ptr, rqs_ptr, mr, nv, lanes, signed, masked):
    """_store_q with the scale and an int32 constant per ROW (output channel of a weights-as-A
    GEMM): row r's accumulators get int32 c_ptr[r] added (wrapping), then _requant_vector with
    the multiplier m_ptr[r] (both padded to MR rows)."""
    flo, fhi, zpf = (_splat(builder, builder.load(builder.gep(rqs_ptr, [ir.Constant(I64, i)])), lanes)
                     for i in range(3))
    zp = builder.fptosi(zpf, ir.VectorType(I32, lanes))
    rows_q = []
    for r in range(mr):
        mult = _splat(builder, builder.load(builder.gep(m_ptr, [ir.Constant(I64, r)])), lanes)
        crow = _splat(builder, builder.load(builder.gep(c_ptr, [ir.Constant(I64, r)])), lanes)
        rows_q.append(_row_bytes(builder, [_requant_vector(builder, builder.add(final[r * nv + v], crow), mult,
                                                           flo, fhi, zp) for v in range(nv)], signed))
    _store_tile_rows(builder, rows_q, q_ptr, ldq, rows, cols, mr, nv * lanes, masked)


def make_microkernel_rows_q(mr, nv, lanes, b_elem_bits, madd, masked=False):
    """As make_microkernel_q with the requantization per row: qout = (dst (M, N) uint8/int8 with
    unit column stride, mult float32 (M' >= m0 + MR), crow int32 (M'), rqs float32 [lo - zp,
    hi - zp, zp]); row r of the tile stores, for columns j < N - n0,

        dst[m0 + r, n0 + j] = _requant_vector(int32(acc[r, j] + crow[m0 + r]), mult[m0 + r])

    (rows r < M - m0 only; M = geo[1], N = geo[3]). kernels.conv_nchw_1x1: weights as A, one
    output channel per row."""
    b_vty = ir.VectorType(ir.IntType(b_elem_bits), lanes * 32 // b_elem_bits)

    @intrinsic
    def mk_rows_q(typingctx, apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first, qout, m0, n0,
                  geo):
        sig = types.void(apack, a_off, lda, bpack, b_off, steps, c, c_off, ldc, init, i_off, first, qout, m0, n0, geo)

        def codegen(context, builder, signature, args):
            ty = signature.args
            a_ptr, b_raw, c_ptr, i_ptr, lda_, st, ld, fi = _panel_pointers(context, builder, ty, args)
            b_ptr = builder.bitcast(b_raw, b_vty.as_pointer())
            final = _emit_tile_sums(builder, a_ptr, lda_, b_ptr, st, c_ptr, ld, i_ptr, fi, mr, nv, lanes, madd)
            m0_, n0_ = (context.cast(builder, args[i], ty[i], types.int64) for i in (13, 14))
            dst_ty, m_ty, k_ty, r_ty = ty[12].types
            qv = args[12]
            dst = context.make_array(dst_ty)(context, builder, builder.extract_value(qv, 0))
            ldq = cgutils.unpack_tuple(builder, dst.strides, 2)[0]
            q_ptr = builder.gep(builder.bitcast(dst.data, ir.IntType(8).as_pointer()),
                                [builder.add(builder.mul(m0_, ldq), n0_)])
            m_ptr = builder.gep(builder.bitcast(_data(context, builder, m_ty, builder.extract_value(qv, 1)),
                                                ir.FloatType().as_pointer()), [m0_])
            k_ptr = builder.gep(builder.bitcast(_data(context, builder, k_ty, builder.extract_value(qv, 2)),
                                                I32.as_pointer()), [m0_])
            r_ptr = builder.bitcast(_data(context, builder, r_ty, builder.extract_value(qv, 3)),
                                    ir.FloatType().as_pointer())
            g = builder.bitcast(_data(context, builder, ty[15], args[15]), I64.as_pointer())
            nr = nv * lanes
            rows, cols = (builder.sub(builder.load(builder.gep(g, [ir.Constant(I64, i)])), v)
                          for i, v in ((1, m0_), (3, n0_)))
            rows = builder.select(builder.icmp_signed("<", rows, ir.Constant(I64, mr)), rows, ir.Constant(I64, mr))
            cols = builder.select(builder.icmp_signed("<", cols, ir.Constant(I64, nr)), cols, ir.Constant(I64, nr))
            _store_q_rows(builder, final, q_ptr, ldq, rows, cols, m_ptr, k_ptr, r_ptr, mr, nv, lanes,
                          dst_ty.dtype.signed, masked)
            return context.get_dummy_value()
        return sig, codegen
    return mk_rows_q


def make_microkernel_taps_q(mr, lanes, madd, masked=True):
    """A requantizing MR x lanes tile whose A rows are read through a table of word offsets,
    so an NHWC image is its own im2col (kernels.grouped_nhwc):

        acc[r, j] = init[i_off + j] + sum_{s < steps} sum_{t < 4} a_u8[4*(a_off + r*lda + koff[s]) + t]
                                                                  * bpack[b_off + (s*lanes + j)*4 + t]

    (int32, wrapping), then requantized and stored as mk_q stores (make_microkernel_q: rows
    < geo[1] - m0, columns < geo[3] - n0 of qout[0] at (m0, n0)). a: u8 bytes read as int32
    words; koff: int64 (steps,). Every offset is checked by the caller."""
    b_vty = ir.VectorType(ir.IntType(8), lanes * 4)

    @intrinsic
    def mk_taps_q(typingctx, a, a_off, lda, koff, bpack, b_off, steps, init, i_off, qout, m0, n0, geo):
        sig = types.void(a, a_off, lda, koff, bpack, b_off, steps, init, i_off, qout, m0, n0, geo)

        def codegen(context, builder, signature, args):
            ty = signature.args
            ao, ld_a, bo, st, io, m0_, n0_ = (context.cast(builder, args[i], ty[i], types.int64)
                                              for i in (1, 2, 5, 6, 8, 10, 11))
            i32p = I32.as_pointer()
            a_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[0], args[0]), i32p), [ao])
            k_ptr = builder.bitcast(_data(context, builder, ty[3], args[3]), I64.as_pointer())
            b_ptr = builder.bitcast(builder.gep(_data(context, builder, ty[4], args[4]), [bo]), b_vty.as_pointer())
            i_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[7], args[7]), i32p), [io])
            one = ir.Constant(I64, 1)
            final = _emit_tile_sums(builder, a_ptr, ld_a, b_ptr, st, i_ptr, ir.Constant(I64, 0), i_ptr, one,
                                    mr, 1, lanes, madd, k_ptr)
            geo_ptr = _data(context, builder, ty[12], args[12])
            ptrs = _q_pointers(context, builder, ty[9], args[9], m0_, n0_, geo_ptr, mr, lanes)
            _store_q(builder, final, *ptrs, mr, 1, lanes, ty[9].types[0].dtype.signed, masked)
            return context.get_dummy_value()
        return sig, codegen
    return mk_taps_q


I8 = ir.IntType(8)
AMX_MR, AMX_NR = 32, 32           # 2 x 2 tiles of 16 x 16 int32 (tmm0-3), A in tmm4-5, B in tmm6-7
AMX_TILE_STEPS = 16               # steps (of 4 k) per tile: 64 bytes per tile row


def _amx_fn(builder, name, args):
    fnty = ir.FunctionType(ir.VoidType(), args)
    return cgutils.get_or_insert_function(builder.module, fnty, name)


@intrinsic
def amx_begin(typingctx, cfg):
    """ldtilecfg from cfg (uint8 array of 64 bytes, see drivers.amx_config): the tile shapes of
    this thread. Must precede every tile instruction on the thread."""
    sig = types.void(cfg)

    def codegen(context, builder, signature, args):
        p = builder.bitcast(_data(context, builder, signature.args[0], args[0]), I8.as_pointer())
        builder.call(_amx_fn(builder, "llvm.x86.ldtilecfg", [I8.as_pointer()]), [p])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def amx_end(typingctx):
    """tilerelease: the tiles back to their init state (no tile data saved on context switches)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.call(_amx_fn(builder, "llvm.x86.tilerelease", []), [])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def mk_amx(typingctx, apack, a_off, lda, bpack, b_off, tsteps, c, c_off, ldc, init, i_off, first, ldi):
    """The 32 x 32 C block at c[c_off + r*ldc + j] (int32 words) plus the sums of `tsteps` tile
    steps (16 steps each): A row r of the block at BYTE a_off + r*lda of apack (u8 quads; lda any
    byte stride, tileloadd takes one: a row-major A with K % 4 != 0 is read in place), B at
    byte b_off of bpack ([step][32][4] int8). The block starts from c itself, or when `first`
    != 0 from init (row r of C tile (i, j), for both i, read at init word i_off + 16*j + r*ldi:
    the driver passes 16 copies of the column offsets, ldi words apart). Tiles: C (i, j) in
    tmm(2i + j), A(i) in tmm(4 + i), B(j) in tmm(6 + j). a_off and lda in bytes; c_off, ldc,
    i_off, ldi in int32 words; all checked by the caller."""
    sig = types.void(apack, a_off, lda, bpack, b_off, tsteps, c, c_off, ldc, init, i_off, first, ldi)

    def codegen(context, builder, signature, args):
        ty = signature.args
        _, b_raw, c_ptr, i_ptr, lda_, nt, ldc_, fi = _panel_pointers(context, builder, ty, args)
        ldi_ = context.cast(builder, args[12], ty[12], types.int64)
        i8p = I8.as_pointer()
        a_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[0], args[0]), i8p),
                            [context.cast(builder, args[1], ty[1], types.int64)])
        load = _amx_fn(builder, "llvm.x86.tileloadd64", [I8, i8p, I64])
        store = _amx_fn(builder, "llvm.x86.tilestored64", [I8, i8p, I64])
        dot = _amx_fn(builder, "llvm.x86.tdpbusd", [I8, I8, I8])
        k8 = lambda v: ir.Constant(I8, v)
        k64 = lambda v: ir.Constant(I64, v)
        four = k64(4)
        is_first = builder.icmp_signed("!=", fi, k64(0))
        c_ld = builder.select(is_first, ldi_, ldc_)
        for i in range(2):
            for j in range(2):
                src = builder.select(is_first, builder.gep(i_ptr, [k64(16 * j)]),
                                     builder.gep(c_ptr, [builder.add(builder.mul(ldc_, k64(16 * i)), k64(16 * j))]))
                builder.call(load, [k8(2 * i + j), builder.bitcast(src, i8p), builder.mul(c_ld, four)])
        a_rows = [builder.gep(a_ptr, [builder.mul(lda_, k64(16 * i))]) for i in range(2)]
        a_stride, b_stride = lda_, k64(AMX_NR * 4)
        with cgutils.for_range(builder, nt) as loop:
            kb = loop.index
            a_at = builder.mul(kb, k64(AMX_TILE_STEPS * 4))
            b_at = builder.mul(kb, k64(AMX_TILE_STEPS * AMX_NR * 4))
            for i in range(2):
                builder.call(load, [k8(4 + i), builder.gep(a_rows[i], [a_at]), a_stride])
            for j in range(2):
                builder.call(load, [k8(6 + j), builder.gep(b_raw, [builder.add(b_at, k64(64 * j))]), b_stride])
            for i in range(2):
                for j in range(2):
                    builder.call(dot, [k8(2 * i + j), k8(4 + i), k8(6 + j)])
        for i in range(2):
            for j in range(2):
                dst = builder.gep(c_ptr, [builder.add(builder.mul(ldc_, k64(16 * i)), k64(16 * j))])
                builder.call(store, [k8(2 * i + j), builder.bitcast(dst, i8p), builder.mul(ldc_, four)])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def mk_amx_q(typingctx, c, c_off, ldc, qout, m0, n0, geo):
    """Requantize the 16 x 32 int32 block at c[c_off + r*ldc + j] (sums mk_amx stored) in
    <16 x i32> vectors, as make_microkernel_q does in registers (_store_q: the ORT float formula;
    only rows < M - m0 and columns < N - n0 of dst stored, by masked row stores). qout, geo as
    make_microkernel_q; m0 < M and n0 < N checked by the caller."""
    sig = types.void(c, c_off, ldc, qout, m0, n0, geo)

    def codegen(context, builder, signature, args):
        ty = signature.args
        c_off_, ldc_, m0_, n0_ = (context.cast(builder, args[i], ty[i], types.int64) for i in (1, 2, 4, 5))
        c_ptr = builder.gep(builder.bitcast(_data(context, builder, ty[0], args[0]), I32.as_pointer()), [c_off_])
        acc = _row_vectors(builder, c_ptr, ldc_, 16, 2, ir.VectorType(I32, 16))
        ptrs = _q_pointers(context, builder, ty[3], args[3], m0_, n0_, _data(context, builder, ty[6], args[6]), 16, 32)
        _store_q(builder, acc, *ptrs, 16, 2, 16, ty[3].types[0].dtype.signed, True)
        return context.get_dummy_value()
    return sig, codegen


AVX2_MR, AVX2_NR = 6, 16          # 12 ymm accumulators + 2 B vectors + 1 broadcast
VNNI_MR, VNNI_NR = 6, 32          # 12 zmm accumulators (of 32 registers)

mk_avx2 = make_microkernel(AVX2_MR, AVX2_NR // 8, 8, 16, _pmaddwd)
# the VNNI kernels address A in bytes (a_bytes): the drivers read a row-major A with K % 4 != 0 in place
mk_vnni512 = make_microkernel(VNNI_MR, VNNI_NR // 16, 16, 8, _vpdpbusd512, a_bytes=True)
mk_avx2_q = make_microkernel_q(AVX2_MR, AVX2_NR // 8, 8, 16, _pmaddwd)
mk_vnni512_q = make_microkernel_q(VNNI_MR, VNNI_NR // 16, 16, 8, _vpdpbusd512, masked=True, a_bytes=True)
TAPS_MR = 8                         # rows of the tap-table tile (kernels.grouped_nhwc)
mk_taps_vnni512_q = make_microkernel_taps_q(TAPS_MR, 16, _vpdpbusd512)
# the left half (16 columns) of a VNNI panel over 12 rows (two 6-row tiles): a panel holding at most 16
# columns of N (N's last) costs half the vpdpbusd and requantization of mk_vnni512 per row
VNNI_HALF_MR = 12
mk_vnni512_h = make_microkernel(VNNI_HALF_MR, 1, 16, 8, _vpdpbusd512, b_step=2, a_bytes=True)
mk_vnni512_hq = make_microkernel_q(VNNI_HALF_MR, 1, 16, 8, _vpdpbusd512, masked=True, b_step=2, a_bytes=True)
