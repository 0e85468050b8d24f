"""TFLite PRELU of int8 (and int16, alpha int16 or int8) codes (tensorflow/lite/kernels/
activations.cc PreluPrepare + reference_ops::BroadcastPrelu4DSlow / reference_ops::Prelu,
reference/prelu.h; the same kernel serves every interpreter path, measured):

    m1, s1 = QuantizeMultiplier(double(f32(sx / sy)))
    m2, s2 = QuantizeMultiplier(double(f32(f32(sx * sa) / sy)))
    v = x - zx
    y = clamp(zy + (v >= 0 ? mbqm(v, m1, s1) : mbqm(v * (alpha - za), m2, s2)), qmin, qmax)

with mbqm MultiplyByQuantizedMultiplier in `mode` (kernels.fixedpoint) and qmin, qmax the
output type's range (PRELU has no fused activation).
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_ref, quantize_multiplier

F32 = np.float32


def prelu_multipliers(sx, sa, sy) -> tuple:
    """((m1, s1), (m2, s2)) as PreluPrepare computes them (float32 quotients, then double)."""
    real = np.array([F32(sx) / F32(sy), F32(F32(sx) * F32(sa)) / F32(sy)], np.float64)
    m, s = quantize_multiplier(real)
    return (int(m[0]), int(s[0])), (int(m[1]), int(s[1]))


def tflite_prelu(x, alpha, zx, za, zy, mults, mode, out) -> None:
    """out (x's shape, int8/uint8/int16) = PRELU of x with alpha broadcast to x; `mults` as
    prelu_multipliers returns."""
    (m1, s1), (m2, s2) = mults
    v = np.asarray(x, np.int64) - int(zx)
    a = np.broadcast_to(np.asarray(alpha, np.int64) - int(za), v.shape)
    pos = v >= 0
    y = multiply_by_quantized_multiplier(np.where(pos, v, v * a), np.where(pos, m1, m2), np.where(pos, s1, s2),
                                         mode) + int(zy)
    info = np.iinfo(out.dtype)
    out[...] = np.clip(y, info.min, info.max).astype(out.dtype)


def tflite_prelu_ref(x, alpha, zx, za, zy, mults, mode, out) -> None:
    """Python-int twin of tflite_prelu, one element at a time."""
    (m1, s1), (m2, s2) = mults
    xs = np.asarray(x, np.int64)
    al = np.broadcast_to(np.asarray(alpha, np.int64), xs.shape).reshape(-1).tolist()
    info, flat = np.iinfo(out.dtype), []
    for c, a in zip(xs.reshape(-1).tolist(), al):
        v = c - int(zx)
        arg, m, s = (v, m1, s1) if v >= 0 else (v * (a - int(za)), m2, s2)
        y = int(multiply_by_quantized_multiplier_ref(np.array([arg]), np.array([m]), np.array([s]), mode)[0]) + int(zy)
        flat.append(min(max(y, info.min), info.max))
    out[...] = np.array(flat, np.int64).reshape(xs.shape).astype(out.dtype)
