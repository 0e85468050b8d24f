"""Float <-> integer conversions with ONNX semantics (float32 arithmetic, round half to even,
saturation), shared by the Q/DQ steps and the passes."""
from __future__ import annotations

import numpy as np

from kernels import eltwise as ek


def quantize_scalar(x: float, scale: float, zp: int, qmin: int, qmax: int) -> int:
    """saturate(rint_RNE(f32(x) / f32(scale)) + zp), the division in float32."""
    v = np.float32(x) / np.float32(scale)
    return int(np.clip(np.rint(v) + zp, qmin, qmax))


def expand_param(p: np.ndarray, shape: tuple, axis, block_size: int) -> np.ndarray:
    """Broadcast a per-tensor / per-axis / blocked parameter to a tensor of `shape`."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    rank = len(shape)
    if block_size:
        rep = np.repeat(p, block_size, axis=axis)
        sl = [slice(None)] * rank
        sl[axis] = slice(0, shape[axis])
        return rep[tuple(sl)]
    view = [1] * rank
    view[axis] = p.size
    return p.reshape(view)


ROUNDING = {
    "ROUND": np.rint, "HALF_EVEN": np.rint, "CEIL": np.ceil, "FLOOR": np.floor, "DOWN": np.trunc,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)),
    "HALF_DOWN": lambda v: np.sign(v) * np.ceil(np.abs(v) - np.float32(0.5)),
}


def qonnx_quantize(x: np.ndarray, scale, zp, qmin: int, qmax: int, rounding: str, dtype) -> np.ndarray:
    """QONNX Quant/IntQuant integer codes: round_mode(clamp(x / scale + zp, qmin, qmax)), float32;
    scale and zp broadcast against x (their own shapes, as QONNX stores them)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = x.astype(np.float32) / np.asarray(scale, np.float32)
        v = v + np.asarray(zp, np.float32)
    v = np.clip(np.nan_to_num(v, nan=0.0), np.float32(qmin), np.float32(qmax))
    return ROUNDING[rounding.upper()](v).astype(dtype)


_KERNEL_TYPES = (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.uint16), np.dtype(np.int16))


def kernel_quantizes(dtype, qmin: int, qmax: int, block_size: int, rounding: str = "rne") -> bool:
    """True when QuantizeLinear runs through the Numba kernel (kernels.eltwise): RNE, per
    tensor or per axis, onto a whole 8- or 16-bit type. Blocked, sub-byte and RHAZ
    (TFLite) quantization stay in `quantize_linear`'s NumPy path."""
    dtype = np.dtype(dtype)
    return (rounding == "rne" and not block_size and dtype in _KERNEL_TYPES
            and (qmin, qmax) == (np.iinfo(dtype).min, np.iinfo(dtype).max))


def as_channels3(x: np.ndarray, axis, channels: int) -> np.ndarray:
    """x viewed as (outer, C, inner) around `axis` (per-tensor: (1, 1, size))."""
    if channels == 1 or axis is None:
        return x.reshape(1, 1, -1)
    ax = axis % x.ndim
    return x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), x.shape[ax], -1)


def quantize_planned(x: np.ndarray, plan, axis) -> np.ndarray:
    """QuantizeLinear through kernels.eltwise with a validated `quantize_plan`; x is cast to
    float32 (as ONNX computes) and must have plan.scale.size entries along `axis`."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(shape)    # (ascontiguousarray makes a 0-d x 1-d)
    out = np.empty(shape, plan.dtype)
    c = plan.scale.size
    ek.quantize_linear_planned(as_channels3(x, axis, c) if c > 1 else x, plan,
                               as_channels3(out, axis, c) if c > 1 else out)
    return out


def quantize_linear(x: np.ndarray, scale, zp, axis, block_size, qmin: int, qmax: int, dtype,
                    rounding: str = "rne", reference: bool = False) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(rint_RNE(x / scale) + zp); x and scale in float32.
    rounding="rhaz" rounds half away from zero instead (TFLite's float Quantize); "rne-recip"
    multiplies by f32(1 / scale) then rounds half to even (XNNPACK's convert); "tflite-builtin"
    (per tensor) is TFLite's optimized kernel, `tflite_builtin_round`; "tflite-reference" is
    TFLite's reference kernel, RHAZ converted to int32 as x86 does (`x86_int32`). NaN -> qmin,
    as onnxruntime's cvtps2dq gives. Whole 8/16-bit types with RNE go through the Numba
    kernel (`kernel_quantizes`); the NumPy path below serves blocked, sub-byte and RHAZ, and
    every case with `reference` (kernels="reference")."""
    if not reference and kernel_quantizes(dtype, qmin, qmax, block_size, rounding):
        return quantize_planned(x, ek.quantize_plan(scale, zp, qmin, qmax, dtype), axis)
    s = expand_param(np.asarray(scale, np.float32), x.shape, axis, block_size)
    z = expand_param(np.asarray(zp, np.int64), x.shape, axis, block_size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if rounding == "tflite-builtin":
            v = tflite_builtin_round(x, np.float32(s.reshape(-1)[0]))
        elif rounding == "rne-recip":     # XNNPACK's convert: x * f32(1 / scale), then RNE
            v = np.rint(x.astype(np.float32) * (np.float32(1) / s.astype(np.float32)))
        else:
            q = x.astype(np.float32) / s.astype(np.float32)
            v = np.rint(q) if rounding not in ("rhaz", "tflite-reference") else _round_half_away(q)
            v = x86_int32(v) if rounding == "tflite-reference" else v
    big = float(2 ** 62)
    v = np.clip(np.nan_to_num(v, nan=-big, posinf=big, neginf=-big), -big, big)
    if rounding in ("tflite-builtin", "tflite-reference"):       # int32 codes + zp wrap in int32
        return np.clip((v.astype(np.int64) + z + 2 ** 31) % 2 ** 32 - 2 ** 31, qmin, qmax).astype(dtype)
    return np.clip(v.astype(np.int64) + z, qmin, qmax).astype(dtype)


def _round_half_away(q: np.ndarray) -> np.ndarray:
    """RHAZ of float q: |q| + 0.5 in float64, exact (in float32 0.49999997 + 0.5 would round up to 1)."""
    return np.sign(q) * np.floor(np.abs(q).astype(np.float64) + 0.5)


def x86_int32(v: np.ndarray) -> np.ndarray:
    """Rounded float values as x86's float -> int32 conversions give them (cvtss2si / cvttsd2si /
    cvtps2dq): NaN and values outside int32 become INT32_MIN (float64 array)."""
    v = np.array(v, np.float64)
    v[~((v >= -2.0 ** 31) & (v < 2.0 ** 31))] = -2.0 ** 31
    return v


def tflite_builtin_round(x: np.ndarray, scale: np.float32) -> np.ndarray:
    """round(x / scale) as TFLite's optimized QUANTIZE (float input, per tensor; optimized_ops::
    AffineQuantize for int8 / uint8 / int16 outputs, x86 builds with SSE through NEON_2_SSE,
    measured with ai-edge-litert 2.3): over the flat tensor, the first 8*floor(n/8) values run
    the vector loop, rint_RNE(f32(x * r)) with r = f32(1 / double(scale)) (RoundToNearest:
    vcvtnq_s32_f32); the remaining n mod 8 the scalar tail, TfLiteRound(double(x) / double(scale)),
    half away from zero in float64. Both convert to int32 as x86 does (`x86_int32`), to which the
    caller's + zp wraps in int32 (measured: 1e12 with zp 5 -> -128, with zp -5 -> 127). Returns
    float64 values in x's shape."""
    flat = np.asarray(x, np.float32).reshape(-1)
    nv = flat.size // 8 * 8
    r = np.float32(1.0 / np.float64(scale))
    with np.errstate(over="ignore", invalid="ignore"):
        head = np.rint((flat[:nv] * r).astype(np.float32)).astype(np.float64)
        tail = _round_half_away(flat[nv:].astype(np.float64) / np.float64(scale))
    return x86_int32(np.concatenate([head, tail])).reshape(np.shape(x))


def dequantize_linear(q: np.ndarray, scale, zp, axis, block_size, out_dtype=np.float32,
                      reference: bool = False) -> np.ndarray:
    """ONNX/onnxruntime DequantizeLinear: f32(q - zp) * scale, the subtraction exact in int64.
    Per tensor / per axis, integers of <= 32 bits to float32, with float32 scales, run the
    Numba kernel (`dequantize_planned`); the NumPy path below serves the other cases, and
    every case with `reference` (kernels="reference")."""
    q = np.asarray(q)
    s_arr = np.asarray(scale)
    if not reference and kernel_dequantizes(q.dtype, s_arr, axis, block_size, out_dtype):
        return dequantize_planned(q, ek.dequantize_plan(s_arr, zp), axis)
    s = expand_param(s_arr, q.shape, axis, block_size)
    z = expand_param(np.asarray(zp, np.int64), q.shape, axis, block_size)
    d = (q.astype(np.int64) - z).astype(np.float32) * s.astype(np.float32)
    return d.astype(out_dtype)


def kernel_dequantizes(q_dtype, scale: np.ndarray, axis, block_size: int, out_dtype) -> bool:
    """True when DequantizeLinear runs through the Numba kernel (see `dequantize_linear`)."""
    return (not block_size and np.dtype(out_dtype) == np.float32 and q_dtype.kind in "iu"
            and q_dtype.itemsize <= 4 and scale.dtype == np.float32 and (scale.size == 1 or axis is not None))


def dequantize_planned(q: np.ndarray, plan, axis) -> np.ndarray:
    """DequantizeLinear through kernels.eltwise with a validated `dequantize_plan`."""
    q = np.ascontiguousarray(q)
    out = np.empty(q.shape, np.float32)
    c = plan.scale.size
    ek.dequantize_linear_planned(as_channels3(q, axis, c) if c > 1 else q, plan,
                                 as_channels3(out, axis, c) if c > 1 else out)
    return out
