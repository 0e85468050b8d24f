"""The code pass of ONNX DynamicQuantizeLinear (uint8) as onnxruntime computes it, float32
throughout (the scale and zero point come first, from the tensor's range: intsim.steps.quant):

    y[i] = uint8(min(max(rint_half_even(f32(x[i] / scale)) + f32(zp), 0), 255))

dynamic_quantize_codes returns the count of elements whose value is NaN (x NaN, or inf / inf):
the caller then takes its NumPy path, whose cast of a NaN is the platform's.

dynamic_quantize_rows does the whole step in one pass pair: the range, then (scale, zp) as
intsim.steps.quant.dynamic_params computes them (onnxruntime's GetQuantizationParameter,
core/util/qmath.h), all float32,

    lo = min(0, min x), hi = max(0, max x), scale = hi == lo ? 1 : f32(f32(hi - lo) / 255),
    zp = saturate(rint(f32(0 - f32(lo / scale))))

then the codes y above; it returns 1 (nothing usable written) for a NaN or infinite x or a
scale that underflows to 0, where the caller runs the NumPy steps instead.

dequantize_int_matmul is the float epilogue onnxruntime fuses into MatMulIntegerToFloat /
DynamicQuantizeMatMul (MatMulInteger -> Cast -> Mul(scale) [-> Add(bias)]), on raw sums taken
with a zero point of 0 (raw[m, n] = sum_k a[m, k] * (b[k, n] - b_zp[n]), int32, exact):

    acc = int32(raw[m, n] - a_zp * col_sum[n])              (wrapped to int32: MatMulInteger's type)
    y[m, n] = f32(f32(acc) * f32(a_scale * b_scale[n]))  [then f32(y + bias[n])]
"""
from __future__ import annotations

import numpy as np

from .jit import kernel



@kernel(inline="always")
def _unclamped(v, scale, zp):
    """f32(rint(f32(v / scale)) + zp) of one float32 value (the module doc's y before saturation)."""
    return np.float32(np.rint(np.float32(v / scale)) + zp)


@kernel(inline="always")
def _saturate(t):
    """uint8 of a non-NaN float32 t clamped to [0, 255]."""
    t = t if t > np.float32(0.0) else np.float32(0.0)
    t = t if t < np.float32(255.0) else np.float32(255.0)
    return np.uint8(t)


@kernel
def _codes_impl(x, scale, zp, out):
    nans = 0
    for i in range(x.size):
        t = _unclamped(x[i], scale, zp)
        ok = t == t
        nans += 0 if ok else 1
        out[i] = _saturate(t if ok else np.float32(0.0))
    return nans


@kernel(inline="always")
def _order_key(bits):
    """The int32 whose order is the float32's with these bits (negative floats: the magnitude
    bits flipped); its own inverse. -0.0 gets -1, +0.0 gets 0."""
    return np.int32(bits ^ ((bits >> np.int32(31)) & np.int32(0x7FFFFFFF)))


@kernel
def _range(x):
    """(min(0, min x), max(0, max x)) of finite float32 x, +0.0 for a zero bound (as the NumPy
    path: Python's min(0.0, -0.0) is 0.0). Integer keys (_order_key) make the min/max loop
    vectorize, which a float reduction does not without fastmath; a NaN has a key beyond
    infinity's, so the caller rejects non-finite bounds."""
    b = x.view(np.int32)
    lo, hi = np.int32(0), np.int32(0)
    for i in range(b.size):
        k = _order_key(b[i])
        lo = k if k < lo else lo
        hi = k if k > hi else hi
    keys = np.empty(2, np.int32)
    keys[0], keys[1] = _order_key(lo) if lo != -1 else 0, _order_key(hi)
    v = keys.view(np.float32)
    return v[0], v[1]


@kernel
def rows_impl(x, out, params):
    """dynamic_quantize_rows on flat, checked arrays (the Numba entry other kernels call inside
    one call: kernels.simd.dynamic_chain)."""
    lo, hi = _range(x)
    if not (lo - lo == np.float32(0.0) and hi - hi == np.float32(0.0)):     # a NaN or infinity
        return 1
    scale = np.float32(1.0) if hi == lo else np.float32(np.float32(hi - lo) / np.float32(255.0))
    if scale == np.float32(0.0):
        return 1
    z = np.rint(np.float32(np.float32(0.0) - np.float32(lo / scale)))
    zp = np.float32(min(max(z, np.float32(0.0)), np.float32(255.0)))
    for i in range(x.size):     # finite x and scale > 0: no NaN (no count, the loop vectorizes)
        out[i] = _saturate(_unclamped(x[i], scale, zp))
    params[0], params[1] = scale, zp
    return 0


@kernel
def epilogue_impl(raw, a_zp, col_sum, a_scale, b_scale, bias, out):
    """dequantize_int_matmul on checked arrays (a_zp int64, a_scale float32; the Numba entry
    other kernels call inside one call: kernels.simd.dynamic_chain)."""
    m_, n_ = raw.shape
    mult = np.empty(n_, np.float32)
    off = np.empty(n_, np.int64)
    for n in range(n_):
        mult[n] = np.float32(a_scale * b_scale[n if b_scale.size > 1 else 0])
        off[n] = a_zp * col_sum[n]
    for m in range(m_):         # (two loops: no branch in the one that vectorizes)
        r, o = raw[m], out[m]
        if bias.size:
            for n in range(n_):
                o[n] = np.float32(np.float32(np.float32(np.int32(r[n] - off[n])) * mult[n]) + bias[n])
        else:
            for n in range(n_):
                o[n] = np.float32(np.float32(np.int32(r[n] - off[n])) * mult[n])


def dynamic_quantize_codes(x: np.ndarray, scale: np.float32, zp: np.float32, out: np.ndarray) -> int:
    """out = the module doc's y for float32 x (C-contiguous, any shape), into uint8 out of x's
    shape; returns the NaN count (those elements' codes are not onnxruntime's). Raises ValueError."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("dynamic_quantize_codes: x must be a C-contiguous float32 array")
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != x.shape or not out.flags.c_contiguous:
        raise ValueError(f"dynamic_quantize_codes: out must be a C-contiguous uint8 array of shape {x.shape}")
    return int(_codes_impl(x.reshape(-1), np.float32(scale), np.float32(zp), out.reshape(-1)))


def dynamic_quantize_codes_ref(x: np.ndarray, scale: np.float32, zp: np.float32, out: np.ndarray) -> int:
    """NumPy twin of dynamic_quantize_codes."""
    t = np.divide(x, np.float32(scale), out=np.empty(x.shape, np.float32))
    np.rint(t, out=t)
    t += np.float32(zp)
    nans = int(np.isnan(t).sum())
    np.minimum(np.maximum(t, np.float32(0), out=t), np.float32(255), out=t)
    out[...] = t.astype(np.uint8)
    return nans


def dynamic_quantize_rows(x: np.ndarray, out: np.ndarray, params: np.ndarray) -> int:
    """The module doc's range, (scale, zp) and codes of float32 x (C-contiguous, any shape) into
    uint8 out (x's shape) and float32 params = [scale, zp]; 0, or 1 (NaN or infinite x, or a
    zero scale: out and params are not the step's) when the NumPy steps must run. Raises
    ValueError on bad arrays."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("dynamic_quantize_rows: x must be a C-contiguous float32 array")
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != x.shape or not out.flags.c_contiguous:
        raise ValueError(f"dynamic_quantize_rows: out must be a C-contiguous uint8 array of shape {x.shape}")
    if not isinstance(params, np.ndarray) or params.dtype != np.float32 or params.shape != (2,):
        raise ValueError("dynamic_quantize_rows: params must be a float32 array of shape (2,)")
    return int(rows_impl(x.reshape(-1), out.reshape(-1), params))


def bind_dynamic_quantize_rows(x: np.ndarray, out: np.ndarray, params: np.ndarray):
    """call(x2) -> dynamic_quantize_rows(x2, out, params) for arrays x2 of x's shape, dtype and
    C order (the caller's guarantee: a frozen run's buffer or a feed of its key), checked now."""
    dynamic_quantize_rows(x, out, params)
    flat = out.reshape(-1)
    return lambda x2: rows_impl(x2.reshape(-1), flat, params)


def dynamic_quantize_rows_ref(x: np.ndarray, out: np.ndarray, params: np.ndarray) -> int:
    """NumPy twin of dynamic_quantize_rows."""
    if x.size and not np.isfinite(x).all():
        return 1
    lo = np.float32(min(np.float32(0), x.min() if x.size else np.float32(0)))
    hi = np.float32(max(np.float32(0), x.max() if x.size else np.float32(0)))
    scale = np.float32(1) if hi == lo else np.float32((hi - lo) / np.float32(255))
    if scale == 0:
        return 1
    zp = np.float32(np.clip(np.rint(np.float32(0) - lo / scale), 0, 255))
    dynamic_quantize_codes_ref(x, scale, zp, out)
    params[0], params[1] = scale, zp
    return 0


def _check_epilogue(raw, col_sum, b_scale, bias, out):
    if not isinstance(raw, np.ndarray) or raw.dtype != np.int32 or raw.ndim != 2:
        raise ValueError("dequantize_int_matmul: raw must be a 2-D int32 array")
    n = raw.shape[1]
    for name, v, dt, sizes in (("col_sum", col_sum, np.int64, (n,)), ("b_scale", b_scale, np.float32, (1, n)),
                               ("bias", bias, np.float32, (0, n))):
        if not isinstance(v, np.ndarray) or v.dtype != dt or v.ndim != 1 or v.size not in sizes:
            raise ValueError(f"dequantize_int_matmul: {name} must be a 1-D {np.dtype(dt)} array of size "
                             f"{' or '.join(map(str, sizes))}")
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != raw.shape:
        raise ValueError(f"dequantize_int_matmul: out must be a float32 array of shape {raw.shape}")


def dequantize_int_matmul(raw, a_zp, col_sum, a_scale, b_scale, bias, out) -> None:
    """The module doc's epilogue: raw (M, N) int32, a_zp an integer, col_sum (N,) int64,
    a_scale float32, b_scale float32 (1,) or (N,), bias float32 (0,) (none) or (N,), into
    float32 out (M, N). Raises ValueError on bad arrays."""
    _check_epilogue(raw, col_sum, b_scale, bias, out)
    epilogue_impl(raw, np.int64(a_zp), col_sum, np.float32(a_scale), b_scale, bias, out)


def bind_dequantize_int_matmul(raw, col_sum, b_scale, bias, out):
    """call(a_zp, a_scale) -> dequantize_int_matmul(raw, a_zp, col_sum, a_scale, b_scale, bias,
    out) on these arrays, checked now (a_zp an int64, a_scale a float32)."""
    _check_epilogue(raw, col_sum, b_scale, bias, out)
    return lambda a_zp, a_scale: epilogue_impl(raw, a_zp, col_sum, a_scale, b_scale, bias, out)


def dequantize_int_matmul_ref(raw, a_zp, col_sum, a_scale, b_scale, bias, out) -> None:
    """NumPy twin of dequantize_int_matmul."""
    acc = (raw.astype(np.int64) - np.int64(a_zp) * col_sum[None, :]).astype(np.int32)
    y = acc.astype(np.float32) * (np.float32(a_scale) * b_scale)
    out[...] = y + bias if bias.size else y
