"""Power-of-two scales: scale = 2**-e with an integer exponent e, stored as an exact float32.

The min-max exponent of a range is the largest e (finest step) that still covers it:

    e0 = max { e : 2**-e * qmax >= absmax }      i.e. 2**-e0 >= absmax / qmax > 2**-(e0+1)

computed with exact float64 comparisons (no log2 rounding trusted). A zero range gets e = 0.
"""
from __future__ import annotations

import numpy as np

from ..errors import QuantParamError

MIN_EXP, MAX_EXP = -126, 149  # float32 normal/subnormal powers of two 2**-e that stay > 0


def pow2_scale(exponent) -> np.ndarray:
    """Exact float32 2**-e (elementwise); raises if e leaves float32's range."""
    e = np.asarray(exponent, dtype=np.int64)
    if np.any(e < MIN_EXP) or np.any(e > MAX_EXP):
        raise QuantParamError(f"power-of-two exponent out of float32 range: {e.ravel()[:4].tolist()}")
    return np.ldexp(np.float32(1.0), (-e).astype(np.int32)).astype(np.float32)


def ceil_exponent(target) -> np.ndarray:
    """Largest e with 2**-e >= target (elementwise, target > 0); e = 0 where target <= 0."""
    t = np.asarray(target, dtype=np.float64)
    pos = t > 0
    safe = np.where(pos, t, 1.0)
    e = np.floor(-np.log2(safe)).astype(np.int64)
    e = np.where(np.ldexp(1.0, -e) < safe, e - 1, e)          # repair log2 rounding
    e = np.where(np.ldexp(1.0, -(e + 1)) >= safe, e + 1, e)
    return np.clip(np.where(pos, e, 0), MIN_EXP, MAX_EXP)


def minmax_exponent(absmax, qmax: int) -> np.ndarray:
    """e0: the finest power-of-two scale with 2**-e0 * qmax >= absmax (no clipping)."""
    return ceil_exponent(np.asarray(absmax, dtype=np.float64) / float(qmax))


def is_pow2(scale) -> bool:
    """True when every entry is an exact power of two (finite, > 0)."""
    s = np.asarray(scale, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        return False
    return bool(np.all(np.frexp(s)[0] == 0.5))


def exponent_of(scale) -> np.ndarray:
    """e with scale == 2**-e; raises QuantParamError when a scale is not a power of two."""
    if not is_pow2(scale):
        raise QuantParamError(f"scale is not an exact power of two: {np.asarray(scale).ravel()[:4].tolist()}")
    return (1 - np.frexp(np.asarray(scale, dtype=np.float64))[1]).astype(np.int64)
