"""Fused activation ranges: a TFLite operator's fused activation (RELU, RELU_N1_TO_1, RELU6, or
none) as the (lo, hi) clamp in output codes, by the rule of the kernel path that computes it.

The importer keeps the activation as its float bounds (fmin, fmax), as the XNNPACK delegate's
ConvertActivationToOutputRange states them: NONE (-inf, inf), RELU (0, inf), RELU_N1_TO_1
(-1, 1), RELU6 (0, 6); the target turns them into codes once, at prepare
(`Target.fused_activation_range`, passes/fused_activation.py). With s the output scale
(float32) and z the output zero point, each finite bound f becomes:

    tflite_range   z + round_half_away(f32(f / s))        then max(qmin, lo), min(qmax, hi)
                   (TFLite's CalculateActivationRangeQuantized, kernel_util.cc: TfLiteRound)
    xnnpack_range  rint_even(clamp(f32(f32(f / s) + f32(z)), qmin, qmax))
                   (XNNPACK's xnn_qs8_quantize / xnn_qu8_quantize, quantization.h: lrintf)

An infinite bound is the type's end under both rules.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import IntType, QParams

# tflite.ActivationFunctionType -> float bounds (the delegate's ConvertActivationToOutputRange)
ACTIVATION_BOUNDS = {0: (-math.inf, math.inf), 1: (0.0, math.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def _scale_zp(qp: QParams) -> tuple:
    return np.float32(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])


def round_half_away(v: float) -> int:
    """TfLiteRound (std::round): half away from zero."""
    q = math.floor(abs(v) + 0.5) if abs(v - math.trunc(v)) != 0.5 else math.trunc(abs(v)) + 1
    return int(math.copysign(q, v))


def tflite_range(bounds, qp: QParams, t: IntType) -> tuple:
    """(lo, hi) as TFLite's CalculateActivationRangeQuantized: z + TfLiteRound(f / s), the
    division in float32, then limited to the type's range."""
    s, z = _scale_zp(qp)
    fmin, fmax = bounds
    lo = t.qmin if math.isinf(fmin) else max(t.qmin, z + round_half_away(float(np.float32(fmin) / s)))
    hi = t.qmax if math.isinf(fmax) else min(t.qmax, z + round_half_away(float(np.float32(fmax) / s)))
    return lo, hi


def xnnpack_range(bounds, qp: QParams, t: IntType) -> tuple:
    """(lo, hi) as XNNPACK's xnn_qs8_quantize / xnn_qu8_quantize of the float bounds:
    lrintf(min(max(f / s + z, qmin), qmax)), every step in float32, rounded half to even."""
    s, z = _scale_zp(qp)

    def q(f):
        v = np.float32(np.float32(f) / s) + np.float32(z)
        return int(np.rint(np.clip(v, np.float32(t.qmin), np.float32(t.qmax))))
    return q(bounds[0]), q(bounds[1])
