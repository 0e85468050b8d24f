"""kernels.fixedpoint mode "builtin" (TFLite's optimized CPU kernels: q31 high multiply, then a
round-half-up shift): Numba kernels and twins against the rule written with exact rationals."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels import fixedpoint as fp

from .test_fixedpoint import I32_MAX, I32_MIN, int32s, m0s, shifts, wrap32


def rhu(v: Fraction) -> int:
    return math.floor(v + Fraction(1, 2))


def builtin_formula(x: int, m0: int, shift: int) -> int:
    xs = wrap32(x * (1 << max(shift, 0)))
    hi = I32_MAX if xs == m0 == I32_MIN else wrap32(rhu(Fraction(xs * m0, 1 << 31)))
    return rhu(Fraction(hi, 1 << max(-shift, 0)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(int32s, m0s, shifts), min_size=1, max_size=12))
def test_builtin_mode_matches_formula(triples):
    x, m, s = (np.array(v, np.int64) for v in zip(*triples))
    want = [builtin_formula(a, b, c) for a, b, c in triples]
    assert np.atleast_1d(fp.multiply_by_quantized_multiplier(x, m, s, "builtin")).tolist() == want
    assert np.atleast_1d(fp.multiply_by_quantized_multiplier_ref(x, m, s, "builtin")).tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(int32s, m0s, shifts), min_size=1, max_size=12), st.integers(-128, 127))
def test_builtin_requant_matches_twin(triples, zp):
    acc = np.array([t[0] for t in triples], np.int64).reshape(1, -1, 1)
    m0 = np.array([t[1] for t in triples], np.int64)
    sh = np.array([t[2] for t in triples], np.int64)
    out, ref = np.empty(acc.shape, np.int8), np.empty(acc.shape, np.int8)
    fp.requant_fixedpoint(acc, m0, sh, zp, -128, 127, "builtin", out)
    fp.requant_fixedpoint_ref(acc, m0, sh, zp, -128, 127, "builtin", ref)
    want = [min(127, max(-128, wrap32(builtin_formula(a, b, c) + zp))) for a, b, c in triples]
    assert out.reshape(-1).tolist() == want == ref.reshape(-1).tolist()


def test_negative_ties_round_up_unlike_double_rounding():
    # hi = -3 after the high multiply (m0 = 2**30 halves x = -6), then / 2: -1.5 -> -1 (RHU), -2 (RHAZ)
    x, m, s = np.array([-6]), np.array([1 << 30]), np.array([-1])
    assert fp.multiply_by_quantized_multiplier(x, m, s, "builtin").tolist() == [-1]
    assert fp.multiply_by_quantized_multiplier(x, m, s, "double").tolist() == [-2]
