"""2-D integer convolution (general, grouped, depthwise), exact int64 sums (portable path).

    acc[n, m, oy, ox] = bias[m] + sum_{c, ky, kx} (x[n, g*Cg + c, iy, ix] - x_zp) * (w[m, c, ky, kx] - w_zp[m])

with g = m // (M / group), iy = oy*sh - pad_top + ky*dh, ix = ox*sw - pad_left + kx*dw; taps
outside the image contribute 0 (padding with x_zp). x: (N, C, H, W), w: (M, C/group, KH, KW),
any integer dtypes; acc (N, M, OH, OW) int32 (stores wrap) or int64 (exact).
The canonical K order (used by the narrow-accumulator modes) is channel, kernel row, column.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import kernel


class ConvGeom(NamedTuple):
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    dil_h: int
    dil_w: int
    group: int


def conv_out_hw(h, w, kh, kw, geom: ConvGeom):
    oh = (h + geom.pad_top + geom.pad_bottom - geom.dil_h * (kh - 1) - 1) // geom.stride_h + 1
    ow = (w + geom.pad_left + geom.pad_right - geom.dil_w * (kw - 1) - 1) // geom.stride_w + 1
    return oh, ow


@kernel
def _conv2d_impl(x, w, x_zp, w_zp, bias, sh, sw, pt, pl, dh, dw, group, acc):
    n_, c_, h_, wd_ = x.shape
    m_, cg, kh_, kw_ = w.shape
    oh_, ow_ = acc.shape[2], acc.shape[3]
    mg = m_ // group
    wz = np.empty((m_, cg, kh_, kw_), np.int64)
    for m in range(m_):
        for c in range(cg):
            for ky in range(kh_):
                for kx in range(kw_):
                    wz[m, c, ky, kx] = np.int64(w[m, c, ky, kx]) - w_zp[m]
    row = np.empty(ow_, np.int64)
    for n in range(n_):
        for m in range(m_):
            g = m // mg
            for oy in range(oh_):
                for ox in range(ow_):
                    row[ox] = bias[m]
                for c in range(cg):
                    ci = g * cg + c
                    for ky in range(kh_):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= h_:
                            continue
                        for kx in range(kw_):
                            wv = wz[m, c, ky, kx]
                            if wv == 0:
                                continue
                            for ox in range(ow_):
                                ix = ox * sw - pl + kx * dw
                                if ix >= 0 and ix < wd_:
                                    row[ox] += (np.int64(x[n, ci, iy, ix]) - x_zp) * wv
                for ox in range(ow_):
                    acc[n, m, oy, ox] = row[ox]


def _check(x, w, w_zp, bias, geom, acc):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d: x {x.shape} and w {w.shape} must be 4-D")
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    g = geom.group
    if g < 1 or c != g * cg or m % g:
        raise ValueError(f"conv2d: {c} input channels, weight {w.shape} and group {g} do not fit")
    if min(geom.stride_h, geom.stride_w, geom.dil_h, geom.dil_w) < 1 or \
            min(geom.pad_top, geom.pad_left, geom.pad_bottom, geom.pad_right) < 0:
        raise ValueError(f"conv2d: strides/dilations must be >= 1 and pads >= 0, got {geom}")
    oh, ow = conv_out_hw(h, wd, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: kernel {kh}x{kw} (dilated) is larger than the padded input {h}x{wd}")
    if acc.shape != (n, m, oh, ow) or acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"conv2d: acc must be int32/int64 {(n, m, oh, ow)}, got {acc.dtype} {acc.shape}")
    if w_zp.shape != (m,) or bias.shape != (m,):
        raise ValueError(f"conv2d: w_zp {w_zp.shape} and bias {bias.shape} must be ({m},)")
    if x.dtype.kind not in "iu" or w.dtype.kind not in "iu":
        raise ValueError("conv2d: x and w must be integer arrays")


def conv2d_acc(x, w, x_zp, w_zp, bias, geom: ConvGeom, acc) -> None:
    w_zp = np.ascontiguousarray(w_zp, np.int64)
    bias = np.ascontiguousarray(bias, np.int64)
    _check(x, w, w_zp, bias, geom, acc)
    _conv2d_impl(np.ascontiguousarray(x), np.ascontiguousarray(w), np.int64(x_zp), w_zp, bias,
                 geom.stride_h, geom.stride_w, geom.pad_top, geom.pad_left, geom.dil_h, geom.dil_w,
                 geom.group, acc)


def conv2d_acc_ref(x, w, x_zp, w_zp, bias, geom: ConvGeom, acc) -> None:
    """NumPy int64 twin: explicit zero-point padding, then one strided slice per tap."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.full((n, c, h + geom.pad_top + geom.pad_bottom, wd + geom.pad_left + geom.pad_right),
                 np.int64(x_zp), np.int64)
    xp[:, :, geom.pad_top:geom.pad_top + h, geom.pad_left:geom.pad_left + wd] = x
    xp -= np.int64(x_zp)
    oh, ow = acc.shape[2], acc.shape[3]
    wz = w.astype(np.int64) - np.asarray(w_zp, np.int64)[:, None, None, None]
    mg = m // geom.group
    out = np.zeros((n, m, oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * geom.dil_h, kx * geom.dil_w
            sl = xp[:, :, y0:y0 + geom.stride_h * (oh - 1) + 1:geom.stride_h,
                    x0:x0 + geom.stride_w * (ow - 1) + 1:geom.stride_w]
            for g in range(geom.group):
                xs = sl[:, g * cg:(g + 1) * cg]
                ws = wz[g * mg:(g + 1) * mg, :, ky, kx]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", xs, ws)
    acc[...] = (out + np.asarray(bias, np.int64)[None, :, None, None]).astype(acc.dtype)
