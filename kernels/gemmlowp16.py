"""gemmlowp's int16 fixed-point logistic and tanh (fixedpoint/fixedpoint.h: logistic, tanh,
exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1,
one_minus_x_over_one_plus_x_for_x_in_0_1), as TFLite's optimized int16 LOGISTIC / TANH run them
where the input scale is a power of two (optimized_ops::Logistic / Tanh on int16: the codes are
a FixedPoint<int16, 3>; TANH with input_left_shift 1 first doubles them, saturating), with
every int16 step as gemmlowp defines it (the SIMD paths equal the scalar one by design):

    a * b      SaturatingRoundingDoublingHighMul: (a*b + (a*b >= 0 ? 2**14 : 1 - 2**14)) / 2**15
               truncated, int16(-32768 * -32768) -> 32767
    a + b, a - b, -a   int16 wrap;  SaturatingAdd (AddSaturatingIf16Bit): clamp
    RoundingDivideByPOT(x, e)   (x >> e) + ((x & (2**e-1)) > ((2**e-1) >> 1) + (x < 0))
    MultiplyByPOT<e>            e > 0: saturating x * 2**e;  e < 0: RoundingDivideByPOT(x, -e)
    RoundingHalfSum(a, b)       trunc((a + b + sign(a + b)) / 2)
    constants  RoundingDivideByPOT(int32 constant, 16): exp(-1/8), 1/3, 48/17, -32/17 and the
               barrel multipliers exp(-2**k), k = -2..4

`logistic16(x)` / `tanh16(x)` are NumPy int64 over arrays; `*_ref` twins run one Python int at
a time through the same formulas written scalar.
"""
from __future__ import annotations

import numpy as np

_ONE0 = 32767                       # FixedPoint<int16, 0>::One()


def wrap16(v):
    """int16 wrap-around of an int64 array or Python int."""
    return ((v + 32768) & 0xFFFF) - 32768


def rdbpot(x, e: int):
    """gemmlowp RoundingDivideByPOT (ties away from zero) of an int64 array or Python int."""
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def srdhm16(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int16 values held in int64 arrays:
    (a*b + (a*b >= 0 ? 2**14 : 1 - 2**14)) / 2**15 truncated, -32768 * -32768 -> 32767."""
    ab = a * b
    q = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(q >= 0, q >> 15, -((-q) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, wrap16(q))


def srdhm16_one(a: int, b: int) -> int:
    """srdhm16 on one Python int (the twins' scalar form, written out independently)."""
    if a == b == -32768:
        return 32767
    ab = a * b
    q = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return wrap16(q >> 15 if q >= 0 else -((-q) >> 15))


def _c(v: int) -> int:
    """RescaleConstantInitializer of an int32 constant to int16."""
    return int(rdbpot(np.int64(v), 16))


_EXP_M1_8, _ONE_THIRD, _C48_17, _CM32_17 = _c(1895147668), _c(715827883), _c(1515870810), _c(-1010580540)
_BARREL = ((-2, _c(1672461947)), (-1, _c(1302514674)), (0, _c(790015084)), (1, _c(290630308)), (2, _c(39332535)),
           (3, _c(720401)), (4, _c(242)))


class _Ops:
    """The int16 primitives over NumPy int64 arrays (values kept in int16 range)."""

    wrap = staticmethod(wrap16)
    mul = staticmethod(srdhm16)

    @staticmethod
    def sat(v):
        return np.clip(v, -32768, 32767)

    @staticmethod
    def where(m, a, b):
        return np.where(m, a, b)

    @staticmethod
    def half_sum(a, b):
        s = a + b
        t = s + np.where(s >= 0, 1, -1)
        return np.where(t >= 0, t >> 1, -((-t) >> 1))


class _ScalarOps:
    """The same primitives on one Python int."""

    wrap = staticmethod(wrap16)
    mul = staticmethod(srdhm16_one)

    @staticmethod
    def sat(v):
        return min(max(v, -32768), 32767)

    @staticmethod
    def where(m, a, b):
        return a if m else b

    @staticmethod
    def half_sum(a, b):
        t = a + b + (1 if a + b >= 0 else -1)
        return t >> 1 if t >= 0 else -((-t) >> 1)


def _pot(o, x, e: int):
    """SaturatingRoundingMultiplyByPOT<e>."""
    return o.sat(x * (1 << e)) if e > 0 else (rdbpot(x, -e) if e < 0 else x)


def _exp_quarter(o, a):
    """exp_on_interval_between_negative_one_quarter_and_0_excl on FixedPoint<int16, 0>."""
    x = o.wrap(a + 4096)
    x2 = o.mul(x, x)
    x3 = o.mul(x2, x)
    x4 = o.mul(x2, x2)
    inner = _pot(o, o.wrap(o.mul(o.wrap(_pot(o, x4, -2) + x3), _ONE_THIRD) + x2), -1)
    return o.sat(_EXP_M1_8 + o.mul(_EXP_M1_8, o.wrap(x + inner)))


def _exp_neg(o, a, k: int):
    """exp_on_negative_values of FixedPoint<int16, k> -> FixedPoint<int16, 0>."""
    frac = 15 - k
    quarter = 1 << (frac - 2)
    a_mod = o.wrap((a & (quarter - 1)) - quarter)
    result = _exp_quarter(o, _pot(o, a_mod, k))
    rem = o.wrap(a_mod - a)
    for e, mult in _BARREL:
        if k > e:
            result = o.where((rem & (1 << (frac + e))) != 0, o.mul(result, mult), result)
    return o.where(a == 0, _ONE0, result)


def _newton(o, a):
    """x ~ 1 / ((a + 1) / 2) in FixedPoint<int16, 2> (three Newton-Raphson steps)."""
    half = o.half_sum(a, _ONE0)
    x = o.wrap(_C48_17 + o.mul(half, _CM32_17))
    for _ in range(3):
        x = o.wrap(x + _pot(o, o.mul(x, o.wrap(8192 - o.mul(half, x))), 2))
    return x


def _logistic(o, a):
    pos = a > 0
    absx = o.where(pos, a, o.wrap(-a))
    r_pos = _pot(o, _newton(o, _exp_neg(o, o.wrap(-absx), 3)), 1)
    return o.where(a == 0, 16384, o.where(pos, r_pos, o.wrap(_ONE0 - r_pos)))


def _tanh(o, a):
    neg = a < 0
    n = o.where(neg, a, o.wrap(-a))
    t = _pot(o, o.wrap(_newton(o, _exp_neg(o, n, 4)) - 8192), 2)
    return o.where(a == 0, 0, o.where(neg, o.wrap(-t), t))


def logistic16(x) -> np.ndarray:
    """gemmlowp::logistic of FixedPoint<int16, 3> codes x -> FixedPoint<int16, 0> codes (int16)."""
    return _logistic(_Ops, np.asarray(x, np.int64)).astype(np.int16)


def tanh16(x, input_left_shift: int = 0) -> np.ndarray:
    """optimized_ops::Tanh on int16: gemmlowp::tanh of the codes (doubled, saturating, when
    input_left_shift is 1)."""
    a = _pot(_Ops, np.asarray(x, np.int64), int(input_left_shift))
    return _tanh(_Ops, a).astype(np.int16)


def logistic16_ref(x) -> np.ndarray:
    return np.array([_logistic(_ScalarOps, int(v)) for v in np.asarray(x).reshape(-1)], np.int16).reshape(np.shape(x))


def tanh16_ref(x, input_left_shift: int = 0) -> np.ndarray:
    return np.array([_tanh(_ScalarOps, _pot(_ScalarOps, int(v), int(input_left_shift)))
                     for v in np.asarray(x).reshape(-1)], np.int16).reshape(np.shape(x))
