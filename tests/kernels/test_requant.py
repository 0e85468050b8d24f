"""kernels.requant (onnxruntime float requant) against its NumPy twin and an independent
plain-Python formula: float32 product, round half to even, clamp, zero point."""
from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels.requant import ort_multiplier, requant_float, requant_float_ref


def f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def formula(acc: int, m: float, zp: int, lo: int, hi: int) -> int:
    v = f32(f32(float(acc)) * m)   # each float op rounded to float32
    r = round(v)                   # Python rounds half to even
    return max(lo, min(hi, r + zp))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-2**31, 2**31 - 1), min_size=1, max_size=30),
       st.floats(np.float32(1e-6).item(), 4.0, width=32), st.integers(-128, 127))
def test_requant_matches_formula(accs, m, zp):
    acc = np.array(accs, np.int64).reshape(1, 1, -1)
    out = np.empty(acc.shape, np.int8)
    ref = np.empty_like(out)
    requant_float(acc, np.array([m], np.float32), zp, -128, 127, out)
    requant_float_ref(acc, np.array([m], np.float32), zp, -128, 127, ref)
    want = [formula(a, f32(m), zp, -128, 127) for a in accs]
    assert out.reshape(-1).tolist() == want
    assert np.array_equal(out, ref)


def test_ties_round_to_even_and_large_accumulators_round_through_float32():
    acc = np.array([5, 7, -5, -7, 2**24 + 1, 2**25 + 3], np.int64).reshape(1, 1, -1)
    out = np.empty(acc.shape, np.int64)
    requant_float(acc, np.array([0.5], np.float32), 0, -2**40, 2**40, out)
    # 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4; f32(2**24+1) == 2**24, f32(2**25+3) == 2**25+4
    assert out.reshape(-1).tolist() == [2, 4, -2, -4, 2**23, 2**24 + 2]


def test_multiplier_is_formed_in_float32():
    a, b, o = np.float32(0.1), np.float32(0.3), np.float32(0.7)
    want = np.float32(np.float32(a * b) / o)
    assert ort_multiplier(a, b, o) == want
    assert ort_multiplier(a, np.array([b, b], np.float32), o).dtype == np.float32
