"""TFLite SUB of int8 codes (tensorflow/lite/kernels/sub.cc PrepareGeneralSubOp +
reference_ops::SubElementwise / BroadcastQuantSubSlow, reference/sub.h): ADD's prepare
(kernels.fixedpoint.tflite_add_params: both inputs scaled by q31 multipliers of
s / (2 max(sa, sb)) after a left shift of 20, the result by 2 max(sa, sb) / (2**20 sy)), and
the scaled second input subtracted, not added with a negated multiplier:

    va = mbqm(wrap32((a - za) << left_shift), m[0], s[0])
    vb = mbqm(wrap32((b - zb) << left_shift), m[1], s[1])
    out = clamp(mbqm(wrap32(va - vb), m[2], s[2]) + zy, lo, hi)

(MultiplyByQuantizedMultiplier rounds ties upward in its doubling high multiply, so
mbqm(x, -m) != -mbqm(x, m) at ties: the two are not the same kernel.)
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_ref


def _wrap32(v):
    if isinstance(v, int):
        return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return ((np.asarray(v, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def tflite_sub(a, b, za, zb, m, s, left_shift, mode, zy, lo, hi, out) -> None:
    """a, b, out: one shape, integer codes; m, s: (3,) as tflite_add_params returns."""
    m, s = np.asarray(m, np.int64).reshape(-1), np.asarray(s, np.int64).reshape(-1)

    def scaled(x, z, k):
        v = _wrap32((np.asarray(x, np.int64) - int(z)) << int(left_shift))
        return multiply_by_quantized_multiplier(v, np.full(v.shape, m[k]), np.full(v.shape, s[k]), mode)
    raw = _wrap32(scaled(a, za, 0) - scaled(b, zb, 1))
    y = multiply_by_quantized_multiplier(raw, np.full(raw.shape, m[2]), np.full(raw.shape, s[2]), mode) + int(zy)
    out[...] = np.clip(y, lo, hi).astype(out.dtype)


def tflite_sub_ref(a, b, za, zb, m, s, left_shift, mode, zy, lo, hi, out) -> None:
    """Python-int twin of tflite_sub, one element at a time."""
    m, s = [int(v) for v in np.asarray(m).reshape(-1)], [int(v) for v in np.asarray(s).reshape(-1)]

    def mbqm(x, k):
        return int(multiply_by_quantized_multiplier_ref(np.array([x]), np.array([m[k]]), np.array([s[k]]), mode)[0])
    flat = []
    for x, y in zip(np.asarray(a).reshape(-1).tolist(), np.asarray(b).reshape(-1).tolist()):
        va = mbqm(_wrap32((x - int(za)) << int(left_shift)), 0)
        vb = mbqm(_wrap32((y - int(zb)) << int(left_shift)), 1)
        flat.append(min(max(mbqm(_wrap32(va - vb), 2) + int(zy), lo), hi))
    out[...] = np.array(flat, np.int64).reshape(out.shape).astype(out.dtype)
