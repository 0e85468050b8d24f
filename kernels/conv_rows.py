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

The jitted functions take flat (1-D) arrays and row ranges [r0, r1) so that chunks can run on
several threads (kernels.fast_gemm.parallel_items); the wrappers check every shape first.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

COLS_BYTES = 32 << 20              # im2col rows per chunk of images: at most this many bytes


def image_chunk(p: int, k: int, n_img: int) -> int:
    """Images per GEMM: as many as keep the (images*P, K) rows under COLS_BYTES (at least one)."""
    return max(1, min(n_img, COLS_BYTES // max(1, p * k)))


PARALLEL_BYTES = 1 << 18           # below this much data a pass runs on the calling thread alone


def runner(nbytes: int):
    """The work-sharing function for a pass over `nbytes` bytes: the fast kernels' thread pool
    (kernels.fast_gemm.parallel_items) for big passes, None (serial) for small ones, whose
    hand-off would cost more than the work."""
    if nbytes < PARALLEL_BYTES:
        return None
    from .fast_gemm import parallel_items
    return parallel_items


def is_plain_1x1(kh, kw, g) -> bool:
    """A 1x1 conv with unit strides and no padding: its im2col rows are the NHWC pixels."""
    return kh == kw == 1 and g.stride_h == g.stride_w == 1 and \
        g.pad_top == g.pad_left == g.pad_bottom == g.pad_right == 0


@kernel
def _to_nhwc_impl(x, xh, n0, n1):
    """xh[n, h, w, c] = x[n, c, h, w] for images n0..n1-1 (4-D arrays, C-contiguous)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    for n in range(n0, n1):
        for h in range(h_):
            for c in range(c_):
                for w in range(w_):
                    xh[n, h, w, c] = x[n, c, h, w]


@kernel
def _im2col_rows_impl(xh, c0, cg, kh_, kw_, cgeo, pad, cols, r0, r1):
    """Rows r0..r1-1 of cols (rows, KH*KW*Cg) from xh (N, H, W, C); cgeo = [sh, sw, pt, pl, dh,
    dw, OH, OW]. When a kernel row lies inside the image and is one contiguous run of xh
    (Cg == C, dw == 1), it is copied as one run of KW*C values."""
    h_, w_, c_ = xh.shape[1], xh.shape[2], xh.shape[3]
    sh, sw, pt, pl, dh, dw, oh_, ow_ = cgeo[0], cgeo[1], cgeo[2], cgeo[3], cgeo[4], cgeo[5], cgeo[6], cgeo[7]
    k_ = kh_ * kw_ * cg
    run = kw_ * cg
    whole = cg == c_ and dw == 1
    xf = xh.reshape(-1)
    cf = cols.reshape(-1)
    p_ = oh_ * ow_
    for r in range(r0, r1):
        n, p = r // p_, r % p_
        oy, ox = p // ow_, p % ow_
        ix0 = ox * sw - pl
        inside_x = ix0 >= 0 and ix0 + (kw_ - 1) * dw < w_
        for ky in range(kh_):
            iy = oy * sh - pt + ky * dh
            d = cf[r * k_ + ky * run:r * k_ + (ky + 1) * run]   # views: the copies vectorise
            if iy < 0 or iy >= h_:
                d[:] = pad
            elif inside_x and whole:
                sv = xf[((n * h_ + iy) * w_ + ix0) * c_:]
                for t in range(run):
                    d[t] = sv[t]
            else:
                for kx in range(kw_):
                    ix = ix0 + kx * dw
                    dk = d[kx * cg:(kx + 1) * cg]
                    if ix < 0 or ix >= w_:
                        dk[:] = pad
                    else:
                        sv = xf[((n * h_ + iy) * w_ + ix) * c_ + c0:]
                        for c in range(cg):
                            dk[c] = sv[c]


@kernel
def _row_sums_impl(cols, rowsum, r0, r1):
    """rowsum[r] = sum_k cols[r, k] (int64), rows r0..r1-1."""
    for r in range(r0, r1):
        s = np.int64(0)
        for k in range(cols.shape[1]):
            s += np.int64(cols[r, k])
        rowsum[r] = s


@kernel
def _rows_to_nchw_impl(raw, off, w_zp, rowsum, rq, out, ch0, p_, i0, i1):
    """Items i0..i1-1, item = (image, block of 64 pixels): out (N, M, P) from raw (rows, Mg).
    Each block is finished row by row into a (64, Mg) buffer (contiguous, vectorisable), then
    transposed into the 64-pixel runs of the output planes."""
    requant, mult, zp, lo, hi = rq
    flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
    mg = raw.shape[1]
    nb = (p_ + 63) // 64
    use_rs = rowsum.shape[0] > 0
    off32 = np.empty(mg, np.int32)
    for j in range(mg):
        off32[j] = np.int32(off[j])      # the sums wrap mod 2**32: int32 arithmetic is the same
    mult_g = mult[ch0:ch0 + mg] if requant else np.zeros(mg, np.float32)
    buf = np.empty((64, mg), out.dtype)
    for item in range(i0, i1):
        n, b = item // nb, item % nb
        q0, q1 = b * 64, min(b * 64 + 64, p_)
        for q in range(q0, q1):
            r = n * p_ + q
            row = raw[r]
            dst = buf[q - q0]
            if use_rs or not requant:
                rs = rowsum[r] if use_rs else np.int64(0)
                for j in range(mg):
                    acc = np.int64(row[j]) + off[j] - w_zp[j] * rs
                    if requant:
                        v = min(max(np.float32(np.int32(acc)) * mult_g[j], flo), fhi)
                        dst[j] = np.int64(np.rint(v)) + zp
                    else:
                        dst[j] = acc
            else:
                for j in range(mg):
                    a32 = np.int32(row[j] + off32[j])
                    v = min(max(np.float32(a32) * mult_g[j], flo), fhi)
                    dst[j] = np.int32(np.rint(v)) + np.int32(zp)
        for j in range(mg):
            o = out[n, ch0 + j]
            for q in range(q0, q1):
                o[q] = buf[q - q0, j]


def _check(cond, msg):
    if not cond:
        raise ValueError(msg)


def to_nhwc(x, run=None) -> np.ndarray:
    """(N, C, H, W) -> a new C-contiguous (N, H, W, C) array of the same dtype."""
    _check(isinstance(x, np.ndarray) and x.ndim == 4, f"to_nhwc: x must be a 4-D array, got {np.shape(x)}")
    x = np.ascontiguousarray(x)
    xh = np.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), x.dtype)
    if x.size:
        (run or _serial)(lambda i0, i1: _to_nhwc_impl(x, xh, i0, i1), x.shape[0])
    return xh


def _serial(fn, n):
    fn(0, n)


def im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols, run=None) -> None:
    """cols (N*OH*OW, KH*KW*Cg) = the im2col rows of channels c0..c0+Cg-1 of xh (N, H, W, C)
    (module docstring); cgeo int64 [sh, sw, pt, pl, dh, dw, OH, OW]."""
    where = "im2col_rows"
    _check(isinstance(xh, np.ndarray) and xh.ndim == 4 and xh.flags.c_contiguous,
           f"{where}: xh must be a C-contiguous (N, H, W, C) array")
    _check(isinstance(cgeo, np.ndarray) and cgeo.dtype == np.int64 and cgeo.shape == (8,),
           f"{where}: cgeo must be int64 (8,)")
    sh, sw, pt, pl, dh, dw, oh, ow = (int(v) for v in cgeo)
    _check(min(sh, sw, dh, dw, oh, ow, kh, kw, cg) >= 1 and min(pt, pl, c0) >= 0 and c0 + cg <= xh.shape[3],
           f"{where}: bad geometry {tuple(cgeo)} kernel {kh}x{kw} channels {c0}+{cg} of {xh.shape[3]}")
    _check(isinstance(cols, np.ndarray) and cols.dtype == xh.dtype and cols.flags.c_contiguous
           and cols.shape == (xh.shape[0] * oh * ow, kh * kw * cg),
           f"{where}: cols must be C-contiguous {xh.dtype} {(xh.shape[0] * oh * ow, kh * kw * cg)}, "
           f"got {getattr(cols, 'dtype', None)} {getattr(cols, 'shape', None)}")
    info = np.iinfo(xh.dtype)
    _check(info.min <= int(pad) <= info.max, f"{where}: pad {pad} outside the {xh.dtype} range")
    pad = xh.dtype.type(pad)
    (run or _serial)(lambda r0, r1: _im2col_rows_impl(xh, c0, cg, kh, kw, cgeo, pad, cols, r0, r1), cols.shape[0])


def row_sums(cols, run=None) -> np.ndarray:
    """int64 (rows,) sums of each row of a 2-D integer array."""
    _check(isinstance(cols, np.ndarray) and cols.ndim == 2, "row_sums: cols must be 2-D")
    rs = np.empty(cols.shape[0], np.int64)
    (run or _serial)(lambda r0, r1: _row_sums_impl(cols, rs, r0, r1), cols.shape[0])
    return rs


def rows_to_nchw(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    """out[n, ch0 + j, p] from raw (N*P, Mg) int32 (module docstring); out (N, M, P)
    int32/int64/uint8/int8, C-contiguous; off, w_zp int64 (Mg,); rowsum int64 (N*P,) or (0,);
    rq = (requant, mult float32 (M,), zp, lo, hi) (requant only for an 8-bit out)."""
    where = "rows_to_nchw"
    _check(isinstance(out, np.ndarray) and out.ndim == 3 and out.flags.c_contiguous
           and out.dtype in (np.int32, np.int64, np.uint8, np.int8), f"{where}: out must be a C-contiguous 3-D integer array")
    n, m, p = out.shape
    _check(isinstance(raw, np.ndarray) and raw.dtype == np.int32 and raw.shape[0] == n * p and raw.ndim == 2,
           f"{where}: raw must be int32 ({n * p}, Mg), got {getattr(raw, 'dtype', None)} {getattr(raw, 'shape', None)}")
    mg = raw.shape[1]
    _check(0 <= ch0 and ch0 + mg <= m, f"{where}: channels {ch0}..{ch0 + mg} outside {m}")
    _check(off.dtype == np.int64 and off.shape == (mg,) and w_zp.dtype == np.int64 and w_zp.shape == (mg,),
           f"{where}: off and w_zp must be int64 ({mg},)")
    _check(rowsum.dtype == np.int64 and rowsum.shape in ((0,), (n * p,)), f"{where}: rowsum must be int64 (0,) or ({n * p},)")
    requant, mult = bool(rq[0]), rq[1]
    if requant:
        _check(out.dtype in (np.uint8, np.int8), f"{where}: requantization writes uint8/int8, not {out.dtype}")
        _check(mult.dtype == np.float32 and mult.shape == (m,), f"{where}: mult must be float32 ({m},)")
        info = np.iinfo(out.dtype)
        _check(info.min <= int(rq[3]) <= int(rq[2]) <= int(rq[4]) <= info.max, f"{where}: need lo <= zp <= hi in {out.dtype}")
    else:
        _check(out.dtype in (np.int32, np.int64), f"{where}: a sum is stored as int32/int64, not {out.dtype}")
    rq = (requant, np.ascontiguousarray(mult, np.float32), np.int64(rq[2]), np.int64(rq[3]), np.int64(rq[4]))
    items = n * ((p + 63) // 64)
    (run or _serial)(lambda i0, i1: _rows_to_nchw_impl(raw, off, w_zp, rowsum, rq, out, ch0, p, i0, i1), items)


# ------------------------------------------------------------------------------ NumPy twins
def to_nhwc_ref(x, run=None):
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


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


def rows_to_nchw_ref(raw, off, w_zp, rowsum, rq, out, ch0, run=None) -> None:
    n, m, p = out.shape
    acc = raw.astype(np.int64) + off[None, :]
    if rowsum.size:
        acc = acc - rowsum[:, None] * w_zp[None, :]
    acc = acc.reshape(n, p, -1).transpose(0, 2, 1)
    mg = acc.shape[1]
    if rq[0]:
        zp, lo, hi = int(rq[2]), int(rq[3]), int(rq[4])
        v = acc.astype(np.int32).astype(np.float32) * np.asarray(rq[1], np.float32)[None, ch0:ch0 + mg, None]
        v = np.clip(v, np.float32(lo - zp), np.float32(hi - zp))
        out[:, ch0:ch0 + mg] = (np.rint(v).astype(np.int64) + zp).astype(out.dtype)
    elif out.dtype == np.int32:
        out[:, ch0:ch0 + mg] = acc.astype(np.int32)
    else:
        out[:, ch0:ch0 + mg] = acc
