"""NCHW images to GEMM rows and back, for the SIMD conv engines (kernels.fast_conv, kernels.fast_pairs).

A conv of a batch becomes ONE GEMM per group over all N*OH*OW output pixels:

    to_nhwc:      xh[n, h, w, c] = x[n, c, h, w]
    im2col_rows:  cols[(n*OH + oy)*OW + ox, (ky*KW + kx)*Cg + c] = xh[n, iy, ix, c0 + c]
                  with iy = oy*sh - pt + ky*dh, ix = ox*sw - pl + kx*dw, and `pad` (the input
                  zero point) for taps outside the image. The K order (ky, kx, c) is
                  onnxruntime's NHWC order, which its pair-saturating u8 x s8 sum depends on.
    rows_to_nchw: acc = int64(raw[n*P + p, j]) + off[j] - w_zp[j] * rowsum[n*P + p]
                  out[n, ch0 + j, p] = acc                     (int64 out: exact)
                                     = int32(acc)              (int32 out: wraps mod 2**32)
                                     = ORT float requant of int32(acc)   (8-bit out, rq[0] True):
                                       clamp(rint_half_even(clamp(f32(int32(acc)) * mult[ch0 + j],
                                       lo - zp, hi - zp)) + zp, lo, hi), all float32
                  (rowsum is empty when no w_zp term is needed).

The jitted functions take row (or image, or pixel-block) ranges so that chunks can run on
several threads (kernels.threads.parallel_items); the wrappers check every shape first.

Speed (they run at memory speed, next to the GEMM): the NCHW <-> NHWC/rows moves are T x T
tile transposes (16 x 16 bytes, 8 x 8 int16/int32, 4 x 4 int64) written as target-independent
LLVM vector IR (loads, shufflevector interleaves, stores; no x86 intrinsic, so every host and
INTSIM_PORTABLE=1 compile them); im2col copies runs with 4..32-byte vector moves; the
requantization runs over a block of pixel rows as one vectorised loop per case. Data movement
only: the arithmetic is the one above, bit for bit (the `_ref` twins are its NumPy form).
"""
from __future__ import annotations

from functools import partial

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .jit import kernel
from .requant import ort_round, ort_round_ref
from .threads import get_num_threads, native_call, native_split, parallel_items

I64 = ir.IntType(64)

COLS_BYTES = 32 << 20              # im2col rows per chunk of images: at most this many bytes


def image_chunk(p: int, k: int, n_img: int) -> int:
    """Images per GEMM: as many as keep the (images*P, K) rows under COLS_BYTES (at least one)."""
    return max(1, min(n_img, COLS_BYTES // max(1, p * k)))


PARALLEL_BYTES = 1 << 22           # below this much data a pass runs on the calling thread alone
                                   # (the passes run near memory speed: a hand-off costs more)
NATIVE_PARALLEL_BYTES = 1 << 16    # the same for the passes that split as a Numba parallel region
                                   # (to_nhwc, im2col_rows): no pool thread to wake. MobileNetV2-style
                                   # stem at batch 8 (221 KB in, 498 KB of rows), 2 threads: to_nhwc
                                   # 66 -> 38 us, im2col 223 -> 125 us


class NativeSplit:
    """A runner for a pass of `nbytes` bytes on `threads` threads: to_nhwc and im2col_rows run it
    as one Numba parallel region (kernels.threads.native_split); any other pass calls it like
    parallel_items (the pool above PARALLEL_BYTES, else on the calling thread)."""

    def __init__(self, nbytes: int, threads: int):
        self.nbytes, self.threads = nbytes, threads

    def __call__(self, fn, n):
        if self.nbytes < PARALLEL_BYTES:
            fn(0, n)
            return
        parallel_items(fn, n, self.threads)


def runner(nbytes: int):
    """The work-sharing function for a pass over `nbytes` bytes: None (serial) for small passes,
    whose hand-off would cost more than the work; a NativeSplit when the fast kernels' threads
    split as Numba parallel regions; else the thread pool (kernels.threads.parallel_items)."""
    threads = get_num_threads()
    if threads > 1 and nbytes >= NATIVE_PARALLEL_BYTES and native_split(threads):
        return NativeSplit(nbytes, threads)
    if threads <= 1 or nbytes < PARALLEL_BYTES:
        return None
    return parallel_items


def _region(par, run, n, *args) -> bool:
    """Run par(*args, parts) as a parallel region when `run` is a NativeSplit, n items split and
    this process may start regions (not a forked child); False (nothing done) otherwise."""
    if not isinstance(run, NativeSplit) or n < 2:
        return False
    return native_call(par, run.threads, *args, np.int64(min(run.threads, n)))   # False in a forked child


def is_plain_1x1(kh, kw, g) -> bool:
    """A 1x1 conv with unit strides and no padding: its im2col rows are the NHWC pixels."""
    return kh == kw == 1 and g.stride_h == g.stride_w == 1 and \
        g.pad_top == g.pad_left == g.pad_bottom == g.pad_right == 0


# ------------------------------------------------------------------ vector moves (LLVM IR)
# Target-independent LLVM vector IR (loads, stores, shufflevector): no x86 intrinsic is named,
# so every host (and INTSIM_PORTABLE=1) compiles it; LLVM picks the instructions.

def _make_mov(nbytes):
    vty = ir.VectorType(ir.IntType(8), nbytes)

    @intrinsic
    def mov(typingctx, d_addr, s_addr):
        """Copy `nbytes` bytes from address s_addr to d_addr (unaligned, unchecked)."""
        sig = types.void(d_addr, s_addr)

        def codegen(context, builder, signature, args):
            d, s = (builder.inttoptr(context.cast(builder, v, t, types.int64), vty.as_pointer())
                    for v, t in zip(args, signature.args))
            builder.store(builder.load(s, align=1), d, align=1)
            return context.get_dummy_value()
        return sig, codegen
    return mov


_mov1, _mov2, _mov4, _mov8, _mov16, _mov32 = (_make_mov(b) for b in (1, 2, 4, 8, 16, 32))


def _lanes_of(bits: int) -> int:
    """Tile side for elements of `bits` bits: 16 x 16 bytes, 8 x 8 int16/int32, 4 x 4 int64."""
    return {8: 16, 16: 8, 32: 8, 64: 4}[bits]


def _interleave(builder, a, b, n, high, tiles=1):
    """The low (or high) halves of vectors a and b, element by element: a0 b0 a1 b1 ...; with
    tiles > 1, vectors of `tiles` blocks of n elements, each block interleaved on its own (as
    the in-lane vpunpck interleaves 128-bit lanes)."""
    base = n // 2 if high else 0
    mask = [v for k in range(tiles) for t in range(n // 2)
            for v in (k * n + base + t, tiles * n + k * n + base + t)]
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), n * tiles), mask))


def _clamped_rows(builder, start, stride, count, n):
    """Element offsets start + min(r, count - 1) * stride for r < n."""
    last = builder.sub(count, ir.Constant(I64, 1))
    out = []
    for r in range(n):
        rc = ir.Constant(I64, r)
        row = builder.select(builder.icmp_signed("<", rc, count), rc, last)
        out.append(builder.add(start, builder.mul(row, stride)))
    return out


def _make_tile(descending, tiles=1):
    @intrinsic
    def tile(typingctx, src, s_off, s_stride, n_load, dst, d_off, d_stride, n_store):
        """One T x T transpose (T = _lanes_of(bits)): vector row r (T elements) loaded from
        src[s_off + min(r, n_load-1)*s_stride], the T vectors transposed by log2(T) rounds of
        interleaves (round k pairs vector i with i + T/2), row c stored to
        dst[d_off + min(c, n_store-1)*d_stride] (T elements each), rows in ascending order, or
        descending so that the valid row n_store-1 is the last one written there. With tiles > 1,
        `tiles` side-by-side T x T tiles at once (rows of tiles*T elements, each tile's block
        interleaved on its own: one ymm per two byte tiles): output row k*T + c is block k of
        vector c, n_store counting all tiles*T output rows. Unchecked."""
        if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and src.dtype == dst.dtype):
            return None
        bits = src.dtype.bitwidth
        n = _lanes_of(bits)
        sig = types.void(src, s_off, s_stride, n_load, dst, d_off, d_stride, n_store)

        def codegen(context, builder, signature, args):
            ty = signature.args
            so, ss, nl, do, ds, ns = (context.cast(builder, args[i], ty[i], types.int64) for i in (1, 2, 3, 5, 6, 7))
            ety = ir.IntType(bits)
            vty, wty = ir.VectorType(ety, n), ir.VectorType(ety, n * tiles)
            sp = builder.bitcast(context.make_array(ty[0])(context, builder, args[0]).data, ety.as_pointer())
            dp = builder.bitcast(context.make_array(ty[4])(context, builder, args[4]).data, ety.as_pointer())
            rows = [builder.load(builder.bitcast(builder.gep(sp, [o]), wty.as_pointer()), align=1)
                    for o in _clamped_rows(builder, so, ss, nl, n)]
            for _ in range(n.bit_length() - 1):
                h = n // 2
                rows = [_interleave(builder, rows[i], rows[i + h], n, hi, tiles) for i in range(h) for hi in (False, True)]
            if tiles > 1:
                blocks = [ir.Constant(ir.VectorType(ir.IntType(32), n), list(range(k * n, k * n + n))) for k in range(tiles)]
                rows = [builder.shuffle_vector(v, v, blocks[k]) for k in range(tiles) for v in rows]
            order = list(zip(_clamped_rows(builder, do, ds, ns, n * tiles), rows))
            for o, v in (order[::-1] if descending else order):
                builder.store(v, builder.bitcast(builder.gep(dp, [o]), vty.as_pointer()), align=1)
            return context.get_dummy_value()
        return sig, codegen
    return tile


_tile_up, _tile_down = _make_tile(False), _make_tile(True)
_tile_up2 = _make_tile(False, 2)        # two 16 x 16 byte tiles side by side (one ymm per row)


@kernel(inline="always")
def _lanes(a):
    """Tile side for a's dtype (as _lanes_of)."""
    return 16 if a.itemsize == 1 else (8 if a.itemsize <= 4 else 4)


@kernel(inline="always")
def _copy_run(d, s, nb):
    """Copy nb bytes from address s to address d (disjoint) with 32/16/8/4/2/1-byte moves, the
    last one overlapping the one before instead of running past the end."""
    if nb >= 32:
        t = 0
        while t + 32 <= nb:
            _mov32(d + t, s + t)
            t += 32
        if t < nb:
            _mov32(d + nb - 32, s + nb - 32)
    elif nb >= 16:
        _mov16(d, s)
        _mov16(d + nb - 16, s + nb - 16)
    elif nb >= 8:
        _mov8(d, s)
        _mov8(d + nb - 8, s + nb - 8)
    elif nb >= 4:
        _mov4(d, s)
        _mov4(d + nb - 4, s + nb - 4)
    elif nb >= 2:
        _mov2(d, s)
        _mov2(d + nb - 2, s + nb - 2)
    elif nb == 1:
        _mov1(d, s)


@kernel(inline="always")
def _transpose_scalar(src, s0, ss, r0, r1, c0, c1, dst, d0, ds):
    """dst[d0 + c*ds + r] = src[s0 + r*ss + c] for r0 <= r < r1, c0 <= c < c1."""
    for c in range(c0, c1):
        for r in range(r0, r1):
            dst[d0 + c * ds + r] = src[s0 + r * ss + c]


@kernel
def _transpose(src, s0, ss, rows, cols, dst, d0, ds, s_lim, d_lim):
    """dst[d0 + c*ds + r] = src[s0 + r*ss + c] for r < rows, c < cols (1-D arrays, one dtype),
    by T x T tiles (T = _lanes(src)), column tiles outer (dst written in order). The last
    tile of a direction is moved back to overlap its neighbour. Short sides:
    - rows < T <= cols: each tile loads its `rows` rows and stores T rows of T elements in
      ascending order; each store runs T - rows elements past its row into the next one,
      which the following store rewrites; a tile whose overrun would pass d_lim is scalar;
    - cols < T <= rows: each tile reads T elements per row (up to T - cols past it; a tile
      that would read at or past s_lim is scalar) and stores only its `cols` valid rows;
    - both < T: scalar."""
    t = _lanes(src)
    if rows <= 0 or cols <= 0:
        return
    if rows < t and cols < t:
        _transpose_scalar(src, s0, ss, 0, rows, 0, cols, dst, d0, ds)
        return
    c = 0
    while c < cols:
        cc = max(0, min(c, cols - t))
        cn = min(cols, cc + t)
        pair = t == 16 and rows >= t and cc + 2 * t <= cols     # bytes: two whole column tiles at once
        r = 0
        while r < rows:
            rr = max(0, min(r, rows - t))
            rn = min(rows, rr + t)
            so, do = s0 + rr * ss + cc, d0 + cc * ds + rr
            if pair:
                _tile_up2(src, so, ss, t, dst, do, ds, 2 * t)
            elif rows >= t and cols >= t:
                _tile_up(src, so, ss, t, dst, do, ds, t)
            elif rows < t and do + (t - 1) * ds + t <= d_lim:
                _tile_up(src, so, ss, rows, dst, do, ds, t)
            elif cols < t and so + (t - 1) * ss + t <= s_lim:
                _tile_down(src, so, ss, t, dst, do, ds, cols)
            else:
                _transpose_scalar(src, s0, ss, rr, rn, cc, cn, dst, d0, ds)
            r += t
        c += 2 * t if pair else t


FEW_CHANNELS = 4                   # to_nhwc with C <= this: a scalar loop beats narrow tiles


@kernel
def _to_nhwc_impl(x, xh, n0, n1):
    """xh[n, h, w, c] = x[n, c, h, w] for images n0..n1-1 (4-D arrays, C-contiguous): each
    image is a (C, H*W) -> (H*W, C) transpose (a plain loop for C <= FEW_CHANNELS, where
    16-row tiles would mostly move padding)."""
    c_, p_ = x.shape[1], x.shape[2] * x.shape[3]
    xf, hf = x.reshape(-1), xh.reshape(-1)
    for n in range(n0, n1):
        base = n * c_ * p_
        if c_ <= FEW_CHANNELS:
            xs, hs = xf[base:base + c_ * p_], hf[base:base + c_ * p_]
            for c in range(c_):
                for p in range(p_):
                    hs[p * c_ + c] = xs[c * p_ + p]
        else:
            _transpose(xf, base, p_, c_, p_, hf, base, c_, xf.size, n1 * c_ * p_)


@kernel
def _im2col_rows_impl(xh, c0, cg, kh_, kw_, cgeo, pads, cols, r0, r1):
    """Rows r0..r1-1 of cols (rows, KH*KW*Cg) from xh (N, H, W, C); cgeo = [sh, sw, pt, pl, dh,
    dw, OH, OW]; pads (KW*Cg,) holds the pad value. Walks one output row segment at a time
    (no division per pixel), kernel rows outer; a run of taps inside the image is copied by
    _copy_run on raw addresses (no array views, whose reference counts cost more than the
    copy): the whole KW*C run for pixels inside in x when Cg == C and dw == 1, else one run
    of Cg per kernel column; taps outside copy from pads. xh, cols and pads are arguments, so
    they outlive every address taken here."""
    h_, w_, c_ = xh.shape[1], xh.shape[2], xh.shape[3]
    sh, sw, pt, pl, dh, dw, oh_, ow_ = cgeo[0], cgeo[1], cgeo[2], cgeo[3], cgeo[4], cgeo[5], cgeo[6], cgeo[7]
    isz = xh.itemsize
    k_b = kh_ * kw_ * cg * isz          # bytes per row of cols
    run_b, cg_b, c_b = kw_ * cg * isz, cg * isz, c_ * isz
    whole = cg == c_ and dw == 1
    xa, ca, pa = xh.ctypes.data, cols.ctypes.data, pads.ctypes.data
    p_ = oh_ * ow_
    r = r0
    while r < r1:
        n, p = r // p_, r % p_
        oy, ox0 = p // ow_, p % ow_
        ox1 = min(ow_, ox0 + (r1 - r))
        # output pixels ox0..ox1-1 of row oy: fully inside in x for ox in [in0, in1)
        in0 = min(ox1, max(ox0, (pl + sw - 1) // sw))
        in1 = max(in0, min(ox1, (w_ - 1 - (kw_ - 1) * dw + pl) // sw + 1)) if w_ - 1 - (kw_ - 1) * dw + pl >= 0 else in0
        d_seg = ca + (r - ox0) * k_b
        for ky in range(kh_):
            iy = oy * sh - pt + ky * dh
            dk = d_seg + ky * run_b
            if iy < 0 or iy >= h_:
                for ox in range(ox0, ox1):
                    _copy_run(dk + ox * k_b, pa, run_b)
                continue
            s_row = xa + (n * h_ + iy) * w_ * c_b + c0 * isz
            for ox in range(ox0, ox1):
                ix0 = ox * sw - pl
                d = dk + ox * k_b
                if whole and in0 <= ox < in1:
                    _copy_run(d, s_row + ix0 * c_b, run_b)
                    continue
                for kx in range(kw_):
                    ix = ix0 + kx * dw
                    if ix < 0 or ix >= w_:
                        _copy_run(d + kx * cg_b, pa, cg_b)
                    else:
                        _copy_run(d + kx * cg_b, s_row + ix * c_b, cg_b)
        r += ox1 - ox0


# Conv descriptor of the GEMM drivers' implicit im2col (kernels.simd.drivers `geo`, kind 2): the
# GEMM entries 0-5 and 14 as kernels.simd.drivers.gemm_geo, then the image and kernel geometry.
CONV_KIND = 2
D_C, D_H, D_W, D_OW, D_SH, D_SW, D_PT, D_PL = 6, 7, 8, 9, 10, 11, 12, 13
D_KW, D_DH, D_DW, D_CG, D_C0, D_PAD, D_OH = 15, 16, 17, 18, 19, 20, 21
CONV_GEO_LEN = 22


def conv_geo(gemm_geo, xh_shape, c0, cg, kh, kw, cgeo, pad) -> np.ndarray:
    """The kind-2 descriptor: A (rows N*OH*OW, K = KH*KW*Cg) is the im2col of xh (N, H, W, C),
    channels c0..c0+Cg-1 (the rows `im2col_rows` writes), packed tile by tile by
    `pack_conv_tiles` instead of being stored. gemm_geo: kernels.simd.drivers.gemm_geo(rows, K, N, isa)."""
    sh, sw, pt, pl, dh, dw, oh, ow = (int(v) for v in cgeo)
    n, h, w, c = (int(v) for v in xh_shape)
    if gemm_geo[1] != n * oh * ow or gemm_geo[2] != kh * kw * cg or not 0 <= c0 <= c - cg or gemm_geo[5] != 0:
        raise ValueError(f"conv_geo: GEMM {tuple(gemm_geo[:4])} does not fit x {xh_shape}, kernel {kh}x{kw}x{cg}")
    geo = np.zeros(CONV_GEO_LEN, np.int64)
    geo[:15] = gemm_geo[:15]
    geo[0] = CONV_KIND
    geo[D_C], geo[D_H], geo[D_W], geo[D_OW], geo[D_SH], geo[D_SW], geo[D_PT], geo[D_PL] = c, h, w, ow, sh, sw, pt, pl
    geo[D_KW], geo[D_DH], geo[D_DW], geo[D_CG], geo[D_C0], geo[D_PAD], geo[D_OH] = kw, dh, dw, cg, c0, pad, oh
    return geo


@kernel(inline="always")
def window_rows(xf, geo, add):
    """Whether the im2col rows of kind-2 descriptor geo are windows of one-row images that a
    driver may read in place from xf (the NHWC image flattened): a uint8 image taken as it is
    (add == 0: the drivers' u8 A; int8 images come with add = 128), H = OH = 1 and one kernel row (K = KW*C: every channel, Cg == C,
    c0 == 0), dilation 1, and xf exactly N*W*C bytes. Row m = (n, ox) is then the run of K
    bytes at (n*W + ox*sw - pl)*C: rows of one image are sw*C bytes apart (a one-channel Conv1d:
    its overlapping windows, no copy)."""
    return geo[0] == CONV_KIND and add == 0 and xf.itemsize == 1 and geo[D_H] == 1 and geo[D_OH] == 1 and \
        geo[D_PT] == 0 and geo[D_CG] == geo[D_C] and geo[D_C0] == 0 and geo[D_DW] == 1 and \
        geo[2] == geo[D_KW] * geo[D_C] and xf.shape[0] == (geo[1] // geo[D_OW]) * geo[D_W] * geo[D_C] and \
        geo[1] % geo[D_OW] == 0


@kernel(inline="always")
def window_run(geo, t, t1, mr, steps):
    """(u, a0, lda) for a window_rows descriptor: tiles t..u-1 (t <= u <= t1) lie in one image,
    every row m = t*mr + r of them full (m < M) with all 4*steps bytes a micro-kernel reads
    (K and the zero-multiplied rest of its last word) inside the image: byte ix0*C >= 0 and
    (ix0 + sw*...)*C + 4*steps <= W*C; row t*mr + r starts at byte a0 + r*lda. u == t: tile t
    must be packed."""
    m_, c_, w_, ow_, sw, pl = geo[1], geo[D_C], geo[D_W], geo[D_OW], geo[D_SW], geo[D_PL]
    m0 = t * mr
    n, ox0 = m0 // ow_, m0 % ow_
    last = min(ow_, (t1 - t) * mr + ox0)               # rows ox0..last-1 of image n in tiles t..t1-1
    hi = (w_ * c_ - 4 * steps) // c_ + pl              # the last row's ix0 + pl must be <= this ...
    last = min(last, hi // sw + 1 if hi >= 0 else 0)   # ... so ox <= hi // sw
    lo = (pl + sw - 1) // sw                           # ix0 = ox*sw - pl >= 0
    if ox0 < lo or m0 + mr > m_:
        return t, 0, 0
    u = t + max(0, (last - ox0) // mr)
    return u, (n * w_ + ox0 * sw - pl) * c_, sw * c_


@kernel(inline="always")
def _fill_seg(out, d0, d1, v):
    for j in range(d0, d1):
        out[j] = v


@kernel(inline="always")
def _copy_seg(out, d0, xf, s0, count, add):
    """out[d0 + j] = xf[s0 + j] + add for j < count: raw byte moves when nothing is converted,
    else one loop over views (indexing the flat arrays at offsets did not vectorise: the exact
    engine's ResNet layer1 at batch 8 ran 30 ms implicit vs 16 ms through rows)."""
    if out.itemsize == xf.itemsize and add == 0:
        _copy_run(out.ctypes.data + d0 * out.itemsize, xf.ctypes.data + s0 * xf.itemsize, count * xf.itemsize)
        return
    o, v = out[d0:d0 + count], xf[s0:s0 + count]      # views: the unit-stride loop vectorises
    for j in range(count):
        o[j] = v[j] + add


@kernel
def pack_conv_tiles(xf, geo, add, g, mr, t0, t1, s0, ns, apk):
    """The drivers' A panel of tiles t0..t1-1 for K steps s0..s0+ns-1, from the image instead
    of stored rows (kind-2 descriptor, see conv_geo): apk[((t - t0)*mr + r)*ns*g + j] =
    im2col(xh)[t*mr + r, s0*g + j] + add (`pad` + add for taps outside the image), 0 for rows
    >= M and k >= K, exactly the bytes kernels.simd.packing.pack_block takes from im2col_rows' output.
    xf: xh (N, H, W, C) flattened. Per row, the K range is walked segment by segment: a kernel
    row whose taps lie inside the image with dilation 1 and Cg == C is one run of KW*C.
    No division per row or segment: row m's pixel (n, oy, ox) and the tap (ky, kx, c) of the
    block's first k are found once and stepped (a 64-bit division costs tens of cycles, and rows
    of a one-channel Conv1d are a single 80-byte copy: 31848 such rows packed in 0.8 ms with
    four divisions each)."""
    m_, k_ = geo[1], geo[2]
    c_, h_, w_, ow_ = geo[D_C], geo[D_H], geo[D_W], geo[D_OW]
    sh, sw, pt, pl = geo[D_SH], geo[D_SW], geo[D_PT], geo[D_PL]
    kw_, dh, dw, cg, c0, oh_ = geo[D_KW], geo[D_DH], geo[D_DW], geo[D_CG], geo[D_C0], geo[D_OH]
    pad = apk.dtype.type(geo[D_PAD] + add)
    zero = apk.dtype.type(0)
    kwid, k0 = ns * g, s0 * g
    k1 = min(k_, k0 + kwid)
    run = kw_ * cg
    whole = cg == c_ and dw == 1
    p_ = oh_ * ow_
    ky0 = k0 // run                      # the tap of k0: kernel row, column, channel
    kx0 = (k0 - ky0 * run) // cg
    cc0 = k0 - ky0 * run - kx0 * cg
    m = min(t0 * mr, m_)                 # the pixel (n, oy, ox) of row m, stepped row by row
    n = m // p_
    oy = (m - n * p_) // ow_
    ox = m - n * p_ - oy * ow_
    for t in range(t0, t1):
        for r in range(mr):
            m, o = t * mr + r, ((t - t0) * mr + r) * kwid
            if m >= m_:
                _fill_seg(apk, o, o + kwid, zero)
                continue
            iy0, ix0 = oy * sh - pt, ox * sw - pl
            in_x = whole and ix0 >= 0 and ix0 + kw_ - 1 < w_
            base = n * h_
            k, ky, kx, cc = k0, ky0, kx0, cc0
            while k < k1:
                iy = iy0 + ky * dh
                row_end = min(k1, (ky + 1) * run)
                if iy < 0 or iy >= h_ or in_x:
                    if iy < 0 or iy >= h_:
                        _fill_seg(apk, o + k - k0, o + row_end - k0, pad)
                    else:
                        _copy_seg(apk, o + k - k0, xf, ((base + iy) * w_ + ix0) * c_ + (k - ky * run),
                                  row_end - k, add)
                    k, ky, kx, cc = row_end, ky + 1, 0, 0
                    continue
                seg_end = min(k1, k - cc + cg)
                ix = ix0 + kx * dw
                if ix < 0 or ix >= w_:
                    _fill_seg(apk, o + k - k0, o + seg_end - k0, pad)
                else:
                    _copy_seg(apk, o + k - k0, xf, ((base + iy) * w_ + ix) * c_ + c0 + cc, seg_end - k, add)
                k, kx, cc = seg_end, kx + 1, 0
                if kx == kw_:
                    ky, kx = ky + 1, 0
            _fill_seg(apk, o + k1 - k0, o + kwid, zero)
            ox += 1
            if ox == ow_:
                ox, oy = 0, oy + 1
                if oy == oh_:
                    oy, n = 0, n + 1


@kernel
def _row_sums_impl(cols, rowsum, r0, r1):
    """rowsum[r] = sum_k cols[r, k] (int64), rows r0..r1-1."""
    for r in range(r0, r1):
        s = np.int64(0)
        for k in range(cols.shape[1]):
            s += np.int64(cols[r, k])
        rowsum[r] = s


BLOCK = 64                         # pixels per work item of rows_to_nchw (the last block takes the rest)


@kernel(inline="always")
def _n_blocks(p_):
    """Work items per image of rows_to_nchw: blocks [b*BLOCK, (b+1)*BLOCK), the last one
    running to P (so BLOCK..2*BLOCK-1 pixels), or one block of P < BLOCK."""
    return max(1, p_ // BLOCK)


@kernel(inline="always")
def _finish_block(src, off, off32, w_zp, wz32, rs, rq_on, mult_g, flo, fhi, zp32, dst):
    """dst[q*Mg + j] for the pixels q of one block (module docstring): src (rows*Mg,) int32,
    rs (rows,) int64 or empty, dst (rows*Mg + spare,) of out's dtype. One branch-free loop
    per case so that LLVM vectorises it (no array is made per pixel: a view costs reference
    counts). rint(v) + zp is wrapped to int32 on purpose (Numba would widen it to int64 and
    LLVM then vectorises it in 64-bit lanes); |rint(v) + zp| <= 510. The int32 forms use int32(acc) = int32(raw + int32(off) - int32(w_zp) * int32(rs)):
    all sums and products are the same mod 2**32."""
    mg = off.shape[0]
    rows = src.shape[0] // max(1, mg)
    if rq_on and rs.shape[0] == 0:
        for q in range(rows):
            for j in range(mg):
                a32 = np.int32(src[q * mg + j] + off32[j])
                dst[q * mg + j] = np.int32(np.int32(ort_round(a32, mult_g[j], flo, fhi)) + zp32)
    elif rq_on:
        for q in range(rows):
            rs32 = np.int32(rs[q])
            for j in range(mg):
                a32 = np.int32(src[q * mg + j] + off32[j] - np.int32(wz32[j] * rs32))
                dst[q * mg + j] = np.int32(np.int32(ort_round(a32, mult_g[j], flo, fhi)) + zp32)
    elif dst.itemsize == 4:
        for q in range(rows):
            rs32 = np.int32(rs[q]) if rs.shape[0] else np.int32(0)
            for j in range(mg):
                dst[q * mg + j] = np.int32(src[q * mg + j] + off32[j] - np.int32(wz32[j] * rs32))
    else:
        for q in range(rows):
            rs64 = rs[q] if rs.shape[0] else np.int64(0)
            for j in range(mg):
                dst[q * mg + j] = np.int64(src[q * mg + j]) + off[j] - w_zp[j] * rs64


@kernel
def _rows_to_nchw_impl(raw, off, w_zp, rowsum, rq, out, ch0, p_, i0, i1):
    """Items i0..i1-1, item = (image, block of BLOCK pixels): out (N, M, P) from raw (rows, Mg).
    Each block is finished row by row into a (BLOCK, Mg) buffer (contiguous, vectorised), then
    transposed into the BLOCK-pixel runs of the output planes by _transpose (the buffer has T
    spare elements for its reads past a row; the stores stay inside this image's channels
    ch0..ch0+Mg-1)."""
    requant, mult, zp, lo, hi = rq
    flo, fhi, zp32 = np.float32(lo - zp), np.float32(hi - zp), np.int32(zp)
    mg, m_ = raw.shape[1], out.shape[1]
    nb = _n_blocks(p_)
    use_rs = rowsum.shape[0] > 0
    off32 = off.astype(np.int32)         # wraps mod 2**32, as intended
    wz32 = w_zp.astype(np.int32)
    mult_g = mult[ch0:ch0 + mg] if requant else np.zeros(mg, np.float32)
    buf = np.empty(min(p_, 2 * BLOCK - 1) * mg + 16, out.dtype)   # + reads past a row
    of = out.reshape(-1)
    rf = raw.reshape(-1)
    for item in range(i0, i1):
        n, b = item // nb, item % nb
        q0, q1 = b * BLOCK, (p_ if b == nb - 1 else b * BLOCK + BLOCK)
        r0, r1 = n * p_ + q0, n * p_ + q1
        _finish_block(rf[r0 * mg:r1 * mg], off, off32, w_zp, wz32, rowsum[r0:r1] if use_rs else rowsum,
                      requant, mult_g, flo, fhi, zp32, buf)
        plane = (n * m_ + ch0) * p_
        _transpose(buf, np.int64(0), mg, q1 - q0, mg, of, plane + q0, p_, buf.size, plane + mg * p_ if q0 == 0 else 0)


@kernel
def _rows_to_nhwc_impl(raw, off, w_zp, rowsum, rq, out, ch0, i0, i1):
    """Items i0..i1-1, item = block of BLOCK rows (the last one takes the rest): out (rows, M)
    columns ch0..ch0+Mg-1 from raw (rows, Mg), finished in place when Mg == M, else through a
    (block, Mg) buffer copied row by row."""
    requant, mult, zp, lo, hi = rq
    flo, fhi, zp32 = np.float32(lo - zp), np.float32(hi - zp), np.int32(zp)
    mg, m_ = raw.shape[1], out.shape[1]
    rows = raw.shape[0]
    nb = max(1, rows // BLOCK)
    use_rs = rowsum.shape[0] > 0
    off32 = off.astype(np.int32)         # wraps mod 2**32, as intended
    wz32 = w_zp.astype(np.int32)
    mult_g = mult[ch0:ch0 + mg] if requant else np.zeros(mg, np.float32)
    whole = mg == m_
    buf = np.empty(0 if whole else min(rows, 2 * BLOCK - 1) * mg, out.dtype)
    of = out.reshape(-1)
    rf = raw.reshape(-1)
    for b in range(i0, i1):
        r0, r1 = b * BLOCK, (rows if b == nb - 1 else b * BLOCK + BLOCK)
        rs = rowsum[r0:r1] if use_rs else rowsum
        if whole:
            _finish_block(rf[r0 * mg:r1 * mg], off, off32, w_zp, wz32, rs, requant, mult_g, flo, fhi, zp32,
                          of[r0 * m_:r1 * m_])
            continue
        _finish_block(rf[r0 * mg:r1 * mg], off, off32, w_zp, wz32, rs, requant, mult_g, flo, fhi, zp32, buf)
        for r in range(r1 - r0):
            out[r0 + r, ch0:ch0 + mg] = buf[r * mg:(r + 1) * mg]


@kernel(parallel=True)
def _to_nhwc_par(x, xh, parts):
    """_to_nhwc_impl over all images in `parts` contiguous ranges, one per parallel thread."""
    n = x.shape[0]
    for q in prange(parts):
        i0, i1 = n * q // parts, n * (q + 1) // parts
        if i0 < i1:
            _to_nhwc_impl(x, xh, i0, i1)


@kernel(parallel=True)
def _im2col_rows_par(xh, c0, cg, kh_, kw_, cgeo, pads, cols, parts):
    """_im2col_rows_impl over all rows in `parts` contiguous ranges, one per parallel thread."""
    n = cols.shape[0]
    for q in prange(parts):
        r0, r1 = n * q // parts, n * (q + 1) // parts
        if r0 < r1:
            _im2col_rows_impl(xh, c0, cg, kh_, kw_, cgeo, pads, cols, r0, r1)


def _fail(msg):
    raise ValueError(msg)


_ACC_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_Q8_DTYPES = (np.dtype(np.uint8), np.dtype(np.int8))
_Q8_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _bits(a):
    """a viewed as unsigned integers of its item size (one compiled kernel per size), or None
    for dtypes that are not 1, 2, 4 or 8-byte numbers."""
    if a.dtype.kind not in "biuf" or a.itemsize not in (1, 2, 4, 8):
        return None
    return a.view(f"u{a.itemsize}")


def _serial(fn, n):
    fn(0, n)


def to_nhwc(x, run=None, out=None) -> np.ndarray:
    """(N, C, H, W) -> a C-contiguous (N, H, W, C) array of the same dtype: `out` when given
    (it must have that shape, dtype and be C-contiguous), else a new one."""
    if not (isinstance(x, np.ndarray) and x.ndim == 4):
        _fail(f"to_nhwc: x must be a 4-D array, got {np.shape(x)}")
    x = np.ascontiguousarray(x)
    shape = (x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    if out is None:
        xh = np.empty(shape, x.dtype)
    elif isinstance(out, np.ndarray) and out.shape == shape and out.dtype == x.dtype and out.flags.c_contiguous:
        xh = out
    else:
        _fail(f"to_nhwc: out must be a C-contiguous {x.dtype} array of shape {shape}")
    xv, hv = _bits(x), _bits(xh)
    if x.shape[1] == 1 or x.shape[2] * x.shape[3] == 1:
        xh.reshape(-1)[...] = x.reshape(-1)         # one channel or one pixel: the same order
    elif xv is None:
        xh[...] = x.transpose(0, 2, 3, 1)
    elif x.size and not _region(_to_nhwc_par, run, x.shape[0], xv, hv):
        (run or _serial)(lambda i0, i1: _to_nhwc_impl(xv, hv, i0, i1), x.shape[0])
    return xh


def im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols, run=None) -> None:
    """cols (N*OH*OW, KH*KW*Cg) = the im2col rows of channels c0..c0+Cg-1 of xh (N, H, W, C)
    (module docstring); cgeo int64 [sh, sw, pt, pl, dh, dw, OH, OW]."""
    where = "im2col_rows"
    if not (isinstance(xh, np.ndarray) and xh.ndim == 4 and xh.flags.c_contiguous and xh.dtype.kind in "iu"):
        _fail(f"{where}: xh must be a C-contiguous integer (N, H, W, C) array")
    if not (isinstance(cgeo, np.ndarray) and cgeo.dtype == np.int64 and cgeo.shape == (8,)):
        _fail(f"{where}: cgeo must be int64 (8,)")
    sh, sw, pt, pl, dh, dw, oh, ow = cgeo.tolist()
    if not (min(sh, sw, dh, dw, oh, ow, kh, kw, cg) >= 1 and min(pt, pl, c0) >= 0 and c0 + cg <= xh.shape[3]):
        _fail(f"{where}: bad geometry {tuple(cgeo)} kernel {kh}x{kw} channels {c0}+{cg} of {xh.shape[3]}")
    if not (isinstance(cols, np.ndarray) and cols.dtype == xh.dtype and cols.flags.c_contiguous
            and cols.shape == (xh.shape[0] * oh * ow, kh * kw * cg)):
        _fail(f"{where}: cols must be C-contiguous {xh.dtype} {(xh.shape[0] * oh * ow, kh * kw * cg)}, "
              f"got {getattr(cols, 'dtype', None)} {getattr(cols, 'shape', None)}")
    info = np.iinfo(xh.dtype)
    if not info.min <= int(pad) <= info.max:
        _fail(f"{where}: pad {pad} outside the {xh.dtype} range")
    xv, cv = _bits(xh), _bits(cols)
    pads = np.full(kw * cg, pad, xh.dtype).view(xv.dtype)     # the source of taps outside the image
    if not _region(_im2col_rows_par, run, cols.shape[0], xv, c0, cg, kh, kw, cgeo, pads, cv):
        (run or _serial)(lambda r0, r1: _im2col_rows_impl(xv, c0, cg, kh, kw, cgeo, pads, cv, r0, r1),
                         cols.shape[0])


def bind_to_nhwc(x, xh):
    """call() doing to_nhwc(x, out=xh) on one thread for these very arrays, checked now."""
    shape = (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) if isinstance(x, np.ndarray) and x.ndim == 4 else None
    if shape is None or not (isinstance(xh, np.ndarray) and xh.shape == shape and xh.dtype == x.dtype
                             and xh.flags.c_contiguous):
        _fail(f"to_nhwc: x must be a 4-D array and out a C-contiguous array of its NHWC shape, got "
              f"{np.shape(x)}, {np.shape(xh)}")
    xv, hv = _bits(x), _bits(xh)
    if not x.flags.c_contiguous or xv is None or x.shape[1] == 1 or x.shape[2] * x.shape[3] == 1 or not x.size:
        return partial(to_nhwc, x, None, xh)
    return partial(_to_nhwc_impl, xv, hv, 0, x.shape[0])


def bind_im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols):
    """call() doing im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols) on one thread for these very
    arrays, checked now (im2col_rows' checks, on an empty pass)."""
    im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols, run=lambda fn, n: None)
    pads = np.full(kw * cg, pad, xh.dtype).view(_bits(xh).dtype)
    return partial(_im2col_rows_impl, _bits(xh), c0, cg, kh, kw, cgeo, pads, _bits(cols), 0, cols.shape[0])


def row_sums(cols, run=None) -> np.ndarray:
    """int64 (rows,) sums of each row of a 2-D integer array."""
    if not (isinstance(cols, np.ndarray) and cols.ndim == 2):
        _fail("row_sums: cols must be 2-D")
    rs = np.empty(cols.shape[0], np.int64)
    (run or _serial)(lambda r0, r1: _row_sums_impl(cols, rs, r0, r1), cols.shape[0])
    return rs


def _check_finish(where, raw, off, w_zp, rowsum, rq, out, ch0, n, m, p):
    """The arguments of rows_to_nchw / rows_to_nhwc (out of N images, M channels, P pixels,
    written at channels ch0..ch0+Mg-1); returns (raw C-contiguous, rq normalised)."""
    if not (isinstance(raw, np.ndarray) and raw.dtype == np.int32 and raw.ndim == 2 and raw.shape[0] == n * p):
        _fail(f"{where}: raw must be int32 ({n * p}, Mg), got {getattr(raw, 'dtype', None)} {getattr(raw, 'shape', None)}")
    mg = raw.shape[1]
    if not 0 <= ch0 <= m - mg:
        _fail(f"{where}: channels {ch0}..{ch0 + mg} outside {m}")
    if not all(isinstance(v, np.ndarray) and v.dtype == np.int64 and v.shape == (mg,) for v in (off, w_zp)):
        _fail(f"{where}: off and w_zp must be int64 ({mg},)")
    if not (isinstance(rowsum, np.ndarray) and rowsum.dtype == np.int64 and rowsum.shape in ((0,), (n * p,))):
        _fail(f"{where}: rowsum must be int64 (0,) or ({n * p},)")
    requant, mult = bool(rq[0]), rq[1]
    if requant:
        if out.dtype not in _Q8_DTYPES:
            _fail(f"{where}: requantization writes uint8/int8, not {out.dtype}")
        if not (isinstance(mult, np.ndarray) and mult.dtype == np.float32 and mult.shape == (m,)):
            _fail(f"{where}: mult must be float32 ({m},)")
        qmin, qmax = _Q8_RANGE[out.dtype]
        if not qmin <= int(rq[3]) <= int(rq[2]) <= int(rq[4]) <= qmax:
            _fail(f"{where}: need lo <= zp <= hi in {out.dtype}, got {int(rq[3])}, {int(rq[2])}, {int(rq[4])}")
    elif out.dtype not in _ACC_DTYPES:
        _fail(f"{where}: a sum is stored as int32/int64, not {out.dtype}")
    return np.ascontiguousarray(raw), (requant, np.ascontiguousarray(mult, np.float32), np.int64(rq[2]),
                                       np.int64(rq[3]), np.int64(rq[4]))


def _check_out3(where, out, layout):
    if not (isinstance(out, np.ndarray) and out.ndim == 3 and out.flags.c_contiguous
            and out.dtype in _ACC_DTYPES + _Q8_DTYPES):
        _fail(f"{where}: out must be a C-contiguous 3-D ({layout}) int32/int64/uint8/int8 array")


def rows_to_nchw(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    """out[n, ch0 + j, p] from raw (N*P, Mg) int32 (module docstring); out (N, M, P)
    int32/int64/uint8/int8, C-contiguous; off, w_zp int64 (Mg,); rowsum int64 (N*P,) or (0,);
    rq = (requant, mult float32 (M,), zp, lo, hi) (requant only for an 8-bit out)."""
    where = "rows_to_nchw"
    _check_out3(where, out, "N, M, P")
    n, m, p = out.shape
    raw, rq = _check_finish(where, raw, off, w_zp, rowsum, rq, out, ch0, n, m, p)
    items = n * max(1, p // BLOCK)                     # _n_blocks
    (run or _serial)(lambda i0, i1: _rows_to_nchw_impl(raw, off, w_zp, rowsum, rq, out, ch0, p, i0, i1), items)


def rows_to_nhwc(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    """out[n, p, ch0 + j] from raw (N*P, Mg) int32: the same values as rows_to_nchw, channels
    last; out (N, P, M) C-contiguous, other arguments as rows_to_nchw."""
    where = "rows_to_nhwc"
    _check_out3(where, out, "N, P, M")
    n, p, m = out.shape
    raw, rq = _check_finish(where, raw, off, w_zp, rowsum, rq, out, ch0, n, m, p)
    rows = n * p
    items = max(1, rows // BLOCK)
    (run or _serial)(lambda i0, i1: _rows_to_nhwc_impl(raw, off, w_zp, rowsum, rq, out.reshape(rows, m), ch0,
                                                       i0, i1), items)


# ------------------------------------------------------------------------------ NumPy twins
def to_nhwc_ref(x, run=None, out=None):
    xh = np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))
    if out is None:
        return xh
    out[...] = xh
    return out


def im2col_rows_ref(xh, c0, cg, kh, kw, cgeo, pad, cols, run=None) -> None:
    sh, sw, pt, pl, dh, dw, oh, ow = (int(v) for v in cgeo)
    n_, h_, w_, _ = xh.shape
    xp = np.full((n_, h_ + pt + (oh - 1) * sh + (kh - 1) * dh + 1, w_ + pl + (ow - 1) * sw + (kw - 1) * dw + 1, cg),
                 pad, np.int64)
    xp[:, pt:pt + h_, pl:pl + w_] = xh[..., c0:c0 + cg]
    out = np.empty((n_, oh, ow, kh, kw, cg), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            out[:, :, :, ky, kx] = xp[:, ky * dh:ky * dh + (oh - 1) * sh + 1:sh, kx * dw:kx * dw + (ow - 1) * sw + 1:sw]
    cols[...] = out.reshape(cols.shape)


def rows_to_nhwc_ref(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    n, p, m = out.shape
    tmp = np.empty((n, m, p), out.dtype)
    tmp[...] = out.transpose(0, 2, 1)
    rows_to_nchw_ref(raw, off, w_zp, rowsum, rq, tmp, ch0)
    out[...] = tmp.transpose(0, 2, 1)


def rows_to_nchw_ref(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    n, m, p = out.shape
    acc = raw.astype(np.int64) + off[None, :]
    if rowsum.size:
        acc = acc - rowsum[:, None] * w_zp[None, :]
    acc = acc.reshape(n, p, -1).transpose(0, 2, 1)
    mg = acc.shape[1]
    if rq[0]:
        zp, lo, hi = int(rq[2]), int(rq[3]), int(rq[4])
        mult = np.asarray(rq[1], np.float32)[None, ch0:ch0 + mg, None]
        v = ort_round_ref(acc.astype(np.int32), mult, lo - zp, hi - zp)
        out[:, ch0:ch0 + mg] = (v.astype(np.int64) + zp).astype(out.dtype)
    elif out.dtype == np.int32:
        out[:, ch0:ch0 + mg] = acc.astype(np.int32)
    else:
        out[:, ch0:ch0 + mg] = acc
