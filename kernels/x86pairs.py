"""onnxruntime's x86 AVX2 u8 x s8 GEMM, emulated exactly (accumulation mode `x86-u8s8-pairs`).

Without VNNI, MLAS multiplies raw u8 activations by s8 weights with `vpmaddubsw`, which adds
the two products of each adjacent K pair into a SATURATING int16, then `vpmaddwd` widens the
pairs into the int32 sum. Zero points are applied afterwards through row/column sums:

    raw[m, n] = sum_j sat16(a[m, 2j] * b[2j, n] + a[m, 2j+1] * b[2j+1, n])   (K padded with 0)
    acc[m, n] = raw - a_zp * sum_k b[k, n] - b_zp[n] * sum_k a[m, k] + K * a_zp * b_zp[n] + bias[n]

For QLinearConv/ConvInteger, onnxruntime reorders the filter to (ky, kx, c) and im2cols the
input in NHWC, so the K order of the pairs is kernel row, kernel column, channel; padded taps
hold the raw value a_zp. Signed activations (s8 x s8) and VNNI hosts are exact.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


def host_saturates_u8s8() -> bool:
    """True on x86 hosts without AVX-512 VNNI / AVX-VNNI, where onnxruntime's u8s8 GEMM saturates."""
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    from llvmlite import binding
    feats = binding.get_host_cpu_features()
    return not (feats.get("avx512vnni", False) or feats.get("avxvnni", False))


@kernel
def _pairs_impl(a, b, acc):
    m_, k_ = a.shape
    n_ = b.shape[1]
    for m in range(m_):
        for n in range(n_):
            s = np.int64(0)
            for j in range(0, k_, 2):
                p = np.int64(a[m, j]) * np.int64(b[j, n])
                if j + 1 < k_:
                    p += np.int64(a[m, j + 1]) * np.int64(b[j + 1, n])
                if p > 32767:
                    p = 32767
                elif p < -32768:
                    p = -32768
                s += p
            acc[m, n] = s


def _corrections(a, b, a_zp, b_zp, bias, raw):
    k = a.shape[1]
    col = b.astype(np.int64).sum(axis=0)
    row = a.astype(np.int64).sum(axis=1)
    return (raw - np.int64(a_zp) * col[None, :] - np.asarray(b_zp, np.int64)[None, :] * row[:, None]
            + np.int64(k) * np.int64(a_zp) * np.asarray(b_zp, np.int64)[None, :] + np.asarray(bias, np.int64)[None, :])


def _check(a, b, b_zp, bias, acc):
    if a.dtype != np.uint8 or b.dtype != np.int8:
        raise ValueError(f"x86 pairs: needs uint8 a and int8 b, got {a.dtype} and {b.dtype}")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"x86 pairs: a {a.shape} and b {b.shape} do not multiply")
    n = b.shape[1]
    if np.shape(b_zp) != (n,) or np.shape(bias) != (n,) or acc.shape != (a.shape[0], n):
        raise ValueError("x86 pairs: b_zp/bias/acc shapes do not match")


def gemm_acc_pairs(a, b, a_zp, b_zp, bias, acc) -> None:
    _check(a, b, b_zp, bias, acc)
    raw = np.empty(acc.shape, np.int64)
    _pairs_impl(np.ascontiguousarray(a), np.ascontiguousarray(b), raw)
    acc[...] = _corrections(a, b, a_zp, b_zp, bias, raw)


def gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of gemm_acc_pairs."""
    _check(a, b, b_zp, bias, acc)
    k = a.shape[1]
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    if k % 2:
        a64 = np.concatenate([a64, np.zeros((a.shape[0], 1), np.int64)], axis=1)
        b64 = np.concatenate([b64, np.zeros((1, b.shape[1]), np.int64)], axis=0)
    prods = a64[:, 0::2, None] * b64[None, 0::2, :] + a64[:, 1::2, None] * b64[None, 1::2, :]
    raw = np.clip(prods, -32768, 32767).sum(axis=1)
    acc[...] = _corrections(a, b, a_zp, b_zp, bias, raw)


def _im2col_nhwc(x, kh, kw, x_zp, geom, oh, ow, g, cg):
    """Rows (n, oy, ox), columns (ky, kx, c) of group g; padded taps hold the raw x_zp."""
    n, _, h, w = x.shape
    xp = np.full((n, cg, h + geom.pad_top + geom.pad_bottom, w + geom.pad_left + geom.pad_right), x_zp, x.dtype)
    xp[:, :, geom.pad_top:geom.pad_top + h, geom.pad_left:geom.pad_left + w] = x[:, g * cg:(g + 1) * cg]
    cols = np.empty((n, oh, ow, kh, kw, cg), x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * geom.dil_h, kx * geom.dil_w
            sl = xp[:, :, y0:y0 + geom.stride_h * (oh - 1) + 1:geom.stride_h,
                    x0:x0 + geom.stride_w * (ow - 1) + 1:geom.stride_w]
            cols[:, :, :, ky, kx, :] = np.moveaxis(sl, 1, -1)
    return cols.reshape(n * oh * ow, kh * kw * cg)


def _conv_pairs(x, w, x_zp, w_zp, bias, geom, acc, gemm):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = acc.shape[2], acc.shape[3]
    mg = m // geom.group
    w_zp = np.asarray(w_zp, np.int64)
    bias = np.asarray(bias, np.int64)
    for g in range(geom.group):
        a = _im2col_nhwc(x, kh, kw, x_zp, geom, oh, ow, g, cg)
        b = np.ascontiguousarray(np.transpose(w[g * mg:(g + 1) * mg], (2, 3, 1, 0)).reshape(kh * kw * cg, mg))
        out = np.empty((a.shape[0], mg), np.int64)
        gemm(a, b, x_zp, w_zp[g * mg:(g + 1) * mg], bias[g * mg:(g + 1) * mg], out)
        acc[:, g * mg:(g + 1) * mg] = np.moveaxis(out.reshape(n, oh, ow, mg), -1, 1)


def conv2d_acc_pairs(x, w, x_zp, w_zp, bias, geom, acc) -> None:
    """conv2d_acc with onnxruntime's AVX2 u8s8 pair saturation, K order (ky, kx, c)."""
    _conv_pairs(x, w, x_zp, w_zp, bias, geom, acc, gemm_acc_pairs)


def conv2d_acc_pairs_ref(x, w, x_zp, w_zp, bias, geom, acc) -> None:
    _conv_pairs(x, w, x_zp, w_zp, bias, geom, acc, gemm_acc_pairs_ref)
