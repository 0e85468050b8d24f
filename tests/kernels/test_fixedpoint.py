"""kernels.fixedpoint: Numba kernels against their twins, and both against the arithmetic of
DESIGN §3 written here with exact rationals (fractions.Fraction), not with bit tricks."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import fixedpoint as fp

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
EDGE_ACC = [I32_MIN, I32_MIN + 1, -(1 << 30), -7, -5, -3, -1, 0, 1, 3, 5, 7, 1 << 30, I32_MAX - 1, I32_MAX]
EDGE_M0 = [0, 1, 1 << 30, (1 << 30) + 1, I32_MAX - 1, I32_MAX]

int32s = st.one_of(st.sampled_from(EDGE_ACC), st.integers(I32_MIN, I32_MAX), st.integers(-300, 300))
m0s = st.one_of(st.sampled_from(EDGE_M0), st.integers(1 << 30, I32_MAX), st.integers(0, I32_MAX))
shifts = st.integers(-31, 30)
modes = st.sampled_from(["double", "single", "cmsis"])
roundings = st.sampled_from(["floor", "rhu", "rne", "rhaz", "trunc"])


# ----------------------------------------------------------------------------- the formulas

def wrap32(x: int) -> int:
    return (x + (1 << 31)) % (1 << 32) - (1 << 31)


def round_q(x: Fraction, mode: str) -> int:
    """Round an exact rational: floor, RHU, RNE, RHAZ, toward zero."""
    if mode == "floor":
        return math.floor(x)
    if mode == "rhu":
        return math.floor(x + Fraction(1, 2))
    if mode == "rne":
        return round(x)                      # Fraction.__round__ breaks ties to even
    if mode == "rhaz":
        return (1 if x >= 0 else -1) * math.floor(abs(x) + Fraction(1, 2))
    return int(x)                            # trunc


def srdhm_formula(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    return round_q(Fraction(a * b, 1 << 31), "rhu")


def mbqm_formula(x: int, m0: int, shift: int, mode: str) -> int:
    if mode == "single":
        return wrap32(round_q(Fraction(x * m0, 1 << (31 - shift)), "rhu"))
    xs = wrap32(x << max(shift, 0))
    if mode == "double":
        hi = srdhm_formula(xs, m0)
    else:
        hi = wrap32(round_q(Fraction(xs * m0, 1 << 31), "rhu"))
    return round_q(Fraction(hi, 1 << max(-shift, 0)), "rhaz")


def quantize_formula(real: float, cap: bool):
    """(m0, shift) with 2**(shift-1) <= real < 2**shift and m0 = RHAZ(real * 2**(31-shift))."""
    if real == 0:
        return 0, 0
    r = Fraction(real)
    shift = 0
    while r >= Fraction(2) ** shift:
        shift += 1
    while r < Fraction(2) ** (shift - 1):
        shift -= 1
    m = round_q(r * Fraction(2) ** (31 - shift), "rhaz")
    if m == 1 << 31:
        m, shift = 1 << 30, shift + 1
    if shift < -31:
        return 0, 0
    if cap and shift > 30:
        return I32_MAX, 30
    return m, shift


# ----------------------------------------------------------------------------- goldens (C++ semantics)

def test_srdhm_goldens():
    assert fp.srdhm(-5, 1 << 30) == -2      # C++ `/` truncates; `>> 31` would give -3
    assert fp.srdhm(5, 1 << 30) == 3
    assert fp.srdhm(-7, 1 << 30) == -3
    assert fp.srdhm(I32_MIN, I32_MIN) == I32_MAX
    assert fp.srdhm(I32_MIN, I32_MAX) == -I32_MAX        # round(-(2**31-1)) exactly
    assert fp.srdhm_ref(-5, 1 << 30) == -2 and fp.srdhm_ref(I32_MIN, I32_MIN) == I32_MAX


def test_rounding_divide_by_pot_goldens():
    x = np.array([5, -5, 6, -6, 7, -7, I32_MIN, I32_MAX, -1, 1])
    e = np.array([1, 1, 2, 2, 1, 1, 31, 31, 31, 0])
    # 2.5 -> 3, -2.5 -> -3, 1.5 -> 2, -1.5 -> -2, 3.5 -> 4, -3.5 -> -4, -1, 1.0 -> 1, -0 -> 0, 1
    want = [3, -3, 2, -2, 4, -4, -1, 1, 0, 1]
    assert fp.rounding_divide_by_pot(x, e).tolist() == want
    assert fp.rounding_divide_by_pot_ref(x, e).tolist() == want


def test_mode_goldens():
    # real multiplier 0.25 (m0 = 2**30, shift = -1), acc = 1: exact 0.25.
    # double: srdhm -> RHU(0.5) = 1, then RHAZ(1/2) = 1;  single: RHU(0.25) = 0.
    assert fp.multiply_by_quantized_multiplier(1, 1 << 30, -1, "double") == 1
    assert fp.multiply_by_quantized_multiplier(1, 1 << 30, -1, "single") == 0
    # INT32_MIN * INT32_MIN: gemmlowp saturates to INT32_MAX, CMSIS-NN's no_sat wraps 2**31.
    assert fp.multiply_by_quantized_multiplier(I32_MIN, I32_MIN, 0, "double") == I32_MAX
    assert fp.multiply_by_quantized_multiplier(I32_MIN, I32_MIN, 0, "cmsis") == I32_MIN
    # left shift wraps in int32 before the multiply: 2**30 << 1 == INT32_MIN
    assert fp.multiply_by_quantized_multiplier(1 << 30, 1 << 30, 1, "double") == -(1 << 30)


def test_quantize_multiplier_goldens():
    real = np.array([0.0, 0.5, 1.0, 0.75, 2.0 ** -31, 2.0 ** -32, 2.0 ** -33, 1 - 2.0 ** -33, 3.0])
    m, s = fp.quantize_multiplier(real)
    # 1 - 2**-33: frac * 2**31 = 2**31 - 1/4 rounds to 2**31 and renormalizes to (2**30, 1)
    assert m.tolist() == [0, 1 << 30, 1 << 30, 3 << 29, 1 << 30, 1 << 30, 0, 1 << 30, 3 << 29]
    assert s.tolist() == [0, 0, 1, 0, -30, -31, 0, 1, 2]
    m, s = fp.quantize_multiplier(np.array([2.0 ** 30, 2.0 ** 29]), single_rounding=True)
    assert m.tolist() == [I32_MAX, 1 << 30] and s.tolist() == [30, 30]


# ----------------------------------------------------------------------------- properties

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=20))
def test_srdhm_matches_formula(pairs):
    a = np.array([p[0] for p in pairs], np.int64)
    b = np.array([p[1] for p in pairs], np.int64)
    want = [srdhm_formula(x, y) for x, y in pairs]
    assert np.atleast_1d(fp.srdhm(a, b)).tolist() == want
    assert np.atleast_1d(fp.srdhm_ref(a, b)).tolist() == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=20))
def test_rounding_divide_by_pot_matches_formula(pairs):
    x = np.array([p[0] for p in pairs], np.int64)
    e = np.array([p[1] for p in pairs], np.int64)
    want = [round_q(Fraction(v, 1 << k), "rhaz") for v, k in pairs]
    assert np.atleast_1d(fp.rounding_divide_by_pot(x, e)).tolist() == want
    assert np.atleast_1d(fp.rounding_divide_by_pot_ref(x, e)).tolist() == want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(int32s, m0s, shifts), min_size=1, max_size=12), modes)
def test_multiply_by_quantized_multiplier_matches_formula(triples, mode):
    x, m, s = (np.array(c, np.int64) for c in zip(*triples))
    want = [mbqm_formula(a, b, c, mode) for a, b, c in triples]
    assert np.atleast_1d(fp.multiply_by_quantized_multiplier(x, m, s, mode)).tolist() == want
    assert np.atleast_1d(fp.multiply_by_quantized_multiplier_ref(x, m, s, mode)).tolist() == want


reals = st.one_of(
    st.sampled_from([0.0, 2.0 ** -31, 2.0 ** -32, 2.0 ** -31 * (1 - 2.0 ** -40), 1 - 2.0 ** -33,
                     1 - 2.0 ** -32, 0.5, 2.0 ** 30, 2.0 ** 31 - 1, 3.0 * 2 ** 40]),
    st.floats(1e-12, 1e3, allow_nan=False), st.floats(2.0 ** -33, 2.0 ** -30))


@settings(max_examples=200, deadline=None)
@given(st.lists(reals, min_size=1, max_size=10), st.booleans())
def test_quantize_multiplier_matches_formula(rs, cap):
    want = [quantize_formula(r, cap) for r in rs]
    for impl in (fp.quantize_multiplier, fp.quantize_multiplier_ref):
        m, s = impl(np.array(rs), single_rounding=cap)
        assert list(zip(m.tolist(), s.tolist())) == want


def acc_arrays(draw, dtype):
    p, c, q = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    vals = draw(st.lists(st.one_of(st.sampled_from(EDGE_ACC), st.integers(I32_MIN, I32_MAX),
                                   st.integers(-2000, 2000)),
                         min_size=p * c * q, max_size=p * c * q))
    return np.array(vals, np.int64).reshape(p, c, q).astype(dtype)


out_types = st.sampled_from([(np.int8, -128, 127), (np.uint8, 0, 255), (np.int16, -32768, 32767),
                             (np.int32, I32_MIN, I32_MAX)])


@st.composite
def fixedpoint_cases(draw):
    acc = acc_arrays(draw, draw(st.sampled_from([np.int32, np.int64])))
    c = acc.shape[1]
    m0 = np.array(draw(st.lists(m0s, min_size=c, max_size=c)), np.int64)
    sh = np.array(draw(st.lists(shifts, min_size=c, max_size=c)), np.int64)
    dtype, qmin, qmax = draw(out_types)
    lo = draw(st.sampled_from([qmin, qmin + 1, max(qmin, 0)]))
    hi = draw(st.sampled_from([qmax, qmax - 1, min(qmax, 6)]))
    zp = draw(st.sampled_from([lo, hi, (lo + hi) // 2]))
    return acc, m0, sh, int(zp), int(lo), int(hi), np.dtype(dtype)


@settings(max_examples=150, deadline=None)
@given(fixedpoint_cases(), modes)
def test_requant_fixedpoint_matches_ref_and_formula(case, mode):
    acc, m0, sh, zp, lo, hi, dtype = case
    out, out_ref = np.empty(acc.shape, dtype), np.empty(acc.shape, dtype)
    fp.requant_fixedpoint(acc, m0, sh, zp, lo, hi, mode, out)
    fp.requant_fixedpoint_ref(acc, m0, sh, zp, lo, hi, mode, out_ref)
    want = np.empty(acc.shape, np.int64)
    for (p, c, q), v in np.ndenumerate(acc):
        y = wrap32(mbqm_formula(wrap32(int(v)), int(m0[c]), int(sh[c]), mode) + zp)
        want[p, c, q] = min(max(y, lo), hi)
    assert np.array_equal(out.astype(np.int64), want)
    assert np.array_equal(out_ref.astype(np.int64), want)


@st.composite
def shift_cases(draw):
    acc = acc_arrays(draw, draw(st.sampled_from([np.int32, np.int64])))
    c = acc.shape[1]
    n = np.array(draw(st.lists(st.one_of(st.integers(-31, 62), st.sampled_from([-1, 0, 1, 2, 31])),
                               min_size=c, max_size=c)), np.int64)
    amax = int(np.abs(acc.astype(np.int64)).max())
    n = np.array([0 if k < 0 and amax << -k >= 1 << 62 else k for k in n.tolist()], np.int64)  # int64 range
    dtype, qmin, qmax = draw(out_types)
    zp = draw(st.sampled_from([qmin, qmax, (qmin + qmax) // 2]))
    return acc, n, int(zp), int(qmin), int(qmax), np.dtype(dtype)


@settings(max_examples=150, deadline=None)
@given(shift_cases(), roundings)
def test_requant_shift_matches_ref_and_formula(case, rounding):
    acc, n, zp, lo, hi, dtype = case
    out, out_ref = np.empty(acc.shape, dtype), np.empty(acc.shape, dtype)
    fp.requant_shift(acc, n, rounding, zp, lo, hi, out)
    fp.requant_shift_ref(acc, n, rounding, zp, lo, hi, out_ref)
    want = np.empty(acc.shape, np.int64)
    for (p, c, q), v in np.ndenumerate(acc):
        want[p, c, q] = min(max(round_q(Fraction(int(v)) / Fraction(2) ** int(n[c]), rounding) + zp, lo), hi)
    assert np.array_equal(out.astype(np.int64), want)
    assert np.array_equal(out_ref.astype(np.int64), want)


@settings(max_examples=80, deadline=None)
@given(shift_cases(), roundings, st.integers(0, (1 << 15) - 1))
def test_requant_multiply_shift_matches_ref_and_formula(case, rounding, m):
    acc, n, zp, lo, hi, dtype = case
    acc = np.clip(acc.astype(np.int64), I32_MIN, I32_MAX)
    n = np.maximum(n, 0)
    mult = np.full(acc.shape[1], m, np.int64)
    out, out_ref = np.empty(acc.shape, dtype), np.empty(acc.shape, dtype)
    fp.requant_multiply_shift(acc, mult, n, rounding, zp, lo, hi, out)
    fp.requant_multiply_shift_ref(acc, mult, n, rounding, zp, lo, hi, out_ref)
    want = np.empty(acc.shape, np.int64)
    for (p, c, q), v in np.ndenumerate(acc):
        want[p, c, q] = min(max(round_q(Fraction(int(v) * m, 1 << int(n[c])), rounding) + zp, lo), hi)
    assert np.array_equal(out.astype(np.int64), want)
    assert np.array_equal(out_ref.astype(np.int64), want)


def test_pow2_rounding_ties():
    acc = np.array([6, -6, 2, -2, 10, -10], np.int32).reshape(1, 1, 6)      # / 4: +-1.5, +-0.5, +-2.5
    want = {"floor": [1, -2, 0, -1, 2, -3], "rhu": [2, -1, 1, 0, 3, -2],
            "rne": [2, -2, 0, 0, 2, -2], "rhaz": [2, -2, 1, -1, 3, -3], "trunc": [1, -1, 0, 0, 2, -2]}
    for mode, vals in want.items():
        for impl in (fp.requant_shift, fp.requant_shift_ref):
            out = np.empty(acc.shape, np.int8)
            impl(acc, [2], mode, 0, -128, 127, out)
            assert out.ravel().tolist() == vals, (mode, impl.__name__)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call", [
    lambda: fp.srdhm(1 << 31, 1),
    lambda: fp.srdhm(1.5, 1),
    lambda: fp.rounding_divide_by_pot(1, 32),
    lambda: fp.multiply_by_quantized_multiplier(1, 1, 31),
    lambda: fp.multiply_by_quantized_multiplier(1, 1, 0, "triple"),
    lambda: fp.quantize_multiplier(np.array([-1.0])),
    lambda: fp.quantize_multiplier(np.array([np.nan])),
    lambda: fp.requant_fixedpoint(np.zeros((1, 2, 1), np.int32), [1, 1], [0], 0, -128, 127, "double",
                                  np.zeros((1, 2, 1), np.int8)),
    lambda: fp.requant_fixedpoint(np.zeros((2, 2), np.int32), [1, 1], [0, 0], 0, -128, 127, "double",
                                  np.zeros((2, 2), np.int8)),
    lambda: fp.requant_fixedpoint(np.zeros((1, 1, 1), np.float32), [1], [0], 0, -128, 127, "double",
                                  np.zeros((1, 1, 1), np.int8)),
    lambda: fp.requant_fixedpoint(np.zeros((1, 1, 1), np.int32), [1], [0], 0, -128, 300, "double",
                                  np.zeros((1, 1, 1), np.int8)),
    lambda: fp.requant_shift(np.zeros((1, 1, 1), np.int32), [63], "rhu", 0, -128, 127, np.zeros((1, 1, 1), np.int8)),
    lambda: fp.requant_shift(np.zeros((1, 1, 1), np.int32), [0], "up", 0, -128, 127, np.zeros((1, 1, 1), np.int8)),
    lambda: fp.requant_shift(np.full((1, 1, 1), 1 << 40, np.int64), [-31], "rhu", 0, -128, 127,
                             np.zeros((1, 1, 1), np.int8)),
])
def test_bad_input_raises_value_error(call):
    with pytest.raises(ValueError):
        call()
