"""Fast exact depthwise 2-D convolution (NCHW at the interface), with optional fused ORT requant.

Contract (x uint8/int8 (N, C, H, W), wz = w - w_zp int32 (M, KH*KW), M = C * mult, bias int64 (M,),
geo int64 [KH, KW, sh, sw, pt, pl, dh, dw]):

    acc[n, m, oy, ox] = bias[m] + sum_{ky, kx} (x[n, m // mult, iy, ix] - x_zp) * wz[m, ky*KW + kx]

with iy = oy*sh - pt + ky*dh, ix = ox*sw - pl + kx*dw; taps outside the image contribute 0.
The KH*KW products are summed exactly into an int32 value (callers guarantee |term| < 2**17 and
that the sum fits int32; otherwise the int32 sum wraps mod 2**32), then the bias is added:
- dst int64: int64(sum) + bias[m]                       (exact);
- dst int32: int32(sum + bias[m])                       (wrapped mod 2**32);
- dst uint8/int8 with rq = (True, mult f32 (M,), zp, lo, hi), onnxruntime's float requant:
      v = clamp(f32(int32(sum + bias[m])) * mult[m], f32(lo - zp), f32(hi - zp))   (all float32)
      dst = rint_half_even(v) + zp
  rq = (False, ...) stores the sum as for int32/int64 (wrapped to the dst dtype).

Sums: int32 lanes (products formed in 32 bits; they and the sums wrap mod 2**32 exactly as
the contract's int32 sum does). A float32 variant (exact below 2**24) measured no faster here.

Two loop orders, same integers:
- "rows" (wide outputs, OW >= ROWS_MIN_OW): one plane (n, m) at a time. The plane is copied once,
  centred and zero-padded, into sh*sw phases (phase (py, px) holds padded rows py, py + sh, ...
  and columns px, px + sw, ...), each phase (OH + (KH-1)*dh//sh) x (OW + (KW-1)*dw//sw). Then
  output (oy, ox) reads tap t at toff[t] + oy*wq + ox: one branch-free loop over the whole
  plane (LLVM vectorises it; the wq - OW columns past each row are computed and dropped), and
  each output row is stored (or requantized) straight into dst. Column stride 2 is the
  exception: the plane keeps its columns (a plain row copy; splitting them cost more than it
  saved), the sums run at every column and the row store keeps every other one.
- "chan" (narrow outputs, many channels): blocks of CB output channels. The block is copied,
  centred and zero-padded, channel-last, into sw column phases; an output row of the block is
  one contiguous OW*CB-lane loop over the taps (the taps tiled along the row); requantized rows
  are gathered per block and scattered to its NCHW planes.
Work is shared over planes (rows) or (block, image) items (chan) by
kernels.threads.parallel_items in at most 2 chunks per thread; problems below SERIAL_WORK
multiply-adds run on the calling thread.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel
from .conv import ConvGeom, conv2d_acc_ref
from .requant import ort_round, ort_round_ref
from .threads import parallel_items

CB = 16                 # channels per block of the "chan" path (two AVX2 vectors)
ROWS_MIN_OW = 24        # the "rows" path for outputs at least this wide
SERIAL_WORK = 1 << 19   # below this many multiply-adds (~0.1 ms here), one thread: the pool's
                        # ~10-20 us per call and a late worker cost more than they save
_K, _KW, _SH, _SW, _PT, _PL, _DH, _DW = range(8)


# ------------------------------------------------------------------------------- shared steps
@kernel(inline="always")
def _rq_consts(rq):
    """(requant, mult, zp as float32, f32(lo - zp), f32(hi - zp))."""
    requant, mult, zp, lo, hi = rq
    return requant, mult, np.float32(zp), np.float32(lo - zp), np.float32(hi - zp)


@kernel(inline="always")
def _zero(a, i0, i1):
    for i in range(i0, i1):
        a[np.uint64(i)] = 0


@kernel(inline="always")
def _copy_centred(xf, src, buf, dst0, i0, i1, zp):
    """buf[dst0 + i] = x - zp with x = xf[src + i], for i in [i0, i1); unsigned indices (all in
    range) so the loop has no negative-index fix-ups and vectorises."""
    for i in range(i0, i1):
        buf[np.uint64(dst0 + i)] = np.int32(np.int32(xf[np.uint64(src + i)]) - zp)


@kernel(inline="always")
def _finish_row(acc, a0, step, ow_, df, d0, b64, requant, mm, zpf, flo, fhi):
    """df[d0 + ox] (a flat view of dst) for ox < OW from the int32 tap sums acc[a0 + ox*step]
    (step 1 or 2): int64(sum) + bias, or the ORT requant of the wrapped int32 sum + bias
    (float32 throughout, rint half to even)."""
    b32 = np.int32(b64)
    if requant and step == 1:
        for ox in range(ow_):
            t = np.int32(np.int32(acc[np.uint64(a0 + ox)]) + b32)
            df[np.uint64(d0 + ox)] = np.int32(ort_round(t, mm, flo, fhi) + zpf)
    elif requant:
        for ox in range(ow_):
            t = np.int32(np.int32(acc[np.uint64(a0 + 2 * ox)]) + b32)
            df[np.uint64(d0 + ox)] = np.int32(ort_round(t, mm, flo, fhi) + zpf)
    else:
        for ox in range(ow_):
            df[np.uint64(d0 + ox)] = np.int64(np.int32(acc[np.uint64(a0 + ox * step)])) + b64


# ------------------------------------------------------------------------------- "rows" path
@kernel
def _fill_phases(xf, plane0, h_, w_, zp, geo, xs, hq, wq, tmp):
    """xs[((py*sw + px)*hq + yq)*wq + j] = x_plane[yq*sh + py - pt, j*sw + px - pl] - zp, or 0
    outside the image: the zero-padded, centred plane split into sh*sw phases (every sh-th row,
    every sw-th column); x_plane = xf[plane0 : plane0 + H*W]; tmp (sw*wq,) holds one padded row."""
    sh, sw, pt, pl = geo[_SH], geo[_SW], geo[_PT], geo[_PL]
    wt = sw * wq
    x_lo = min(wt, pl)
    x_hi = min(wt, max(x_lo, w_ + pl))
    for yy in range(sh * hq):
        iy = yy - pt
        py, yq = yy % sh, yy // sh
        o = (py * sw * hq + yq) * wq
        if iy < 0 or iy >= h_:
            for px in range(sw):
                _zero(xs, o + px * hq * wq, o + px * hq * wq + wq)
            continue
        src = plane0 + iy * w_ - pl
        if sw == 1:
            _zero(xs, o, o + x_lo)
            _copy_centred(xf, src, xs, o, x_lo, x_hi, zp)
            _zero(xs, o + x_hi, o + wq)
            continue
        _zero(tmp, 0, x_lo)
        _copy_centred(xf, src, tmp, 0, x_lo, x_hi, zp)
        _zero(tmp, x_hi, wt)
        if sw == 2:
            o1 = o + hq * wq
            for j in range(wq):
                xs[np.uint64(o + j)] = tmp[np.uint64(2 * j)]
                xs[np.uint64(o1 + j)] = tmp[np.uint64(2 * j + 1)]
        else:
            for px in range(sw):
                for j in range(wq):
                    xs[np.uint64(o + px * hq * wq + j)] = tmp[np.uint64(j * sw + px)]


@kernel
def _tap_offsets(geo, hq, wq, lane):
    """toff[ky*KW + kx]: where tap (ky, kx) of output (0, 0) sits in the phase-split plane (times
    `lane` values per pixel); output (oy, ox) reads toff + (oy*wq + ox)*lane."""
    kh_, kw_ = geo[_K], geo[_KW]
    sh, sw, dh, dw = geo[_SH], geo[_SW], geo[_DH], geo[_DW]
    toff = np.empty(kh_ * kw_, np.int64)
    for ky in range(kh_):
        for kx in range(kw_):
            ph = ((ky * dh) % sh) * sw + (kx * dw) % sw
            toff[ky * kw_ + kx] = ((ph * hq + (ky * dh) // sh) * wq + (kx * dw) // sw) * lane
    return toff


@kernel
def _plane_sums(xs, toff, wt, acc):
    """acc[i] = sum_t xs[toff[t] + i] * wt[t] for i < acc.size (i = oy*wq + ox; the columns
    ox >= OW are not outputs). int32, wrapping."""
    n_ = acc.size
    for i in range(n_):
        acc[i] = 0
    for t in range(toff.size):
        o, wv = toff[t], wt[t]
        for i in range(n_):
            acc[i] += xs[np.uint64(o + i)] * wv


@kernel
def _plane_sums_9(xs, toff, wt, acc):
    """_plane_sums for nine taps in one pass (a shallow sum tree; wrapping int32 sums are
    exact mod 2**32 in any order)."""
    o0, o1, o2, o3, o4, o5, o6, o7, o8 = (toff[0], toff[1], toff[2], toff[3], toff[4], toff[5],
                                          toff[6], toff[7], toff[8])
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = wt[0], wt[1], wt[2], wt[3], wt[4], wt[5], wt[6], wt[7], wt[8]
    for i in range(acc.size):
        s = (((xs[np.uint64(o0 + i)] * w0 + xs[np.uint64(o1 + i)] * w1)
              + (xs[np.uint64(o2 + i)] * w2 + xs[np.uint64(o3 + i)] * w3))
             + ((xs[np.uint64(o4 + i)] * w4 + xs[np.uint64(o5 + i)] * w5)
                + (xs[np.uint64(o6 + i)] * w6 + xs[np.uint64(o7 + i)] * w7))
             + xs[np.uint64(o8 + i)] * w8)
        acc[i] = s


@kernel
def _rows_impl(x, x_zp, wz, bias, geo, dst, rq, i0, i1):
    """Planes i0..i1-1 (plane = n*M + m) by the "rows" loop order."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    m_, oh_, ow_ = dst.shape[1], dst.shape[2], dst.shape[3]
    kh_, kw_, sh, sw, dh, dw = geo[_K], geo[_KW], geo[_SH], geo[_SW], geo[_DH], geo[_DW]
    requant, mult, zpf, flo, fhi = _rq_consts(rq)
    # column stride 2: sum at every column (twice the sums, but the fill is a plain row copy,
    # much cheaper than splitting columns) and keep every other one; stride 3+: column phases
    step = 2 if sw == 2 else 1
    g = geo.copy()
    g[_SW] = sw // step
    ow_c = (ow_ - 1) * step + 1
    hq = oh_ + ((kh_ - 1) * dh) // sh
    wq = ow_c + ((kw_ - 1) * dw) // g[_SW]
    xf = x.reshape(x.size)
    xs = np.empty(sh * g[_SW] * hq * wq, np.int32)
    tmp = np.empty(g[_SW] * wq, np.int32)
    acc = np.empty((oh_ - 1) * wq + ow_c, np.int32)
    wt = np.empty(kh_ * kw_, np.int32)
    toff = _tap_offsets(g, hq, wq, 1)
    df = dst.reshape(dst.size)
    zp32 = np.int32(x_zp)
    mult_ch = m_ // c_
    last = -1
    for plane in range(i0, i1):
        n, m = plane // m_, plane % m_
        src = n * c_ + m // mult_ch
        if src != last:
            _fill_phases(xf, src * h_ * w_, h_, w_, zp32, g, xs, hq, wq, tmp)
            last = src
        for t in range(kh_ * kw_):
            wt[t] = wz[m, t]
        if kh_ * kw_ == 9:
            _plane_sums_9(xs, toff, wt, acc)
        else:
            _plane_sums(xs, toff, wt, acc)
        mm = mult[m] if requant else np.float32(0)
        for oy in range(oh_):
            _finish_row(acc, oy * wq, step, ow_, df, (plane * oh_ + oy) * ow_, bias[m], requant, mm, zpf,
                        flo, fhi)


# ------------------------------------------------------------------------------- "chan" path
@kernel
def _phase_ranges(w_, geo, wq):
    """jr[2p], jr[2p+1]: the columns jj < wq of phase p (padded column jj*sw + p) that lie in
    the image, i.e. 0 <= jj*sw + p - pl < W."""
    sw, pl = geo[_SW], geo[_PL]
    jr = np.empty(2 * sw, np.int64)
    for p in range(sw):
        jr[2 * p] = min(wq, max(0, (pl - p + sw - 1) // sw))
        jr[2 * p + 1] = min(wq, max(jr[2 * p], (w_ + pl - p + sw - 1) // sw))
    return jr


@kernel
def _fill_block(x, n, m0, mult_ch, zp, geo, xb, hp, wq, jr):
    """xb[((p*hp + yy)*wq + jj)*CB + j] = x[n, (m0 + j) // mult, yy - pt, jj*sw + p - pl] - zp
    for the image pixels: column phases as in _fill_phases, each padded pixel holding CB
    channels (channel-last); phase p's image columns are jj in [jr[2p], jr[2p+1]). The caller
    zeroes xb once: the pads stay 0, and lanes beyond the last channel repeat it (finite values
    that meet zero weights)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    sw, pt, pl = geo[_SW], geo[_PT], geo[_PL]
    xf = x.reshape(x.size)
    src = np.empty(CB, np.int64)
    for j in range(CB):
        src[j] = (n * c_ + min(c_ - 1, (m0 + j) // mult_ch)) * h_ * w_ - pl
    for iy in range(max(0, -pt), min(h_, hp - pt)):
        for p in range(sw):
            o = (p * hp + iy + pt) * wq * CB
            for jj in range(jr[2 * p], jr[2 * p + 1]):
                ix = iy * w_ + jj * sw + p
                for j in range(CB):
                    xb[np.uint64(o + jj * CB + j)] = np.int32(np.int32(xf[np.uint64(src[j] + ix)]) - zp)


@kernel
def _block_row(xb, hp, wq, wrow, geo, acc, oy):
    """acc[ox*CB + j] = sum over taps of xb[phase, oy*sh + ky*dh, ox + q, j] * w[tap, j], the
    taps tiled along the row in wrow[tap*L + ox*CB + j] (L = OW*CB); int32, wrapping."""
    kh_, kw_ = geo[_K], geo[_KW]
    sh, sw, dh, dw = geo[_SH], geo[_SW], geo[_DH], geo[_DW]
    n_ = acc.size
    for i in range(n_):
        acc[i] = 0
    for ky in range(kh_):
        r = oy * sh + ky * dh
        for kx in range(kw_):
            o = ((((kx * dw) % sw) * hp + r) * wq + (kx * dw) // sw) * CB
            ow_ = (ky * kw_ + kx) * n_
            for i in range(n_):
                acc[i] += xb[np.uint64(o + i)] * wrow[np.uint64(ow_ + i)]


@kernel
def _block_row_3x3(xb, hp, wq, wrow, geo, acc, oy):
    """_block_row for KH = KW = 3: the nine taps in one pass along the row."""
    sh, sw, dh, dw = geo[_SH], geo[_SW], geo[_DH], geo[_DW]
    r0 = oy * sh
    c0 = r0 * wq * CB
    c1 = (((dw % sw) * hp + r0) * wq + dw // sw) * CB
    c2 = ((((2 * dw) % sw) * hp + r0) * wq + (2 * dw) // sw) * CB
    d = dh * wq * CB
    n_ = acc.size
    for i in range(n_):
        a, b, c = c0 + i, c1 + i, c2 + i
        s = (((xb[np.uint64(a)] * wrow[np.uint64(i)] + xb[np.uint64(b)] * wrow[np.uint64(n_ + i)])
              + (xb[np.uint64(c)] * wrow[np.uint64(2 * n_ + i)]
                 + xb[np.uint64(a + d)] * wrow[np.uint64(3 * n_ + i)]))
             + ((xb[np.uint64(b + d)] * wrow[np.uint64(4 * n_ + i)]
                 + xb[np.uint64(c + d)] * wrow[np.uint64(5 * n_ + i)])
                + (xb[np.uint64(a + 2 * d)] * wrow[np.uint64(6 * n_ + i)]
                   + xb[np.uint64(b + 2 * d)] * wrow[np.uint64(7 * n_ + i)]))
             + xb[np.uint64(c + 2 * d)] * wrow[np.uint64(8 * n_ + i)])
        acc[i] = s


@kernel
def _tile_block(wz, bias, mult, requant, m0, nb, wrow, brow, mrow):
    """Per lane i = ox*CB + j of a row: wrow[tap*L + i] = wz[m0 + j, tap], brow[i] = int32(bias),
    mrow[i] = mult (zero for the lanes j >= nb beyond the last channel)."""
    n_ = brow.size
    taps = wz.shape[1]
    for i in range(n_):
        j = i % CB
        ok = j < nb
        for t in range(taps):
            wrow[t * n_ + i] = wz[m0 + j, t] if ok else 0
        brow[i] = np.int32(bias[m0 + j]) if ok else 0
        mrow[i] = mult[m0 + j] if (ok and requant) else np.float32(0)


@kernel
def _chan_impl(x, x_zp, wz, bias, geo, dst, rq, i0, i1):
    """Items i0..i1-1 (item = block*N + n: one block of CB channels of one image) by the "chan"
    loop order."""
    c_ = x.shape[1]
    m_, oh_, ow_ = dst.shape[1], dst.shape[2], dst.shape[3]
    kh_, kw_, sh, sw, dh, dw = geo[_K], geo[_KW], geo[_SH], geo[_SW], geo[_DH], geo[_DW]
    requant, mult, zpf, flo, fhi = _rq_consts(rq)
    hp = (oh_ - 1) * sh + (kh_ - 1) * dh + 1
    wq = ow_ + ((kw_ - 1) * dw) // sw
    lanes = ow_ * CB
    xb = np.zeros(sw * hp * wq * CB, np.int32)
    wrow = np.empty(kh_ * kw_ * lanes, np.int32)
    acc = np.empty(lanes, np.int32)
    brow = np.empty(lanes, np.int32)
    mrow = np.empty(lanes, np.float32)
    res = np.empty(oh_ * lanes, np.int32)
    df = dst.reshape(dst.size)
    jr = _phase_ranges(x.shape[3], geo, wq)
    zp32 = np.int32(x_zp)
    mult_ch = m_ // c_
    last = -1
    n_img = x.shape[0]
    for item in range(i0, i1):
        blk, n = item // n_img, item % n_img
        m0 = blk * CB
        nb = min(CB, m_ - m0)
        _fill_block(x, n, m0, mult_ch, zp32, geo, xb, hp, wq, jr)
        if blk != last:
            _tile_block(wz, bias, mult, requant, m0, nb, wrow, brow, mrow)
            last = blk
        for oy in range(oh_):
            if kh_ == 3 and kw_ == 3:
                _block_row_3x3(xb, hp, wq, wrow, geo, acc, oy)
            else:
                _block_row(xb, hp, wq, wrow, geo, acc, oy)
            if requant:
                r0 = oy * lanes
                for i in range(lanes):
                    t = np.int32(np.int32(acc[i]) + brow[i])
                    res[np.uint64(r0 + i)] = np.int32(ort_round(t, mrow[i], flo, fhi) + zpf)
            else:
                plane0 = ((n * m_ + m0) * oh_ + oy) * ow_
                for ox in range(ow_):
                    for j in range(nb):
                        df[np.uint64(plane0 + j * oh_ * ow_ + ox)] = \
                            np.int64(np.int32(acc[ox * CB + j])) + bias[m0 + j]
        if requant:
            _scatter_block(res, df, (n * m_ + m0) * oh_ * ow_, oh_ * ow_, nb)


@kernel(inline="always")
def _scatter_block(res, df, d0, plane, nb):
    """df[d0 + j*plane + p] = res[p*CB + j]: a block's channel-last results into NCHW planes."""
    for j in range(nb):
        o = d0 + j * plane
        for p in range(plane):
            df[np.uint64(o + p)] = res[np.uint64(p * CB + j)]


# ------------------------------------------------------------------------------- wrappers
_RANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}
_X_DTYPES = frozenset(_RANGE)
_DST_DTYPES = frozenset(np.dtype(d) for d in (np.int32, np.int64, np.uint8, np.int8))
_I32_SET, _I64_SET, _F32_SET = (frozenset([np.dtype(d)]) for d in (np.int32, np.int64, np.float32))
_INTS = (int, np.integer)


def _fail(name, msg):
    raise ValueError(f"depthwise: {name} {msg}")


def _check_array(a, name, ndim, dtypes):
    """a: a C-contiguous, native-order ndarray of `ndim` dimensions and a dtype in `dtypes`."""
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype not in dtypes:
        _fail(name, f"must be a {ndim}-D {'/'.join(sorted(d.name for d in dtypes))} array, got "
              f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    if not a.flags.c_contiguous:
        _fail(name, "must be C-contiguous")


def _check_int(name, v, lo, hi):
    if not isinstance(v, _INTS) or isinstance(v, (bool, np.bool_)) or not lo <= v <= hi:
        _fail(name, f"must be an integer in [{lo}, {hi}], got {v!r}")


def _check_geo(geo, x, dst):
    """geo = [KH, KW, sh, sw, pt, pl, dh, dw]: sizes >= 1, pads >= 0, and dst's OH/OW must come
    from bottom/right pads >= 0 (they are implied up to stride - 1)."""
    _check_array(geo, "geo", 1, _I64_SET)
    if geo.shape != (8,):
        _fail("geo", f"must be [KH, KW, sh, sw, pt, pl, dh, dw] (8,), got {geo.shape}")
    kh, kw, sh, sw, pt, pl, dh, dw = g = geo.tolist()
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(pt, pl) < 0 or max(g) >= 2**20:
        _fail("geo", f"needs 1 <= kernel/strides/dilations, 0 <= pads, all < 2**20, got {g}")
    pb = (dst.shape[2] - 1) * sh + (kh - 1) * dh + 1 - x.shape[2] - pt
    pr = (dst.shape[3] - 1) * sw + (kw - 1) * dw + 1 - x.shape[3] - pl
    if pb < 1 - sh or pr < 1 - sw:
        _fail("dst", f"shape {dst.shape} does not match geo {g} and x {x.shape}: "
                     f"the bottom/right pads would be negative")
    return kh * kw


def _check_rq(rq, dst, m):
    """rq = (requant, mult float32 (M,) finite, zp, lo, hi); when requant, dst is uint8/int8 and
    lo <= hi, zp all in its range."""
    if not isinstance(rq, tuple) or len(rq) != 5:
        _fail("rq", "must be a tuple (requant, mult, zp, lo, hi)")
    requant, mult, zp, lo, hi = rq
    if not isinstance(requant, (bool, np.bool_)):
        _fail("rq", f"flag must be a bool, got {type(requant).__name__}")
    _check_array(mult, "rq mult", 1, _F32_SET)
    if not requant:
        for name, v in (("zp", zp), ("lo", lo), ("hi", hi)):
            _check_int(f"rq {name}", v, -2**62, 2**62)
        return
    if dst.dtype not in _X_DTYPES:
        _fail("dst", f"must be uint8/int8 when rq requantizes, got {dst.dtype}")
    if mult.shape != (m,) or not _all_finite(mult):
        _fail("rq mult", f"must be finite float32 ({m},), got {mult.shape}")
    dmin, dmax = _RANGE[dst.dtype]
    _check_int("rq zp", zp, dmin, dmax)
    _check_int("rq lo", lo, dmin, dmax)
    _check_int("rq hi", hi, lo, dmax)


def _validate(x, x_zp, wz, bias, geo, dst, rq) -> int:
    """ValueError naming the first bad argument; returns KH*KW."""
    _check_array(x, "x", 4, _X_DTYPES)
    _check_int("x_zp", x_zp, *_RANGE[x.dtype])
    _check_array(dst, "dst", 4, _DST_DTYPES)
    _check_array(wz, "wz", 2, _I32_SET)
    _check_array(bias, "bias", 1, _I64_SET)
    n, c = x.shape[:2]
    m = dst.shape[1]
    if min(x.shape) < 1 or min(dst.shape) < 1:
        _fail("x", f"{x.shape} and dst {dst.shape} must not be empty")
    if dst.shape[0] != n or m % c:
        _fail("dst", f"shape {dst.shape} must be (N={n}, M = C*mult with C={c}, OH, OW)")
    taps = _check_geo(geo, x, dst)
    if wz.shape != (m, taps):
        _fail("wz", f"must be (M, KH*KW) = {(m, taps)}, got {wz.shape}")
    if bias.shape != (m,):
        _fail("bias", f"must be ({m},), got {bias.shape}")
    _check_rq(rq, dst, m)
    return taps


@kernel
def _all_finite(a):
    for v in a:
        if not np.isfinite(v):
            return False
    return True


def _path(dst) -> str:
    return "rows" if dst.shape[3] >= ROWS_MIN_OW else "chan"


def depthwise(x, x_zp, wz, bias, geo, dst, rq, threads=None) -> None:
    """dst = the depthwise conv of the module docstring (fast kernels); raises ValueError naming
    the bad argument. threads: the pool size of kernels.threads.parallel_items (None: its default)."""
    taps = _validate(x, x_zp, wz, bias, geo, dst, rq)
    n, m, oh, ow = dst.shape
    impl, items = (_rows_impl, n * m) if _path(dst) == "rows" else (_chan_impl, n * (-(-m // CB)))
    if n * m * oh * ow * taps < SERIAL_WORK:
        threads = 1
    zp = np.int64(x_zp)
    _split_run(lambda i0, i1: impl(x, zp, wz, bias, geo, dst, rq, i0, i1), items, threads)


def _split_run(run, items, threads):
    """run(i0, i1) over range(items) in at most 2 chunks per thread (threads None: the pool's
    default count)."""
    parallel_items(run, items, threads=threads, per_thread=2)


def depthwise_ref(x, x_zp, wz, bias, geo, dst, rq, threads=None) -> None:
    """NumPy int64 twin of depthwise (no validation; threads is ignored): the sums are
    kernels.conv.conv2d_acc_ref's (group = C, weights wz, w_zp = 0), then the contract's store."""
    kh, kw, sh, sw, pt, pl, dh, dw = (int(v) for v in geo)
    n, m, oh, ow = dst.shape
    c, h, w = x.shape[1:]
    pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - h - pt)
    pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - w - pl)
    acc = np.empty((n, m, oh, ow), np.int64)
    conv2d_acc_ref(x, wz.reshape(m, 1, kh, kw), x_zp, np.zeros(m, np.int64), bias,
                   ConvGeom(sh, sw, pt, pl, pb, pr, dh, dw, c), acc)
    requant, mult, zp, lo, hi = rq
    a32 = ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)
    if not requant:
        dst[...] = acc if dst.dtype == np.int64 else a32.astype(dst.dtype)
        return
    v = ort_round_ref(a32, np.asarray(mult, np.float32)[None, :, None, None], int(lo) - int(zp), int(hi) - int(zp))
    dst[...] = (v.astype(np.int64) + int(zp)).astype(dst.dtype)
