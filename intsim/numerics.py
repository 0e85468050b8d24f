"""Float <-> integer conversions with ONNX semantics (float32 arithmetic, round half to even,
saturation), shared by the Q/DQ steps and the passes."""
from __future__ import annotations

import numpy as np


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


def quantize_linear(x: np.ndarray, scale, zp, axis, block_size, qmin: int, qmax: int, dtype,
                    rounding: str = "rne") -> np.ndarray:
    """ONNX QuantizeLinear: saturate(rint_RNE(x / scale) + zp); x and scale in float32.
    rounding="rhaz" rounds half away from zero instead (TFLite's float Quantize). NaN -> qmin,
    as onnxruntime's cvtps2dq gives."""
    s = expand_param(np.asarray(scale, np.float32), x.shape, axis, block_size)
    z = expand_param(np.asarray(zp, np.int64), x.shape, axis, block_size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = x.astype(np.float32) / s.astype(np.float32)
        v = np.rint(q) if rounding == "rne" else np.sign(q) * np.floor(np.abs(q) + np.float32(0.5))
    big = float(2 ** 62)
    v = np.clip(np.nan_to_num(v, nan=-big, posinf=big, neginf=-big), -big, big)
    return np.clip(v.astype(np.int64) + z, qmin, qmax).astype(dtype)


def dequantize_linear(q: np.ndarray, scale, zp, axis, block_size, out_dtype=np.float32) -> np.ndarray:
    """ONNX/onnxruntime DequantizeLinear: f32(q - zp) * scale, the subtraction exact in int64."""
    s = expand_param(np.asarray(scale), q.shape, axis, block_size)
    z = expand_param(np.asarray(zp, np.int64), q.shape, axis, block_size)
    d = (q.astype(np.int64) - z).astype(np.float32) * s.astype(np.float32)
    return d.astype(out_dtype)
