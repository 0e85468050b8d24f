"""onnxruntime's x86 AVX2 u8 x s8 integer GEMM, emulated bit for bit (accumulation mode
`x86-u8s8-pairs`).

On x86 hosts without VNNI, MLAS (onnxruntime's kernel library) multiplies RAW uint8 activations
by RAW int8 weights with `vpmaddubsw`, which adds the two products of each adjacent K pair into
a SATURATING int16, and then widens the pairs into int32 with `vpmaddwd` and `vpaddd`. K is
zero-padded to a multiple of 4 and cut into blocks of 128 or 384 (both even), so the pairs are
always (k, k+1) for even k. The zero points are applied afterwards from row and column sums,
which are exact:

    sat16(v)   = min(max(v, -32768), 32767)
    raw[m, n]  = sum_{j} sat16(a[m, 2j] * b[2j, n] + a[m, 2j+1] * b[2j+1, n])  (a[m, K] = b[K, n] = 0)
    acc[m, n]  = raw[m, n] - a_zp * sum_k b[k, n] - b_zp[n] * sum_k a[m, k]
                 + K * a_zp * b_zp[n] + bias[n]

MLAS adds these terms in wrapping int32; an int32 `acc` (the store wraps) is therefore bit-exact
with onnxruntime, an int64 `acc` holds the same sum without the final wrap.

Which onnxruntime (1.32, x86-64) ops go through this kernel, measured on one-node graphs:
- MatMulInteger, QLinearMatMul, QGemm (com.microsoft) with uint8 A and int8 B: always (B
  constant and prepacked or not, per-tensor or per-column B zero point, any batch, M = 1 too:
  the M = 1 GEMV kernel pairs the same way).
- QLinearConv with uint8 x and int8 w: every non-depthwise conv (group 1, grouped, 1x1, any
  stride/dilation/padding; both MLAS's symmetric ConvSym kernel and its im2col GEMM). The K
  order is onnxruntime's NHWC im2col order (kernel row, kernel column, channel of the group) and
  padded taps hold the raw value x_zp. A depthwise conv (C/group == 1 and M/group == 1,
  including a 1-channel conv with group 1) runs MLAS's depthwise kernels, which sum exactly.
- Exact on the same host: int8 x int8 (s8s8) and uint8 x uint8 GEMMs, ConvInteger with uint8 x
  (its weights are the GEMM's A operand, so the s8-weight GEMM is s8 x u8, portable and exact),
  and every path on hosts with AVX-VNNI / AVX512-VNNI (`vpdpbusd` has no int16 stage).
"""
from __future__ import annotations

import platform

import numpy as np

from .cpu import host_features
from .jit import kernel

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def host_saturates_u8s8() -> bool:
    """True on x86 hosts without AVX512-VNNI and without AVX-VNNI: there onnxruntime's u8 x s8
    GEMM kernel saturates product pairs at int16 (this module's model applies)."""
    if platform.machine().lower() not in _X86:
        return False
    feats = host_features()     # (cached: LLVM's query took ~4 ms, and the ort target asks per prepared node)
    return not ("avx512vnni" in feats or "avxvnni" in feats)


# ----------------------------------------------------------------------------- jitted bodies
@kernel
def _pair_dot(col, bmat, out, saturate):
    """out[n] = sum over K pairs (2j, 2j+1) of col[k] * bmat[k, n], each pair sum clamped to
    int16 when `saturate` (a lone last k pairs with 0); col int64 (K,), bmat int8 (K, N),
    out int64 (N,)."""
    k_ = col.shape[0]
    n_ = bmat.shape[1]
    for n in range(n_):
        out[n] = 0
    for j in range(0, k_ - 1, 2):
        a0, a1 = col[j], col[j + 1]
        if saturate:
            for n in range(n_):
                p = a0 * np.int64(bmat[j, n]) + a1 * np.int64(bmat[j + 1, n])
                out[n] += min(max(p, -32768), 32767)
        else:
            for n in range(n_):
                out[n] += a0 * np.int64(bmat[j, n]) + a1 * np.int64(bmat[j + 1, n])
    if k_ % 2:
        a0 = col[k_ - 1]
        for n in range(n_):
            p = a0 * np.int64(bmat[k_ - 1, n])
            out[n] += min(max(p, -32768), 32767) if saturate else p


@kernel
def _col_sums(bmat, out):
    for n in range(bmat.shape[1]):
        out[n] = 0
    for k in range(bmat.shape[0]):
        for n in range(bmat.shape[1]):
            out[n] += np.int64(bmat[k, n])


@kernel
def _gemm_acc_pairs_impl(a, b, a_zp, b_zp, bias, acc):
    m_, k_ = a.shape
    n_ = b.shape[1]
    col = np.empty(n_, np.int64)
    _col_sums(b, col)
    row = np.empty(k_, np.int64)
    raw = np.empty(n_, np.int64)
    for m in range(m_):
        rs = np.int64(0)
        for k in range(k_):
            row[k] = np.int64(a[m, k])
            rs += row[k]
        _pair_dot(row, b, raw, True)
        for n in range(n_):
            acc[m, n] = (raw[n] - a_zp * col[n] - b_zp[n] * rs
                         + np.int64(k_) * a_zp * b_zp[n] + bias[n])


@kernel
def _conv2d_pairs_impl(xh, wk, x_zp, w_zp, bias, sh, sw, pt, pl, dh, dw, kh, kw, saturate, acc):
    """xh: NHWC uint8; wk: (G, KH*KW*Cg, Mg) int8 in (ky, kx, c) order; acc (N, M, OH, OW)."""
    n_, h_, wd_, c_ = xh.shape
    g_, k_, mg = wk.shape
    cg = c_ // g_
    oh_, ow_ = acc.shape[2], acc.shape[3]
    wsum = np.empty((g_, mg), np.int64)
    for g in range(g_):
        _col_sums(wk[g], wsum[g])
    col = np.empty(k_, np.int64)
    raw = np.empty(mg, np.int64)
    for n in range(n_):
        for g in range(g_):
            for oy in range(oh_):
                for ox in range(ow_):
                    idx = 0
                    rs = np.int64(0)
                    for ky in range(kh):
                        iy = oy * sh - pt + ky * dh
                        for kx in range(kw):
                            ix = ox * sw - pl + kx * dw
                            inside = iy >= 0 and iy < h_ and ix >= 0 and ix < wd_
                            for c in range(cg):
                                v = np.int64(xh[n, iy, ix, g * cg + c]) if inside else x_zp
                                col[idx] = v
                                rs += v
                                idx += 1
                    _pair_dot(col, wk[g], raw, saturate)
                    for mm in range(mg):
                        mo = g * mg + mm
                        acc[n, mo, oy, ox] = (raw[mm] - x_zp * wsum[g, mm] - w_zp[mo] * rs
                                              + np.int64(k_) * x_zp * w_zp[mo] + bias[mo])


# ----------------------------------------------------------------------------- validation
def _check_vec(name, v, n, lo, hi, who):
    v = np.ascontiguousarray(v, np.int64)
    if v.shape != (n,):
        raise ValueError(f"{who}: {name} must have shape ({n},), got {v.shape}")
    if lo is not None and v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{who}: {name} must lie in [{lo}, {hi}], got {v.min()}..{v.max()}")
    return v


def _check_scalar_zp(name, z, who):
    z = np.asarray(z)
    if z.size != 1 or z.dtype.kind not in "iu":
        raise ValueError(f"{who}: {name} must be one integer, got {z!r}")
    z = int(z.reshape(()))
    if not 0 <= z <= 255:
        raise ValueError(f"{who}: {name} must lie in [0, 255] (uint8 zero point), got {z}")
    return z


def _check_acc(acc, shape, who):
    if not isinstance(acc, np.ndarray) or acc.dtype not in (np.int32, np.int64) or acc.shape != shape:
        got = (acc.dtype, acc.shape) if isinstance(acc, np.ndarray) else type(acc)
        raise ValueError(f"{who}: acc must be an int32/int64 array of shape {shape}, got {got}")


def _check_u8_s8(a_name, a, b_name, b, ndim, who):
    for name, t, dt in ((a_name, a, np.uint8), (b_name, b, np.int8)):
        if not isinstance(t, np.ndarray) or t.dtype != dt or t.ndim != ndim:
            got = (t.dtype, t.shape) if isinstance(t, np.ndarray) else type(t)
            raise ValueError(f"{who}: {name} must be a {ndim}-D {np.dtype(dt).name} array, got {got}")


def check_gemm_pairs(a, b, a_zp, b_zp, bias, acc):
    who = "gemm_acc_pairs"
    _check_u8_s8("a", a, "b", b, 2, who)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{who}: a {a.shape} and b {b.shape} do not multiply")
    n = b.shape[1]
    a_zp = _check_scalar_zp("a_zp", a_zp, who)
    b_zp = _check_vec("b_zp", b_zp, n, -128, 127, who)
    bias = _check_vec("bias", bias, n, None, None, who)
    _check_acc(acc, (a.shape[0], n), who)
    return a_zp, b_zp, bias


def _out_hw(h, w, kh, kw, geom):
    oh = (h + geom.pad_top + geom.pad_bottom - geom.dil_h * (kh - 1) - 1) // geom.stride_h + 1
    ow = (w + geom.pad_left + geom.pad_right - geom.dil_w * (kw - 1) - 1) // geom.stride_w + 1
    return oh, ow


def _check_geom(x, w, geom, who):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    g = int(geom.group)
    if g < 1 or cg < 1 or c != g * cg or m % g:
        raise ValueError(f"{who}: x has {c} channels, w {w.shape} and group {g} do not fit")
    if min(geom.stride_h, geom.stride_w, geom.dil_h, geom.dil_w) < 1 or \
            min(geom.pad_top, geom.pad_left, geom.pad_bottom, geom.pad_right) < 0:
        raise ValueError(f"{who}: strides/dilations must be >= 1 and pads >= 0, got {geom}")
    oh, ow = _out_hw(h, wd, kh, kw, geom)
    if oh < 1 or ow < 1:
        raise ValueError(f"{who}: kernel {kh}x{kw} (dilated) is larger than the padded input {h}x{wd}")
    return oh, ow


def check_conv_pairs_inputs(x, w, x_zp, w_zp, bias, geom, who="conv2d_acc_pairs"):
    """The checked (x_zp, w_zp, bias, (OH, OW)) of a u8 x s8 conv's inputs (ValueError naming them)."""
    _check_u8_s8("x", x, "w", w, 4, who)
    oh, ow = _check_geom(x, w, geom, who)
    m = w.shape[0]
    x_zp = _check_scalar_zp("x_zp", x_zp, who)
    w_zp = _check_vec("w_zp", w_zp, m, -128, 127, who)
    bias = _check_vec("bias", bias, m, None, None, who)
    return x_zp, w_zp, bias, (oh, ow)


def check_conv_pairs(x, w, x_zp, w_zp, bias, geom, acc):
    x_zp, w_zp, bias, (oh, ow) = check_conv_pairs_inputs(x, w, x_zp, w_zp, bias, geom)
    _check_acc(acc, (x.shape[0], w.shape[0], oh, ow), "conv2d_acc_pairs")
    return x_zp, w_zp, bias


def is_ort_depthwise(w, geom) -> bool:
    """onnxruntime's test: one input and one output channel per group (any group count)."""
    return w.shape[1] == 1 and w.shape[0] == int(geom.group)


def weights_khwc(w, group):
    """w (M, Cg, KH, KW) -> (G, KH*KW*Cg, M/G): each group's GEMM B in (ky, kx, c) order."""
    m, cg, kh, kw = w.shape
    mg = m // group
    wg = w.reshape(group, mg, cg, kh, kw).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(wg.reshape(group, kh * kw * cg, mg))


# ----------------------------------------------------------------------------- public kernels
def gemm_acc_pairs(a, b, a_zp, b_zp, bias, acc) -> None:
    """acc = onnxruntime's AVX2 u8s8 GEMM (see the module docstring for the formula).

    a: (M, K) uint8; b: (K, N) int8; a_zp: integer in [0, 255]; b_zp: (N,) integers in
    [-128, 127] (per column; repeat one value for per-tensor); bias: (N,) int64;
    acc: (M, N) int32 (wraps like MLAS) or int64 (the int64 sum). Raw pair sums saturate at
    int16; everything else is exact.
    """
    a_zp, b_zp, bias = check_gemm_pairs(a, b, a_zp, b_zp, bias, acc)
    _gemm_acc_pairs_impl(np.ascontiguousarray(a), np.ascontiguousarray(b), np.int64(a_zp), b_zp, bias, acc)


def _pairs_raw_ref(a, b, saturate: bool):
    """int64 sum over K pairs of a[m, k] * b[k, n], pairs (2j, 2j+1), optionally sat16."""
    m, k = a.shape
    a64 = np.zeros((m, k + k % 2), np.int64)
    b64 = np.zeros((k + k % 2, b.shape[1]), np.int64)
    a64[:, :k], b64[:k] = a, b
    out = np.empty((m, b.shape[1]), np.int64)
    step = max(1, (1 << 22) // max(1, (k // 2 + 1) * b.shape[1]))
    for r in range(0, m, step):
        p = a64[r:r + step, 0::2, None] * b64[None, 0::2] + a64[r:r + step, 1::2, None] * b64[None, 1::2]
        out[r:r + step] = (np.clip(p, -32768, 32767) if saturate else p).sum(axis=1)
    return out


def _zp_terms_ref(a, b, a_zp, b_zp, bias, raw):
    k = a.shape[1]
    col = b.astype(np.int64).sum(axis=0)
    row = a.astype(np.int64).sum(axis=1)
    return (raw - a_zp * col[None, :] - b_zp[None, :] * row[:, None]
            + k * a_zp * b_zp[None, :] + bias[None, :])


def gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of gemm_acc_pairs (same contract)."""
    a_zp, b_zp, bias = check_gemm_pairs(a, b, a_zp, b_zp, bias, acc)
    raw = _pairs_raw_ref(a, b, saturate=True)
    acc[...] = _zp_terms_ref(a, b, np.int64(a_zp), b_zp, bias, raw).astype(acc.dtype)


def batched_gemm_acc_pairs(a, b, a_zp, b_zp, bias, acc) -> None:
    """a (B, M, K) uint8, b (B, K, N) int8, acc (B, M, N): gemm_acc_pairs per batch entry
    (onnxruntime runs one MLAS GEMM per batch entry of MatMulInteger/QLinearMatMul)."""
    _check_batched(a, b, acc, "batched_gemm_acc_pairs")
    for i in range(a.shape[0]):
        gemm_acc_pairs(a[i], b[i], a_zp, b_zp, bias, acc[i])


def batched_gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of batched_gemm_acc_pairs."""
    _check_batched(a, b, acc, "batched_gemm_acc_pairs")
    for i in range(a.shape[0]):
        gemm_acc_pairs_ref(a[i], b[i], a_zp, b_zp, bias, acc[i])


def _check_batched(a, b, acc, who):
    shapes_ok = all(isinstance(t, np.ndarray) and t.ndim == 3 for t in (a, b, acc))
    if not shapes_ok or a.shape[0] != b.shape[0] or acc.shape[0] != a.shape[0]:
        raise ValueError(f"{who}: a, b and acc must be 3-D with one batch size, got "
                         f"{getattr(a, 'shape', a)}, {getattr(b, 'shape', b)}, {getattr(acc, 'shape', acc)}")


def conv2d_acc_pairs(x, w, x_zp, w_zp, bias, geom, acc) -> None:
    """acc = onnxruntime's QLinearConv accumulation for uint8 x and int8 w on an AVX2 host.

    x: (N, C, H, W) uint8; w: (M, C/group, KH, KW) int8; x_zp in [0, 255]; w_zp: (M,) in
    [-128, 127]; bias: (M,) int64; geom: any object with stride_h, stride_w, pad_top, pad_left,
    pad_bottom, pad_right, dil_h, dil_w, group; acc: (N, M, OH, OW) int32 (wraps) or int64.

    Per group and output pixel, the im2col row is taken in (ky, kx, c) order with padded taps
    equal to x_zp, and gemm_acc_pairs' formula applies with K = KH*KW*C/group. Depthwise convs
    (C/group == M/group == 1) are summed exactly, as onnxruntime's depthwise kernels do.
    """
    x_zp, w_zp, bias = check_conv_pairs(x, w, x_zp, w_zp, bias, geom, acc)
    g = int(geom.group)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    _conv2d_pairs_impl(xh, weights_khwc(w, g), np.int64(x_zp), w_zp, bias,
                       int(geom.stride_h), int(geom.stride_w), int(geom.pad_top), int(geom.pad_left),
                       int(geom.dil_h), int(geom.dil_w), w.shape[2], w.shape[3],
                       not is_ort_depthwise(w, geom), acc)


def _im2col_khwc_ref(x, x_zp, kh, kw, geom, oh, ow, g, cg):
    """Rows (n, oy, ox), columns (ky, kx, c) of group g; padded taps hold x_zp (int64)."""
    n, _, h, w = x.shape
    xp = np.full((n, cg, h + geom.pad_top + geom.pad_bottom, w + geom.pad_left + geom.pad_right),
                 x_zp, np.int64)
    xp[:, :, geom.pad_top:geom.pad_top + h, geom.pad_left:geom.pad_left + w] = x[:, g * cg:(g + 1) * cg]
    cols = np.empty((n, oh, ow, kh, kw, cg), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * geom.dil_h, kx * geom.dil_w
            sl = xp[:, :, y0:y0 + geom.stride_h * (oh - 1) + 1:geom.stride_h,
                    x0:x0 + geom.stride_w * (ow - 1) + 1:geom.stride_w]
            cols[:, :, :, ky, kx, :] = np.moveaxis(sl, 1, -1)
    return cols.reshape(n * oh * ow, kh * kw * cg)


def conv2d_acc_pairs_ref(x, w, x_zp, w_zp, bias, geom, acc) -> None:
    """NumPy int64 twin of conv2d_acc_pairs: explicit NHWC im2col per group, then the pair sums."""
    x_zp, w_zp, bias = check_conv_pairs(x, w, x_zp, w_zp, bias, geom, acc)
    n = x.shape[0]
    m, cg, kh, kw = w.shape
    g_count = int(geom.group)
    mg = m // g_count
    oh, ow = acc.shape[2], acc.shape[3]
    wk = weights_khwc(w, g_count)
    saturate = not is_ort_depthwise(w, geom)
    for g in range(g_count):
        cols = _im2col_khwc_ref(x, x_zp, kh, kw, geom, oh, ow, g, cg)
        sl = slice(g * mg, (g + 1) * mg)
        raw = _pairs_raw_ref(cols, wk[g], saturate)
        out = _zp_terms_ref(cols, wk[g], np.int64(x_zp), w_zp[sl], bias[sl], raw)
        acc[:, sl] = np.moveaxis(out.reshape(n, oh, ow, mg), -1, 1).astype(acc.dtype)
