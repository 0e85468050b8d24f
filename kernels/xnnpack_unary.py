"""XNNPACK's int8 (qs8) LEAKY_RELU, bit for bit (the TFLite interpreter's default path), as a
256-entry table indexed by the input code's low byte (kernels.lut.apply_table applies it).

Prepare (xnn_init_qs8_lrelu_scalar_params, src/microparams-init.c), float32:

    p = f32(sx / sy),  n = f32(p * alpha)
    mp = lrintf(256 * p),  mn = lrintf(256 * n)             (round half to even)

The TFLite delegate (VisitLeakyReluNode) takes p in [2**-8, 2**7] and n in [-127.99609375, 2**7]
with |n| >= 2**-8; elsewhere the node stays on the builtin kernel (`delegated`).

Run (qs8-vlrelu scalar kernels; the x86 kernels compute the same with a 16-bit mulhrs):

    d = x - zx;  m = mp if d >= 0 else mn
    y = clamp(asr(256*zy + 128 + d*m, 8), -128, 127)          (= zy + floor((d*m + 128) / 256))
"""
from __future__ import annotations

import numpy as np

F32 = np.float32


def lrelu_multipliers(sx: float, sy: float, alpha: float) -> tuple:
    """(mp, mn) Python ints: lrintf(256 * f32(sx / sy)) and lrintf(256 * f32(f32(sx / sy) * alpha))."""
    p = F32(F32(sx) / F32(sy))
    n = F32(p * F32(alpha))
    return int(np.rint(F32(256) * p)), int(np.rint(F32(256) * n))


def delegated(sx: float, sy: float, alpha: float) -> bool:
    """The XNNPACK delegate takes this LEAKY_RELU (its scale checks, float32)."""
    p = F32(F32(sx) / F32(sy))
    n = F32(p * F32(alpha))
    return bool(2.0 ** -8 <= p <= 2.0 ** 7 and -127.99609375 <= n <= 2.0 ** 7 and abs(float(n)) >= 2.0 ** -8)


def lrelu_table(sx, zx, sy, zy, alpha, dtype=np.int8) -> np.ndarray:
    """The 256-entry int8 table of XNNPACK's qs8 LEAKY_RELU (module doc), vectorized int64."""
    mp, mn = lrelu_multipliers(sx, sy, alpha)
    d = np.arange(256, dtype=np.uint8).view(np.dtype(dtype)).astype(np.int64) - int(zx)     # low-byte order
    acc = 256 * int(zy) + 128 + d * np.where(d >= 0, mp, mn)
    info = np.iinfo(dtype)
    return np.clip(acc >> 8, info.min, info.max).astype(dtype)


def lrelu_table_ref(sx, zx, sy, zy, alpha, dtype=np.int8) -> np.ndarray:
    """One-entry-at-a-time Python-int twin of lrelu_table, in low-byte order."""
    mp, mn = lrelu_multipliers(sx, sy, alpha)
    info, out = np.iinfo(dtype), []
    for byte in range(256):
        x = byte - 256 if np.dtype(dtype) == np.int8 and byte >= 128 else byte
        d = x - int(zx)
        y = (256 * int(zy) + 128 + d * (mp if d >= 0 else mn)) >> 8
        out.append(min(max(y, info.min), info.max))
    return np.array(out, dtype)
