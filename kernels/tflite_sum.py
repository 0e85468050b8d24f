"""TFLite SUM of int8, uint8 and int16 codes on the interpreter's optimized path (reduce.cc EvalSum ->
QuantizedMeanOrSum<T, kGenericOptimized> -> optimized_ops::QuantizedMeanOrSum with
compute_sum; XNNPACK leaves SUM to it: measured equal), per output over the reduced axes:

    s = sum of the raw codes (int32 in the interpreter; exact here in int64, so the caller
        refuses sums that can leave int32: `sum_fits_int32`)
    scale = f32(sx / sy);  bias = f32(f32(-zx * scale) * n)          (float32, n the count)
    y = clamp(int(round_half_away(f32(f32(f32(s) * scale) + bias))) + zy, qmin, qmax)

The interpreter's reference path (BUILTIN_REF) is not this: its dispatch hands int8 data to
reference_ops::QuantizedMeanOrSum as uint8 (codes read as c & 0xFF, the result clamped to
0..255 and stored back as a byte): an interpreter defect, refused by the `tflite` target.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

F32 = np.float32


def sum_params(sx, zx, sy, n) -> tuple:
    """(scale, bias) float32 as the optimized kernel computes them."""
    scale = F32(F32(sx) / F32(sy))
    return scale, F32(F32(F32(-int(zx)) * scale) * F32(n))


@kernel
def _sum_requant_impl(sums, scale, bias, zy, lo, hi, out):
    for i in range(sums.size):
        v = np.float32(np.float32(np.float32(sums[i]) * scale) + bias)
        d = np.float64(v)
        q = np.int64(np.floor(abs(d) + 0.5))
        if d < 0:
            q = -q
        out[i] = min(max(q + zy, lo), hi)


def sum_fits_int32(dtype, n: int) -> bool:
    """Every sum of n codes of `dtype` fits the interpreter's int32 accumulator."""
    info = np.iinfo(dtype)
    return n * max(abs(int(info.min)), int(info.max)) <= 2**31 - 1


def _check(name, sums, out) -> None:
    """out an int8, uint8 or int16 C-contiguous array with one element per sum (the loop writes
    out[i] for every sums[i])."""
    if not isinstance(out, np.ndarray) or out.dtype not in (np.int8, np.uint8, np.int16) or \
            not out.flags.c_contiguous:
        raise ValueError(f"{name}: 'out' must be a C-contiguous int8, uint8 or int16 array")
    if np.size(sums) != out.size:
        raise ValueError(f"{name}: {np.size(sums)} sums for {out.size} outputs")


def sum_requant(sums, sx, zx, sy, zy, n, out) -> None:
    """sums (int64, raw-code sums over n entries each) -> out codes (int8 / uint8 / int16), C-contiguous,
    same size."""
    _check("sum_requant", sums, out)
    info = np.iinfo(out.dtype)
    scale, bias = sum_params(sx, zx, sy, n)
    _sum_requant_impl(np.ascontiguousarray(sums, np.int64).reshape(-1), scale, bias, np.int64(zy),
                      np.int64(info.min), np.int64(info.max), out.reshape(-1))


def sum_requant_ref(sums, sx, zx, sy, zy, n, out) -> None:
    """NumPy twin of sum_requant."""
    _check("sum_requant_ref", sums, out)
    info = np.iinfo(out.dtype)
    scale, bias = sum_params(sx, zx, sy, n)
    v = ((np.asarray(sums, np.int64).astype(F32) * scale).astype(F32) + bias).astype(F32).astype(np.float64)
    q = np.copysign(np.floor(np.abs(v) + 0.5), v).astype(np.int64) + int(zy)
    out[...] = np.clip(q, info.min, info.max).reshape(out.shape).astype(out.dtype)
