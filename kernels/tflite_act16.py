"""TFLite's int16 LOGISTIC and TANH (zero points 0, output scale 2**-15) as 65536-entry tables
(indexed by the code's uint16 view, as kernels.lut.apply_table reads a 16-bit table), each entry
computed as reference_integer_ops::Logistic / Tanh (tensorflow/lite/kernels/internal/reference/
integer_ops/logistic.h, tanh.h) compute that code:

    prepare (activations.cc SigmoidPrepare / TanhPrepare, int16):
        pot, l = CheckedLog2(sx)          float32: x = logf(sx) * (1 / logf(2)); l = round(x);
                                          pot = |x - l| < 1e-3 (a near power of two counts)
        shift = 12 + l;  pot &= shift == 0 (LOGISTIC) | shift in {0, 1} (TANH)
        pot:  m = 3 << shift, k = 0
        else: r = double(sx) * 4096 * 3; k = 0; while r <= 32767 / 2 and k <= 30: k += 1, r *= 2
              m = int(r)                  (truncation)
    per code x (int32):
        v = (x * m + (k > 0 ? 2**(k-1) : 0)) >> k          floor shift
        LOGISTIC: h = |v| >> 9, t = |v| & 511;  TANH: h = |v| >> 8, t = |v| & 255
        h >= 255: r = LOGISTIC ? 32767 << 10 : 65535 << 8
        else:     r = (T[h] << b) + t * (T[h+1] - T[h])      b = 9 | 8, T = SIGMOID_TABLE
        LOGISTIC: y = (v >= 0 ? r + 512 : 2**25 - r + 511) >> 10
        TANH:     y = (v >= 0 ? r - 2**23 + 128 : 2**23 - r + 127) >> 8    (arithmetic shift)
        y as int16 (two's complement wrap)

SIGMOID_TABLE is TFLite's constant sigmoid_table_uint16 (common.h): 256 entries of
65536 * sigmoid(i / 24), tuned to within one count of the rounded value (data, not a formula).

The interpreter's optimized kernels (builtin path; XNNPACK does not take int16) run the same
reference function unless the input scale passes the power-of-two test above (`pot_shift`);
then they run optimized_ops::Logistic / Tanh on int16, gemmlowp's fixed-point logistic / tanh
of the codes as FixedPoint<int16, 3> (kernels.gemmlowp16): `optimized_table16`.

Each table builder has a Python-int twin (`*_ref`) computing one entry at a time.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from . import gemmlowp16
from .gemmlowp16 import wrap16

F32 = np.float32
_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
_LIBM.logf.restype = ctypes.c_float
_LIBM.logf.argtypes = [ctypes.c_float]

SIGMOID_TABLE = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], np.int64)

_BITS = {"logistic": 9, "tanh": 8}


def checked_log2(scale) -> tuple:
    """(pot, l): TFLite's CheckedLog2 of a float32 scale, in float32 arithmetic."""
    x = F32(F32(_LIBM.logf(float(F32(scale)))) * F32(F32(1.0) / F32(_LIBM.logf(2.0))))
    r = F32(np.copysign(np.floor(np.abs(np.float64(x)) + 0.5), np.float64(x)))
    return bool(abs(F32(x - r)) < F32(1e-3)), int(r)


def pot_shift(kind: str, sx):
    """The input left shift of the power-of-two case (0, or 1 for TANH), or None."""
    pot, l = checked_log2(sx)
    shift = 12 + l
    return shift if pot and shift in ((0,) if kind == "logistic" else (0, 1)) else None


def input_multiplier(kind: str, sx) -> tuple:
    """(m, k) the int16 kernel scales the codes by: v = (x * m + round) >> k; ValueError where
    x * m can leave int32 (sx >= 16/3: C++ overflow, not modelled)."""
    if kind not in _BITS:
        raise ValueError(f"unknown int16 TFLite table function '{kind}'")
    s = pot_shift(kind, sx)
    if s is not None:
        return 3 << s, 0
    r, k = float(np.float64(F32(sx))) * 4096.0 * 3.0, 0
    while r <= 32767.0 / 2.0 and k <= 30:
        k, r = k + 1, r * 2.0
    if int(r) * 32768 >= 2**31:
        raise ValueError(f"int16 {kind.upper()} input scale {float(sx)!r}: the code times its multiplier "
                         f"{int(r)} leaves int32 (the kernel's product overflows)")
    return int(r), k


def check_output(kind: str, sy, zx, zy) -> None:
    """ValueError where TFLite's prepare fails: zero points not 0, output scale not 2**-15
    (LOGISTIC: exactly 1/32768; TANH: CheckedLog2 gives -15)."""
    if int(zx) != 0 or int(zy) != 0:
        raise ValueError(f"int16 {kind.upper()} needs zero points 0, got {int(zx)} and {int(zy)}")
    ok = F32(sy) == F32(2.0**-15) if kind == "logistic" else checked_log2(sy) == (True, -15)
    if not ok:
        raise ValueError(f"int16 {kind.upper()} needs output scale 2**-15, got {float(sy)!r}")


def _codes16() -> np.ndarray:
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)


def table16(kind: str, sx) -> np.ndarray:
    """(65536,) int16: the kernel's output for every input code (by uint16 index)."""
    m, k = input_multiplier(kind, sx)
    b = _BITS[kind]
    v = (_codes16() * m + ((1 << (k - 1)) if k > 0 else 0)) >> k
    a = np.abs(v)
    h = a >> b
    hc = np.minimum(h, 254)
    lo, hi = SIGMOID_TABLE[hc], SIGMOID_TABLE[hc + 1]
    r = np.where(h >= 255, (32767 << 10) if kind == "logistic" else (65535 << 8),
                 (lo << b) + (a & ((1 << b) - 1)) * (hi - lo))
    if kind == "logistic":
        y = np.where(v >= 0, r + 512, (1 << 25) - r + 511) >> 10
    else:
        y = np.where(v >= 0, r - (1 << 23) + 128, (1 << 23) - r + 127) >> 8
    return wrap16(y).astype(np.int16)


def table16_ref(kind: str, sx) -> np.ndarray:
    """table16 one code at a time, Python ints."""
    m, k = input_multiplier(kind, sx)
    b = _BITS[kind]
    tab = [int(t) for t in SIGMOID_TABLE]
    out = []
    for x in _codes16().tolist():
        v = (x * m + ((1 << (k - 1)) if k > 0 else 0)) >> k
        a = abs(v)
        h = a >> b
        if h >= 255:
            r = (32767 << 10) if kind == "logistic" else (65535 << 8)
        else:
            r = (tab[h] << b) + (a & ((1 << b) - 1)) * (tab[h + 1] - tab[h])
        if kind == "logistic":
            y = (r + 512 if v >= 0 else (1 << 25) - r + 511) >> 10
        else:
            y = (r - (1 << 23) + 128 if v >= 0 else (1 << 23) - r + 127) >> 8
        out.append(wrap16(y))
    return np.array(out, np.int16)


def optimized_table16(kind: str, sx) -> np.ndarray:
    """(65536,) int16: the optimized kernels' output per code, gemmlowp's logistic / tanh where
    the input scale is a power of two (pot_shift), else table16."""
    shift = pot_shift(kind, sx)
    if shift is None:
        return table16(kind, sx)
    return gemmlowp16.logistic16(_codes16()) if kind == "logistic" else gemmlowp16.tanh16(_codes16(), shift)


def optimized_table16_ref(kind: str, sx) -> np.ndarray:
    shift = pot_shift(kind, sx)
    if shift is None:
        return table16_ref(kind, sx)
    codes = _codes16()
    return gemmlowp16.logistic16_ref(codes) if kind == "logistic" else gemmlowp16.tanh16_ref(codes, shift)
