"""2-D integer convolution (general, grouped, depthwise), int64 sums (portable Numba path).

    acc[n, m, oy, ox] = bias[m] + sum_{c, ky, kx} (x[n, g*Cg + c, iy, ix] - x_zp) * (w[m, c, ky, kx] - w_zp[m])

with g = m // (M / group), iy = oy*sh - pad_top + ky*dh, ix = ox*sw - pad_left + kx*dw; taps
outside the image contribute 0 (as if padded with x_zp). x: (N, C, H, W), w: (M, C/group, KH, KW),
integer dtypes of at most 32 bits; x_zp scalar; w_zp, bias int64 (M,); acc (N, M, OH, OW) int32
(stores wrap, two's complement) or int64 (exact for 8/16-bit operands).

Three loops, chosen from the shapes (all give the same integers):
- depthwise (C/group == 1): one output plane at a time, int64 sums over the KH*KW taps;
- 1x1, stride 1, no padding: per image and group, the GEMM  w (Mg, Cg) x x (Cg, H*W);
- otherwise im2col per image and group (rows in the canonical K order: channel, kernel row,
  kernel column; padded taps hold 0 after centring) and the GEMM of kernels.gemm, which sums
  runs of products in int32 only where the dtype bounds prove they cannot overflow.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .gemm import (centre, centred_bound, check_acc, check_int_operand, check_scalar_zp, check_vector,
                   gemm_centred_impl, int64_out, k_block, store_acc)
from .jit import kernel


class ConvGeom(NamedTuple):
    """Geometry of a 2-D convolution (all ints): strides, pads (top, left, bottom, right),
    dilations and the group count."""
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
    """(oh, ow) = floor((size + pads - dil*(k-1) - 1) / stride) + 1 per axis (may be < 1)."""
    oh = (h + geom.pad_top + geom.pad_bottom - geom.dil_h * (kh - 1) - 1) // geom.stride_h + 1
    ow = (w + geom.pad_left + geom.pad_right - geom.dil_w * (kw - 1) - 1) // geom.stride_w + 1
    return oh, ow


# --------------------------------------------------------------------------------- kernels
@kernel
def _ox_range(off, sw, w_, ow_):
    """The ox in [0, ow_) whose ix = ox*sw + off lies inside [0, w_)."""
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    hi = 0 if w_ - 1 - off < 0 else (w_ - 1 - off) // sw + 1
    return lo, min(hi, ow_)


@kernel
def _im2col_impl(xi, kh_, kw_, sh, sw, pt, pl, dh, dw, oh_, ow_, col):
    """col[(c*KH + ky)*KW + kx, oy*OW + ox] = xi[c, iy, ix], or 0 outside the image.
    xi: one image's centred channels of one group (Cg, H, W)."""
    cg, h_, w_ = xi.shape
    for c in range(cg):
        for ky in range(kh_):
            for kx in range(kw_):
                r = (c * kh_ + ky) * kw_ + kx
                off = kx * dw - pl
                lo, hi = _ox_range(off, sw, w_, ow_)
                for oy in range(oh_):
                    iy = oy * sh - pt + ky * dh
                    base = oy * ow_
                    if iy < 0 or iy >= h_ or lo >= hi:
                        col[r, base:base + ow_] = 0
                        continue
                    col[r, base:base + lo] = 0
                    for ox in range(lo, hi):
                        col[r, base + ox] = xi[c, iy, ox * sw + off]
                    col[r, base + hi:base + ow_] = 0


@kernel
def _depthwise_impl(xc, wc, bias, sh, sw, pt, pl, dh, dw, mg, out):
    """Cg == 1: out[n, m] = bias[m] + sum_{ky,kx} wc[m, 0, ky, kx] * xc[n, m // mg, iy, ix]."""
    n_, _, h_, w_ = xc.shape
    m_, _, kh_, kw_ = wc.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    plane = np.empty((oh_, ow_), np.int64)
    for n in range(n_):
        for m in range(m_):
            c = m // mg
            plane[:, :] = bias[m]
            for ky in range(kh_):
                for kx in range(kw_):
                    wv = np.int64(wc[m, 0, ky, kx])
                    off = kx * dw - pl
                    lo, hi = _ox_range(off, sw, w_, ow_)
                    if wv == 0 or lo >= hi:
                        continue
                    for oy in range(oh_):
                        iy = oy * sh - pt + ky * dh
                        if iy < 0 or iy >= h_:
                            continue
                        if sw == 1:     # unit stride: contiguous, vectorizable
                            src = xc[n, c, iy, lo + off:hi + off]
                            dst = plane[oy, lo:hi]
                            for j in range(hi - lo):
                                dst[j] += wv * np.int64(src[j])
                        else:
                            for ox in range(lo, hi):
                                plane[oy, ox] += wv * np.int64(xc[n, c, iy, ox * sw + off])
            for oy in range(oh_):
                for ox in range(ow_):
                    out[n, m, oy, ox] = plane[oy, ox]


# ---------------------------------------------------------------------------------- public
def _check_geom(geom) -> ConvGeom:
    try:
        g = ConvGeom(*(int(v) for v in geom))
    except (TypeError, ValueError):
        raise ValueError(f"conv2d: geom must be a ConvGeom of 9 ints, got {geom!r}") from None
    if min(g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.group) < 1:
        raise ValueError(f"conv2d: strides, dilations and group must be >= 1, got {g}")
    if min(g.pad_top, g.pad_left, g.pad_bottom, g.pad_right) < 0:
        raise ValueError(f"conv2d: pads must be >= 0, got {g}")
    return g


def check_conv_args(x, w, x_zp, w_zp, bias, geom, acc):
    """Validate everything; return (x, w, x_zp, w_zp, bias, geom) normalized."""
    x = check_int_operand("conv2d x", x, 4)
    w = check_int_operand("conv2d w", w, 4)
    geom = _check_geom(geom)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    if c != geom.group * cg or m % geom.group:
        raise ValueError(f"conv2d: x has {c} channels, w {w.shape}, group {geom.group}: "
                         f"need C == group * w.shape[1] and M % group == 0")
    if kh < 1 or kw < 1:
        raise ValueError(f"conv2d: empty kernel {w.shape}")
    oh, ow = conv_out_hw(h, wd, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"conv2d: dilated kernel {w.shape[2:]} (dilations {geom.dil_h}, {geom.dil_w}) "
                         f"is larger than the padded input {h}x{wd} with pads {geom[2:6]}")
    check_acc("conv2d acc", acc, (n, m, oh, ow))
    return (x, w, check_scalar_zp("conv2d x_zp", x_zp), check_vector("conv2d w_zp", w_zp, m),
            check_vector("conv2d bias", bias, m), geom)


def _gemm_groups(xc, wc, bias, geom, kb, out, im2col):
    """Per image and group: out[n, gM:(g+1)M] = wc[g] (Mg, K) x col (K, OH*OW) + bias."""
    n_, c_, h_, w_ = xc.shape
    m_, cg, kh, kw = wc.shape
    mg, g_ = m_ // geom.group, geom.group
    oh, ow = out.shape[2], out.shape[3]
    out3 = out.reshape(n_, m_, oh * ow)
    w2 = wc.reshape(m_, cg * kh * kw)
    col = np.empty((cg * kh * kw, oh * ow), xc.dtype) if im2col else None
    no_col_bias = np.zeros(oh * ow, np.int64)
    for n in range(n_):
        for g in range(g_):
            xi = xc[n, g * cg:(g + 1) * cg]
            if im2col:
                _im2col_impl(xi, kh, kw, geom.stride_h, geom.stride_w, geom.pad_top, geom.pad_left,
                             geom.dil_h, geom.dil_w, oh, ow, col)
            b = col if im2col else xi.reshape(cg, h_ * w_)
            gemm_centred_impl(w2[g * mg:(g + 1) * mg], b, bias[g * mg:(g + 1) * mg], no_col_bias, kb,
                              out3[n, g * mg:(g + 1) * mg])


def conv2d_acc(x, w, x_zp, w_zp, bias, geom: ConvGeom, acc) -> None:
    """acc[n, m, oy, ox] = bias[m] + sum (x - x_zp) * (w - w_zp[m]) over the group's channels
    and the kernel taps inside the image (module docstring). int64 sums; an int32 `acc` wraps.
    Raises ValueError on bad shapes, dtypes or geometry."""
    x, w, x_zp, w_zp, bias, geom = check_conv_args(x, w, x_zp, w_zp, bias, geom, acc)
    xb = centred_bound(x.dtype, x_zp, x_zp)
    wb = centred_bound(w.dtype, int(w_zp.min(initial=0)), int(w_zp.max(initial=0)))
    xc = centre(x, x_zp, max(xb, wb))          # one dtype for both operands
    wc = centre(w, w_zp[:, None, None, None], max(xb, wb))
    out = int64_out(acc)
    m, cg, kh, kw = w.shape
    if cg == 1:
        _depthwise_impl(xc, wc, bias, geom.stride_h, geom.stride_w, geom.pad_top, geom.pad_left,
                        geom.dil_h, geom.dil_w, m // geom.group, out)
    else:
        pointwise = kh == kw == 1 and geom.stride_h == geom.stride_w == 1 and not any(geom[2:6])
        _gemm_groups(xc, wc, bias, geom, k_block(xb, wb), out, im2col=not pointwise)
    store_acc(acc, out)


def conv2d_acc_ref(x, w, x_zp, w_zp, bias, geom: ConvGeom, acc) -> None:
    """NumPy int64 twin: explicit zero-point padding, then one strided slice per tap (all groups at
    once). The one conv reference: the depthwise twins (kernels.fast_depthwise.depthwise_ref,
    kernels.depthwise_nhwc.depthwise_nhwc_ref) are this with group = C."""
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
            xs = sl.reshape(n, geom.group, cg, oh, ow)               # every group in one product
            ws = wz[:, :, ky, kx].reshape(geom.group, mg, cg)
            out += np.einsum("ngchw,gmc->ngmhw", xs, ws).reshape(n, m, oh, ow)
    acc[...] = (out + np.asarray(bias, np.int64)[None, :, None, None]).astype(acc.dtype)
