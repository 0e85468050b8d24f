"""kernels.requant.requant_double_rhaz (TFLite's reference FULLY_CONNECTED requantization)
against its NumPy twin and an independent plain-Python formula: the double product, rounded
half away from zero exactly (Fraction), + zero point, clamp."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.requant import requant_double_rhaz, requant_double_rhaz_ref


def formula(acc: int, m: float, zp: int, lo: int, hi: int) -> int:
    v = Fraction(float(acc) * m)            # Python floats are doubles: the C++ double product
    r = int(abs(v) + Fraction(1, 2)) * (1 if v >= 0 else -1)   # floor(|v| + 1/2): half away from zero
    return max(lo, min(hi, r + zp))


OUT_TYPES = [(np.int8, -128, 127), (np.uint8, 0, 255), (np.int16, -2**15, 2**15 - 1),
             (np.int32, -2**31, 2**31 - 1)]


@st.composite
def requant_case(draw):
    p, c, q = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 7))
    acc_dtype = draw(st.sampled_from([np.int32, np.int64]))
    lim = 2**31 if acc_dtype == np.int32 else 2**40
    one = st.sampled_from([-lim, lim - 1, 0, 1, -1, 3, -3]) | st.integers(-lim, lim - 1)
    acc = np.array(draw(st.lists(one, min_size=p * c * q, max_size=p * c * q)), acc_dtype).reshape(p, c, q)
    # multipliers 2**-k make exact ties (acc odd * 2**-1 = x.5) frequent
    mult = np.array(draw(st.lists(st.sampled_from([0.5, 0.25, 2.0**-20]) | st.floats(2.0**-40, 8.0),
                                  min_size=c, max_size=c)), np.float64)
    out_dtype, tlo, thi = draw(st.sampled_from(OUT_TYPES))
    zp = draw(st.sampled_from([tlo, thi, 0 if tlo < 0 else tlo]) | st.integers(tlo, thi))
    lo = draw(st.sampled_from([tlo, zp]) | st.integers(tlo, thi))
    hi = draw(st.sampled_from([thi]) | st.integers(lo, thi))
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
