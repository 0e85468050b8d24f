"""TFLite TRANSPOSE_CONV accumulator (reference_integer_ops::TransposeConv, reference/
integer_ops/transpose_conv.h: an int32 scratch buffer, every input pixel scattered through the
kernel), NHWC codes, weights (O, KH, KW, I) as TFLite stores them:

    acc[n, oy, ox, o] = sum over (iy, ix, ky, kx, i) with oy = iy*sh - pad_t + ky and
                        ox = ix*sw - pad_l + kx inside the output of
                        (x[n, iy, ix, i] - zx) * w[o, ky, kx, i]            (int64 here)

The weights are symmetric (zero point 0); the bias is added and the sum requantized by the
target's requantizer, as for CONV_2D.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def _tconv_acc_impl(x, zx, w, sh, sw, pt, pl, acc):
    n_, h, wd, ci = x.shape
    co, kh, kw, _ = w.shape
    oh, ow = acc.shape[1], acc.shape[2]
    for n in range(n_):
        for iy in range(h):
            for ix in range(wd):
                for ky in range(kh):
                    oy = iy * sh - pt + ky
                    if oy < 0 or oy >= oh:
                        continue
                    for kx in range(kw):
                        ox = ix * sw - pl + kx
                        if ox < 0 or ox >= ow:
                            continue
                        for o in range(co):
                            s = np.int64(0)
                            for i in range(ci):
                                s += (np.int64(x[n, iy, ix, i]) - zx) * np.int64(w[o, ky, kx, i])
                            acc[n, oy, ox, o] += s


def transpose_conv_acc(x, zx, w, strides, pads, out_hw) -> np.ndarray:
    """int64 (N, OH, OW, O) accumulator of x (N, H, W, I) and w (O, KH, KW, I); pads (top, left)."""
    acc = np.zeros((x.shape[0], int(out_hw[0]), int(out_hw[1]), w.shape[0]), np.int64)
    _tconv_acc_impl(np.ascontiguousarray(x), np.int64(zx), np.ascontiguousarray(w), int(strides[0]),
                    int(strides[1]), int(pads[0]), int(pads[1]), acc)
    return acc


def transpose_conv_acc_ref(x, zx, w, strides, pads, out_hw) -> np.ndarray:
    """NumPy int64 twin of transpose_conv_acc: per kernel tap, the (x - zx) . w[:, ky, kx]
    products scattered onto the strided output rows and columns they reach."""
    n, h, wd, _ = x.shape
    co, kh, kw, _ = w.shape
    oh, ow = int(out_hw[0]), int(out_hw[1])
    xv, wv = np.asarray(x, np.int64) - int(zx), np.asarray(w, np.int64)
    acc = np.zeros((n, oh, ow, co), np.int64)
    iy, ix = np.arange(h), np.arange(wd)
    for ky in range(kh):
        oy = iy * strides[0] - pads[0] + ky
        ry = (oy >= 0) & (oy < oh)
        for kx in range(kw):
            ox = ix * strides[1] - pads[1] + kx
            rx = (ox >= 0) & (ox < ow)
            part = np.einsum("nyxi,oi->nyxo", xv[:, ry][:, :, rx], wv[:, ky, kx, :])
            acc[:, oy[ry][:, None], ox[rx][None, :], :] += part
    return acc
