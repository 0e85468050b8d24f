"""kernels.requant.requant_double_rhaz (TFLite's reference FULLY_CONNECTED requantization)
against its NumPy twin and an independent plain-Python formula: the double product, rounded
half away from zero exactly (Fraction), + zero point, clamp."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.requant import requant_double_rhaz, requant_double_rhaz_ref

from .test_requant import requant_case as float_requant_case


def formula(acc: int, m: float, zp: int, lo: int, hi: int) -> int:
    v = Fraction(float(acc) * m)            # Python floats are doubles: the C++ double product
    r = int(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)   # floor(|v| + 1/2): half away from zero
    return max(lo, min(hi, r + zp))


@st.composite
def requant_case(draw):
    """test_requant's case (accumulators with int32/int64 extremes, out types, zp, clamps) with
    float64 multipliers; 2**-k multipliers make exact ties (odd acc * 0.5 = x.5) frequent."""
    acc, _, zp, lo, hi, out_dtype = draw(float_requant_case())
    c = acc.shape[1]
    mult = np.array(draw(st.lists(st.sampled_from([0.5, 0.25, 2.0**-20]) | st.floats(2.0**-40, 8.0),
                                  min_size=c, max_size=c)), np.float64)
    return acc, mult, zp, lo, hi, out_dtype


@settings(max_examples=300, deadline=None)
@given(requant_case())
def test_kernel_equals_twin_and_formula(case):
    acc, mult, zp, lo, hi, out_dtype = case
    out, ref = np.empty(acc.shape, out_dtype), np.empty(acc.shape, out_dtype)
    requant_double_rhaz(acc, mult, zp, lo, hi, out)
    requant_double_rhaz_ref(acc, mult, zp, lo, hi, ref)
    np.testing.assert_array_equal(out, ref)
    for (p, c, q), a in np.ndenumerate(acc):
        assert int(out[p, c, q]) == formula(int(a), float(mult[c]), zp, lo, hi), (a, mult[c], zp)


def test_ties_round_away_from_zero():
    acc = np.array([[[1, -1, 3, -3, 5, -5]]], np.int32)
    out = np.empty(acc.shape, np.int32)
    requant_double_rhaz(acc, np.array([0.5]), 0, -2**31, 2**31 - 1, out)
    assert out.reshape(-1).tolist() == [1, -1, 2, -2, 3, -3]
    # just below one half stays at zero (floor(|v| + 0.5) would give 1 here)
    requant_double_rhaz(np.array([[[1]]], np.int32), np.array([0.49999999999999994]), 0, -128, 127,
                        out[:, :, :1])
    assert int(out[0, 0, 0]) == 0


@pytest.mark.parametrize("bad", [
    dict(mult=np.array([0.5], np.float32)),           # float32 multiplier
    dict(mult=np.array([np.inf])),
    dict(acc=np.zeros((2, 2), np.int32)),
])
def test_refuses_bad_arguments(bad):
    args = dict(acc=np.zeros((1, 1, 2), np.int32), mult=np.array([0.5]))
    args.update(bad)
    with pytest.raises(ValueError):
        requant_double_rhaz(args["acc"], args["mult"], 0, -128, 127, np.empty((1, 1, 2), np.int8))


def _formula_int32(acc: int, m: float, zp: int, lo: int, hi: int) -> int:
    """formula with the C++ int32_t conversion on x86-64 (out of range -> INT32_MIN) and an
    int32 `+ zp`."""
    v = Fraction(float(acc) * m)
    r = int(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)
    r = -2**31 if not -2**31 <= r < 2**31 else r
    r = ((r + zp + 2**31) % 2**32) - 2**31
    return max(lo, min(hi, r))


@settings(max_examples=200, deadline=None)
@given(requant_case())
def test_int32_cast_equals_twin_and_formula(case):
    acc, mult, zp, lo, hi, out_dtype = case
    zp = max(-2**31, min(2**31 - 1, zp))
    out, ref = np.empty(acc.shape, out_dtype), np.empty(acc.shape, out_dtype)
    requant_double_rhaz(acc, mult, zp, lo, hi, out, int32_cast=True)
    requant_double_rhaz_ref(acc, mult, zp, lo, hi, ref, int32_cast=True)
    np.testing.assert_array_equal(out, ref)
    for (p, c, q), a in np.ndenumerate(acc):
        assert int(out[p, c, q]) == _formula_int32(int(a), float(mult[c]), zp, lo, hi), (a, mult[c], zp)
