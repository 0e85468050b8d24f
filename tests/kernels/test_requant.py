"""kernels.requant (onnxruntime float requant) against its NumPy twin and an independent
plain-Python formula: float32 product, round half to even, + zero point, clamp."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.requant import ort_multiplier, requant_float, requant_float_ref


def f32(v: float) -> float:
    """Round a Python float (double) to the nearest float32."""
    return struct.unpack("f", struct.pack("f", v))[0]


def formula(acc: int, m: float, zp: int, lo: int, hi: int) -> int:
    v = f32(f32(float(acc)) * m)   # each float op rounded to float32 (double product is exact)
    r = round(v)                   # Python rounds half to even
    return max(lo, min(hi, r + zp))


OUT_TYPES = [(np.int8, -128, 127), (np.uint8, 0, 255), (np.int16, -2**15, 2**15 - 1),
             (np.int32, -2**31, 2**31 - 1)]


@st.composite
def requant_case(draw):
    p, c, q = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 7))
    acc_dtype = draw(st.sampled_from([np.int32, np.int64]))
    lim = 2**31 if acc_dtype == np.int32 else 2**40
    one = st.sampled_from([-lim, lim - 1, 0, 2**24 + 1, -(2**24 + 3)]) | st.integers(-lim, lim - 1)
    acc = np.array(draw(st.lists(one, min_size=p * c * q, max_size=p * c * q)), acc_dtype).reshape(p, c, q)
    mult = np.array(draw(st.lists(st.floats(2.0**-30, 8.0, width=32), min_size=c, max_size=c)), np.float32)
    out_dtype, tlo, thi = draw(st.sampled_from(OUT_TYPES))
    zp = draw(st.sampled_from([tlo, thi]) | st.integers(tlo, thi))
    lo = draw(st.sampled_from([tlo, zp]) | st.integers(tlo, thi))
    hi = draw(st.sampled_from([thi]) | st.integers(lo, thi))
    return acc, mult, zp, lo, hi, out_dtype


@settings(max_examples=150, deadline=None)
@given(requant_case())
def test_requant_matches_twin_and_formula(case):
    acc, mult, zp, lo, hi, out_dtype = case
    out = np.empty(acc.shape, out_dtype)
    ref = np.empty_like(out)
    requant_float(acc, mult, zp, lo, hi, out)
    requant_float_ref(acc, mult, zp, lo, hi, ref)
    want = [[[formula(int(a), float(mult[c]), zp, lo, hi) for a in row] for c, row in enumerate(plane)]
            for plane in acc]
    assert out.tolist() == want
    assert np.array_equal(out, ref)


def test_ties_round_to_even_and_large_accumulators_round_through_float32():
    acc = np.array([5, 7, -5, -7, 1, -1, 2**24 + 1, 2**25 + 3, -(2**25 + 3)], np.int64).reshape(1, 1, -1)
    out = np.empty(acc.shape, np.int64)
    requant_float(acc, np.array([0.5], np.float32), 0, -2**40, 2**40, out)
    # 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4, 0.5 -> 0, -0.5 -> -0;
    # f32(2**24+1) == 2**24, f32(2**25+3) == 2**25+4
    assert out.ravel().tolist() == [2, 4, -2, -4, 0, 0, 2**23, 2**24 + 2, -(2**24 + 2)]


def _float64_disagreements(n=200_000, seed=0):
    """(acc, m) pairs where rounding f32(acc)*m in float64 gives another integer than float32."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-2**20, 2**20, n)
    m = (rng.integers(1, 2**23, n) / 2.0**23 + 0.5).astype(np.float32)   # m in [0.5, 1.5)
    r32 = np.rint(acc.astype(np.float32) * m)
    r64 = np.rint(acc.astype(np.float32).astype(np.float64) * m.astype(np.float64))
    bad = np.nonzero(r32 != r64)[0]
    return acc[bad], m[bad]


def test_product_is_float32_not_float64():
    accs, ms = _float64_disagreements()
    assert accs.size >= 5, "the search must find values where float64 would round differently"
    for a, m in zip(accs[:20], ms[:20]):
        out = np.empty((1, 1, 1), np.int64)
        requant_float(np.array([[[a]]], np.int64), np.array([m], np.float32), 0, -2**40, 2**40, out)
        assert out[0, 0, 0] == formula(int(a), float(m), 0, -2**40, 2**40)
        assert out[0, 0, 0] != round(float(np.float32(a)) * float(m))   # the float64 answer


def test_clamps_at_both_bounds_and_fused_relu():
    acc = np.array([-10**9, -1, 0, 1, 10**9], np.int32).reshape(1, 1, 5)
    out = np.empty(acc.shape, np.uint8)
    requant_float(acc, np.array([1.0], np.float32), 10, 10, 255, out)   # ReLU: lo == zp
    assert out.ravel().tolist() == [10, 10, 10, 11, 255]
    requant_float(acc, np.array([1.0], np.float32), 10, 12, 200, out)   # Clip above zp
    assert out.ravel().tolist() == [12, 12, 12, 12, 200]


def test_int32_output_bounds_are_exact():
    """f32(2**31 - 1) == 2**31: a float clamp would store 2**31 and wrap; ours clamps the int."""
    acc = np.array([2**31 - 1, -2**31, 2**31 - 1], np.int64).reshape(1, 3, 1)
    out = np.empty(acc.shape, np.int32)
    requant_float(acc, np.array([1.0, 1.0, 1e30], np.float32), 0, -2**31, 2**31 - 1, out)
    assert out.ravel().tolist() == [2**31 - 1, -2**31, 2**31 - 1]


def test_multiplier_is_formed_in_float32():
    a, b, o = np.float32(0.1), np.float32(0.3), np.float32(0.7)
    want = f32(f32(float(a) * float(b)) / float(o))
    assert float(ort_multiplier(a, b, o)) == want
    per_channel = ort_multiplier(a, np.array([b, np.float32(0.2)], np.float32), o)
    assert per_channel.dtype == np.float32
    assert per_channel.tolist() == [want, f32(f32(float(a) * f32(0.2)) / float(o))]


def test_multiplier_differs_from_float64_somewhere():
    """The float32 steps matter: some scale triples give another multiplier in float64."""
    rng = np.random.default_rng(5)
    s = rng.uniform(1e-4, 1e-1, (3, 2000)).astype(np.float32)
    m32 = ort_multiplier(s[0], s[1], s[2])
    m64 = (s[0].astype(np.float64) * s[1] / s[2]).astype(np.float32)
    assert (m32 != m64).any()
    i = int(np.nonzero(m32 != m64)[0][0])
    assert float(m32[i]) == f32(f32(float(s[0, i]) * float(s[1, i])) / float(s[2, i]))


ACC = np.zeros((1, 2, 3), np.int32)
M2 = np.ones(2, np.float32)


@pytest.mark.parametrize("acc, mult, zp, lo, hi, out, word", [
    (ACC, np.ones(2, np.float64), 0, -128, 127, np.empty((1, 2, 3), np.int8), "mult"),
    (ACC, np.ones(3, np.float32), 0, -128, 127, np.empty((1, 2, 3), np.int8), "mult"),
    (ACC, np.array([1, np.inf], np.float32), 0, -128, 127, np.empty((1, 2, 3), np.int8), "non-finite"),
    (ACC, np.array([1, np.nan], np.float32), 0, -128, 127, np.empty((1, 2, 3), np.int8), "non-finite"),
    (ACC.astype(np.int16), M2, 0, -128, 127, np.empty((1, 2, 3), np.int8), "acc"),
    (ACC[0], M2, 0, -128, 127, np.empty((2, 3), np.int8), "acc"),
    (ACC, M2, 0, -128, 127, np.empty((1, 2, 4), np.int8), "out"),
    (ACC, M2, 0, -128, 127, np.empty((1, 2, 3), np.float32), "out"),
    (ACC, M2, 0, 5, 4, np.empty((1, 2, 3), np.int8), "lo"),
    (ACC, M2, 0, 0, 256, np.empty((1, 2, 3), np.uint8), "lo"),
    (ACC, M2, 0.5, 0, 255, np.empty((1, 2, 3), np.uint8), "zp"),
])
def test_bad_input_raises_value_error(acc, mult, zp, lo, hi, out, word):
    with pytest.raises(ValueError, match=word):
        requant_float(acc, mult, zp, lo, hi, out)
