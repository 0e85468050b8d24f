"""onnxruntime (MLAS) float requantization, bit for bit (DESIGN §3, target `ort`).

    m[c] = f32( f32(a_scale * b_scale[c]) / out_scale )
    out[p, c, q] = clamp( rint_half_even( f32(acc[p, c, q]) * m[c] ) + zp, lo, hi )

Every float operation is float32; f32(acc) itself rounds when |acc| > 2**24.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


def ort_multiplier(a_scale, b_scale, out_scale) -> np.ndarray:
    a = np.asarray(a_scale, np.float32)
    b = np.asarray(b_scale, np.float32)
    o = np.asarray(out_scale, np.float32)
    return ((a * b).astype(np.float32) / o).astype(np.float32)


@kernel
def _requant_float_impl(acc, mult, zp, lo, hi, out):
    p_, c_, q_ = acc.shape
    flo = np.float32(lo - zp)
    fhi = np.float32(hi - zp)
    for p in range(p_):
        for c in range(c_):
            m = mult[c]
            for q in range(q_):
                v = np.float32(acc[p, c, q]) * m
                if v < flo:
                    v = flo
                elif v > fhi:
                    v = fhi
                out[p, c, q] = np.int64(np.rint(v)) + zp


def requant_float(acc, mult, zp, lo, hi, out) -> None:
    mult = np.ascontiguousarray(mult, np.float32)
    if acc.ndim != 3 or out.shape != acc.shape or mult.shape != (acc.shape[1],):
        raise ValueError(f"requant_float: acc {acc.shape}, out {out.shape}, mult {mult.shape} do not match")
    if out.dtype.kind not in "iu" or acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"requant_float: acc must be int32/int64 and out an integer array")
    if not (lo <= zp <= hi):
        raise ValueError(f"requant_float: zero point {zp} outside [{lo}, {hi}]")
    _requant_float_impl(np.ascontiguousarray(acc), mult, np.int64(zp), np.int64(lo), np.int64(hi), out)


def requant_float_ref(acc, mult, zp, lo, hi, out) -> None:
    """NumPy twin of requant_float."""
    v = acc.astype(np.float32) * np.asarray(mult, np.float32)[None, :, None]
    v = np.clip(v, np.float32(lo - zp), np.float32(hi - zp))
    out[...] = (np.rint(v).astype(np.int64) + zp).astype(out.dtype)
