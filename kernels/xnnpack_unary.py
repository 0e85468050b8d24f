"""XNNPACK's 8-bit LEAKY_RELU and convert (QUANTIZE of codes to another scale), bit for bit (the
TFLite interpreter's default path), as 256-entry tables indexed by the input code's low byte
(kernels.lut.apply_table applies them).

LEAKY_RELU (qs8 / qu8):

Prepare (xnn_init_qs8_lrelu_scalar_params, src/microparams-init.c), float32:

    p = f32(sx / sy),  n = f32(p * alpha)
    mp = lrintf(256 * p),  mn = lrintf(256 * n)             (round half to even)

The TFLite delegate (VisitLeakyReluNode) takes p in [2**-8, 2**7] and n in [-127.99609375, 2**7]
with |n| >= 2**-8; elsewhere the node stays on the builtin kernel (`delegated`).

Run (qs8-vlrelu scalar kernels; the x86 kernels compute the same with a 16-bit mulhrs):

    d = x - zx;  m = mp if d >= 0 else mn
    y = clamp(asr(256*zy + 128 + d*m, 8), -128, 127)          (= zy + floor((d*m + 128) / 256))

Convert (the delegate's QUANTIZE of 8-bit codes to another scale, the same type: qs8 -> qs8,
qu8 -> qu8, xnn_unary_convert). Prepare (xnn_init_qs8_cvt_scalar_params / xnn_init_qu8_cvt_scalar_params,
src/microparams-init.c), float32:

    r = f32(sx / sy),  m = lrintf(256 * r)             (round half to even; 1 <= m <= 2**15)

The TFLite delegate (VisitUnaryNode, QUANTIZE) takes r in [2**-8, 2**7] (`cvt_delegated`);
elsewhere the builtin kernel runs. Run (qs8-vcvt / qu8-vcvt: scalar `asr(bias + x*m, 8)` with
bias = 256*zy - m*zx + 128; the x86 kernels' mulhrs of (zx - x) << 7 by -m is the same value):

    y = clamp(zy + floor(((x - zx)*m + 128) / 256), qmin, qmax)
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



def cvt_multiplier(sx: float, sy: float) -> int:
    """lrintf(256 * f32(sx / sy))."""
    return int(np.rint(F32(256) * F32(F32(sx) / F32(sy))))


def cvt_delegated(sx: float, sy: float) -> bool:
    """The XNNPACK delegate takes this 8-bit QUANTIZE (VisitUnaryNode: f32(sx / sy) in [2**-8, 2**7])."""
    r = float(F32(F32(sx) / F32(sy)))
    return 2.0 ** -8 <= r <= 2.0 ** 7


def cvt_table(sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    """The 256-entry table of XNNPACK's 8-bit convert to another scale, vectorized int64."""
    m = cvt_multiplier(sx, sy)
    d = np.arange(256, dtype=np.uint8).view(np.dtype(dtype)).astype(np.int64) - int(zx)     # low-byte order
    info = np.iinfo(dtype)
    return np.clip(int(zy) + ((d * m + 128) >> 8), info.min, info.max).astype(dtype)


def cvt_table_ref(sx, zx, sy, zy, dtype=np.int8) -> np.ndarray:
    """One-entry-at-a-time Python-int twin of cvt_table, in low-byte order (floor division)."""
    m = cvt_multiplier(sx, sy)
    info, out = np.iinfo(dtype), []
    for byte in range(256):
        x = byte - 256 if np.dtype(dtype) == np.int8 and byte >= 128 else byte
        out.append(min(max(int(zy) + ((x - int(zx)) * m + 128) // 256, info.min), info.max))
    return np.array(out, dtype)
