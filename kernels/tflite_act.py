"""TFLite's int8 elementwise activations as 256-entry tables (indexed by the code's low byte,
as kernels.lut.apply_table reads them), each entry computed by the interpreter's own integer
or float32 arithmetic on that input code; relu_table and leaky_table also build the int16 ops'
65536-entry tables (dtype int16: the same prepare and MultiplyByQuantizedMultiplier, the codes
clamped to int16; measured equal on every kernel path; int16 LOGISTIC / TANH: kernels.tflite_act16):

    relu_table     RELU / RELU6 / RELU_N1_TO_1 (tensorflow/lite/kernels/activations.cc
                   ReluPrepare + QuantizedReluX -> optimized_ops::ReluX, the same for every
                   kernel path): m0, s = QuantizeMultiplier(double(f32(sx / sy)));
                   y = clamp(zy + MultiplyByQuantizedMultiplier(x - zx, m0, s), lo, hi)
    leaky_table    LEAKY_RELU (LeakyReluPrepare + reference_ops::QuantizeLeakyRelu):
                   identity multiplier double(f32(sx / sy)), alpha multiplier
                   double(f32(f32(sx * alpha) / sy)); x - zx >= 0 ? identity : alpha, then
                   zy + MultiplyByQuantizedMultiplier, clamped to the type
    float_table    LOGISTIC and TANH int8 (SigmoidPrepare / TanhPrepare, kReference and
                   kGenericOptimized: PopulateLookupTable, LUTPopulate in newer sources):
                   d = f32(sx * f32(code - zx)); f = 1/(1+expf(-d)) | tanhf(d) in float32;
                   y = clamp(int(f32(roundf(f32(f * f32(1 / sy)))) + zy))

    requantize_table  an integer QUANTIZE that changes the scale, within one type or between
                   two (int8 <-> uint8, int16 -> int8, int8 / uint8 -> int16): as relu_table with
                   QuantizeMultiplier(double(sx) / double(sy)), clamped to the output type

    hard_swish_table  HARD_SWISH int8 (HardSwishPrepare + reference_ops::HardSwish,
                   reference/hard_swish.h): int16 fixed point, multipliers QuantizeMultiplier'd
                   from float32 products and cut to 16 bits (DownScaleInt32ToInt16Multiplier)

The float tables call the C library's expf / tanhf (ctypes), as the interpreter's std::exp /
std::tanh on float do; rounding is half away from zero (std::round).

Each table builder has a Python-int / Python-float twin (`*_ref`) computing one entry at a time.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from .fixedpoint import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_ref, quantize_multiplier
from .gemmlowp16 import rdbpot, srdhm16, srdhm16_one, wrap16

F32 = np.float32
_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
for _f in ("expf", "tanhf"):
    getattr(_LIBM, _f).restype = ctypes.c_float
    getattr(_LIBM, _f).argtypes = [ctypes.c_float]


def _codes(dtype) -> np.ndarray:
    """Every code of an 8- or 16-bit type, ordered by its unsigned view (table index)."""
    bits = np.iinfo(dtype).bits
    if bits not in (8, 16):
        raise ValueError(f"TFLite tables are built for 8- and 16-bit codes, not {np.dtype(dtype)}")
    return np.arange(1 << bits, dtype=np.uint8 if bits == 8 else np.uint16).view(np.dtype(dtype)).astype(np.int64)


def _multiplier(real32) -> tuple:
    m0, s = quantize_multiplier(np.array([float(real32)], np.float64))
    return int(m0[0]), int(s[0])


def relu_multiplier(sx, sy) -> tuple:
    """(m0, shift) of QuantizeMultiplier(double(f32(sx) / f32(sy))) (ReluPrepare)."""
    return _multiplier(F32(sx) / F32(sy))


def leaky_multipliers(sx, sy, alpha) -> tuple:
    """((m0, s) identity, (m0, s) alpha) as LeakyReluPrepare computes them in float32."""
    return _multiplier(F32(sx) / F32(sy)), _multiplier(F32(F32(sx) * F32(alpha)) / F32(sy))


def requantize_multiplier(sx, sy) -> tuple:
    """(m0, shift) of QuantizeMultiplier(double(sx) / double(sy)) (quantize.cc Prepare's
    effective output scale of an integer-to-integer QUANTIZE)."""
    m0, s = quantize_multiplier(np.array([np.float64(F32(sx)) / np.float64(F32(sy))], np.float64))
    return int(m0[0]), int(s[0])


def _scaled_table(m0, s, zx, zy, lo, hi, dtype, mode, out_dtype=None) -> np.ndarray:
    """Entries of `out_dtype` (default `dtype`) for every code of `dtype`."""
    x = _codes(dtype) - int(zx)
    y = multiply_by_quantized_multiplier(x, np.full(x.shape, m0), np.full(x.shape, s), mode) + int(zy)
    return np.clip(y, lo, hi).astype(out_dtype or dtype)


def _scaled_table_ref(m0, s, zx, zy, lo, hi, dtype, mode, out_dtype=None) -> np.ndarray:
    """Twin of _scaled_table: the Python-int multiplier twin over every code in one call."""
    x = _codes(dtype).astype(np.int64) - int(zx)
    y = multiply_by_quantized_multiplier_ref(x, np.full(x.shape, m0), np.full(x.shape, s), mode)
    return np.array([min(max(int(v) + int(zy), lo), hi) for v in y.tolist()], out_dtype or dtype)


def relu_table(sx, zx, sy, zy, lo, hi, dtype=np.int8, mode="double") -> np.ndarray:
    return _scaled_table(*relu_multiplier(sx, sy), zx, zy, lo, hi, dtype, mode)


def relu_table_ref(sx, zx, sy, zy, lo, hi, dtype=np.int8, mode="double") -> np.ndarray:
    return _scaled_table_ref(*relu_multiplier(sx, sy), zx, zy, lo, hi, dtype, mode)


def requantize_table(sx, zx, sy, zy, dtype=np.int16, mode="double", out_dtype=None) -> np.ndarray:
    """An integer QUANTIZE that changes the scale (quantize.cc: reference_ops::Requantize,
    y = clamp(MultiplyByQuantizedMultiplier(x - zx, requantize_multiplier) + zy) to the output
    type `out_dtype`, default `dtype`; every code of `dtype` in; int16 -> int16 measured equal on
    every kernel path)."""
    info = np.iinfo(out_dtype or dtype)
    return _scaled_table(*requantize_multiplier(sx, sy), zx, zy, info.min, info.max, dtype, mode, out_dtype)


def requantize_table_ref(sx, zx, sy, zy, dtype=np.int16, mode="double", out_dtype=None) -> np.ndarray:
    info = np.iinfo(out_dtype or dtype)
    return _scaled_table_ref(*requantize_multiplier(sx, sy), zx, zy, info.min, info.max, dtype, mode, out_dtype)


def leaky_table(sx, zx, sy, zy, alpha, dtype=np.int8, mode="double") -> np.ndarray:
    (mi, si), (ma, sa) = leaky_multipliers(sx, sy, alpha)
    x = _codes(dtype) - int(zx)
    pos = x >= 0
    y = multiply_by_quantized_multiplier(x, np.where(pos, mi, ma), np.where(pos, si, sa), mode) + int(zy)
    info = np.iinfo(dtype)
    return np.clip(y, info.min, info.max).astype(dtype)


def leaky_table_ref(sx, zx, sy, zy, alpha, dtype=np.int8, mode="double") -> np.ndarray:
    (mi, si), (ma, sa) = leaky_multipliers(sx, sy, alpha)
    info = np.iinfo(dtype)
    v = [c - int(zx) for c in _codes(dtype).tolist()]
    m = [mi if x >= 0 else ma for x in v]
    s = [si if x >= 0 else sa for x in v]
    y = multiply_by_quantized_multiplier_ref(np.array(v, np.int64), np.array(m, np.int64),
                                             np.array(s, np.int64), mode)
    return np.array([min(max(int(t) + int(zy), info.min), info.max) for t in y.tolist()], dtype)


def expf(v) -> float:
    """The C library's expf of a float32 value (as the interpreter's std::exp on float)."""
    return float(F32(_LIBM.expf(float(F32(v)))))


def _transform(kind: str, d: float) -> float:
    if kind == "logistic":
        e = F32(expf(-F32(d)))
        return float(F32(F32(1.0) / F32(F32(1.0) + e)))
    if kind == "tanh":
        return float(F32(_LIBM.tanhf(float(F32(d)))))
    raise ValueError(f"unknown TFLite table function '{kind}'")


def _round_half_away32(v: np.ndarray) -> np.ndarray:
    """std::round of float32 values, exactly (the + 0.5 in float64 cannot round)."""
    v = v.astype(np.float64)
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


def float_table(kind: str, sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    """LOGISTIC (kind "logistic") / TANH ("tanh") table: PopulateLookupTable / LUTPopulate."""
    d = (F32(sx) * (_codes(dtype) - int(zx)).astype(F32)).astype(F32)
    f = np.array([_transform(kind, float(v)) for v in d], F32)
    inv = F32(F32(1) / F32(sy))
    r = _round_half_away32((f * inv).astype(F32))
    info = np.iinfo(dtype)
    q = r.astype(np.int64) + int(zy)
    return np.clip(q, info.min, info.max).astype(dtype)


def float_table_ref(kind: str, sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    info, inv, out = np.iinfo(dtype), F32(F32(1) / F32(sy)), []
    for c in _codes(dtype).tolist():
        d = F32(F32(sx) * F32(c - int(zx)))
        p = float(F32(F32(_transform(kind, float(d))) * inv))
        r = math.floor(abs(p) + 0.5) * (1 if p >= 0 else -1)
        out.append(min(max(int(r) + int(zy), info.min), info.max))
    return np.array(out, dtype)


# ------------------------------------------------------------------------------- HARD_SWISH
def _down16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= 2**31 - 1 - (1 << 15) else (m + (1 << 15)) >> 16


def hard_swish_params(sx, sy) -> tuple:
    """(out_m16, out_exp, reluish_m16, reluish_exp) as HardSwishPrepare computes them in float32;
    ValueError where TFLite's prepare fails (output exponent > 0)."""
    hires = F32(F32(1.0 / 128.0) * F32(sx))
    om, oe = _multiplier(F32(hires / F32(sy)))
    rm, re = _multiplier(F32(hires / F32(3.0 / 32768.0)))
    if oe > 0:
        raise ValueError(f"HARD_SWISH output multiplier exponent {oe} > 0 (TFLite's prepare refuses it)")
    return _down16(om), oe, _down16(rm), re


def _sdhm16(a, b):
    """reference_ops::SaturatingDoublingHighMul (rounds toward zero)."""
    q = np.trunc((a * b) / (1 << 15)).astype(np.int64)
    return np.where((a == b) & (a == -32768), 32767, wrap16(q))


def _sat_left16(v, amount):
    return np.clip(v * (1 << amount), -32768, 32767)


def hard_swish_table(sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    om, oe, rm, re = hard_swish_params(sx, sy)
    x = wrap16(_codes(dtype) - int(zx))
    hires = wrap16(x * 128)
    pre_out = srdhm16(hires, np.int64(om))
    r = hires
    if re > 0:
        r = _sat_left16(r, re - 1)
    r = srdhm16(r, np.int64(rm))
    if re > 0:
        r = _sat_left16(r, 1)
    if re < 0:
        r = rdbpot(r, -re)
    r = (r + (1 << 15)) >> 1
    y = wrap16(rdbpot(_sdhm16(r, pre_out), -oe) + int(zy))
    info = np.iinfo(dtype)
    return np.clip(y, info.min, info.max).astype(dtype)


def hard_swish_table_ref(sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    """One code at a time, Python ints (C++ truncating division written out)."""
    om, oe, rm, re = hard_swish_params(sx, sy)
    info, out = np.iinfo(dtype), []

    def rdbpot(v, e):
        mask = (1 << e) - 1
        return (v >> e) + (1 if (v & mask) > (mask >> 1) + (1 if v < 0 else 0) else 0)

    def sat(v):
        return min(max(v, -32768), 32767)
    for c in _codes(dtype).tolist():
        hires = wrap16(wrap16(c - int(zx)) * 128)
        pre = srdhm16_one(hires, om)
        r = hires
        if re > 0:
            r = sat(r * (1 << (re - 1)))
        r = srdhm16_one(r, rm)
        if re > 0:
            r = sat(r * 2)
        if re < 0:
            r = rdbpot(r, -re)
        r = (r + (1 << 15)) >> 1
        p = 32767 if r == pre == -32768 else wrap16((abs(r * pre) >> 15) * (1 if r * pre >= 0 else -1))
        out.append(min(max(wrap16(rdbpot(p, -oe) + int(zy)), info.min), info.max))
    return np.array(out, dtype)
