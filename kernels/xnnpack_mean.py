"""XNNPACK's int8 / uint8 (qs8 / qu8) MEAN and SUM, bit for bit (the TFLite interpreter's default
path): an int32 sum of the raw codes, converted to the output type in float32 (reduce-nd.c
create_reduce_nd / reshape_reduce_nd, xnn_init_qs8_reduce_scalar_params and its qu8 twin,
xnn_update_qs8_reduce_scalar_params with scale 1/n for MEAN and 1 for SUM, the int32 -> qs8 / qu8
reference convert, reference-utils.h quantize):

    s   = f32(f32(sx / sy) * f32(1 / n))  (MEAN)   |   f32(sx / sy)  (SUM; times 1.0f, exact)
    zp  = f32(zy - f32(f32(n * zx) * s))            n the number of reduced elements
    y   = saturate(nearbyint(f32(f32(sum x) * s) + zp))   (round half to even; NaN cannot occur)
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def mean_params(sx: float, zx: int, sy: float, zy: int, n: int) -> tuple:
    """(s, zp) float32 of MEAN (module doc)."""
    s = F32(F32(F32(sx) / F32(sy)) * F32(F32(1.0) / F32(n)))
    return s, F32(F32(zy) - F32(F32(int(n) * int(zx)) * s))


def sum_params(sx: float, zx: int, sy: float, zy: int, n: int) -> tuple:
    """(s, zp) float32 of SUM (module doc): the reduce params' scale update by 1.0f."""
    s = F32(F32(sx) / F32(sy))
    return s, F32(F32(zy) - F32(F32(int(n) * int(zx)) * s))


def xnn_mean(sums: np.ndarray, s, zp, out: np.ndarray) -> None:
    """out = saturate(nearbyint(f32(f32(sums) * s) + zp)) to out's integer type, elementwise
    (NumPy float32: each operation rounds once, as the scalar C does)."""
    info = np.iinfo(out.dtype)
    v = np.rint((sums.astype(F32) * F32(s)).astype(F32) + F32(zp))
    out[...] = np.clip(v, info.min, info.max).astype(out.dtype)


def xnn_mean_ref(sums: np.ndarray, s, zp, out: np.ndarray) -> None:
    """One-element-at-a-time twin of xnn_mean (NumPy float32 scalars, Python round-half-even)."""
    info = np.iinfo(out.dtype)
    flat = out.reshape(-1)
    for i, a in enumerate(np.asarray(sums).reshape(-1).tolist()):
        v = round(float(F32(F32(F32(a) * F32(s)) + F32(zp))))
        flat[i] = min(max(v, info.min), info.max)
