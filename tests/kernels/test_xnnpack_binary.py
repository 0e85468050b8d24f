"""kernels.xnnpack_binary: the Numba kernels against their NumPy int64 twins, and both against
XNNPACK's qs8 ADD / SUB / MUL written here with exact rationals (fractions.Fraction) from the
rules in the module docstring (multiplier = the f32 ratio times 2**shift rounded half to even,
the sum floored after adding 2**(shift-1); MUL's f32 product rounded half to even)."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import xnnpack_binary as xb

from .strategies import int_array, zero_point

F32 = np.float32
SETTINGS = settings(max_examples=200, deadline=None)
scales = st.floats(2.0 ** -13, 0.5, width=32)
dtypes = st.sampled_from([np.int8, np.uint8])
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


def add_formula(a, b, sa, za, sb, zb, sy, zy, lo, hi, subtract=False):
    """Per element, Python ints: ratios r = f32(+-s / sy), shift = 20 - floor(log2(max |r|)),
    m = round_half_even(r * 2**shift), y = floor((2**(shift-1) + ma(a-za) + mb(b-zb)) / 2**shift) + zy."""
    ra = Fraction(float(F32(sa) / F32(sy)))
    rb = Fraction(float(F32(sb) / F32(sy))) * (-1 if subtract else 1)
    top = max(abs(ra), abs(rb))
    e = math.floor(math.log2(top))
    e = e - 1 if Fraction(2) ** e > top else (e + 1 if Fraction(2) ** (e + 1) <= top else e)
    shift = 20 - e
    ma, mb = round(ra * 2 ** shift), round(rb * 2 ** shift)      # Fraction.__round__: half to even
    out = [min(max(math.floor(Fraction((1 << (shift - 1)) + ma * (x - za) + mb * (y - zb), 1 << shift)) + zy, lo), hi)
           for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist())]
    return np.array(out, np.int64).reshape(a.shape)


def mul_formula(a, b, sa, za, sb, zb, sy, zy, lo, hi):
    """y = round_half_even(f32(p * r)) + zy with r = f32(f32(sa*sb)/sy); the f32 rounding of the
    exact product p * r (< 2**41 significant bits: exact in float64) done by float64 -> float32."""
    r = F32(F32(F32(sa) * F32(sb)) / F32(sy))
    out = []
    for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()):
        v = Fraction(float(F32(float((x - za) * (y - zb)) * float(r))))
        out.append(min(max(round(v) + zy, lo), hi))
    return np.array(out, np.int64).reshape(a.shape)


def _in_range(lo_hi, *ratios):
    return all(lo_hi[0] <= abs(float(r)) < lo_hi[1] for r in ratios)


@st.composite
def operands(draw):
    dtype, shape = draw(dtypes), draw(shapes)
    a, b = draw(int_array(shape, dtype)), draw(int_array(shape, dtype))
    info = np.iinfo(dtype)
    lo = draw(st.sampled_from([int(info.min), int(info.min) + 3]))
    hi = draw(st.sampled_from([int(info.max), int(info.max) - 5]))
    zps = [draw(zero_point(dtype)) for _ in range(3)]
    return a, b, zps, lo, hi


@SETTINGS
@given(ops=operands(), sa=scales, sb=scales, sy=scales, subtract=st.booleans())
def test_add_kernel_twin_and_formula(ops, sa, sb, sy, subtract):
    a, b, (za, zb, zy), lo, hi = ops
    ra, rb = xb.add_ratios(sa, sb, sy, subtract)
    if not _in_range(xb.ADD_RATIO_RANGE, ra, rb):
        with pytest.raises(ValueError, match="xnnpack add: input-to-output scale ratio"):
            xb.add_params(sa, za, sb, zb, sy, subtract)
        return
    params = xb.add_params(sa, za, sb, zb, sy, subtract)
    fast, ref = np.empty(a.shape, a.dtype), np.empty(a.shape, a.dtype)
    xb.xnn_add(a, b, params, zy, lo, hi, fast)
    xb.xnn_add_ref(a, b, params, zy, lo, hi, ref)
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(ref.astype(np.int64), add_formula(a, b, sa, za, sb, zb, sy, zy, lo, hi, subtract))


@SETTINGS
@given(ops=operands(), sa=scales, sb=scales, sy=scales)
def test_mul_kernel_twin_and_formula(ops, sa, sb, sy):
    a, b, (za, zb, zy), lo, hi = ops
    r = F32(F32(F32(sa) * F32(sb)) / F32(sy))
    if not _in_range(xb.MUL_RATIO_RANGE, r):
        with pytest.raises(ValueError, match="xnnpack mul: product-to-output scale ratio"):
            xb.mul_scale(sa, sb, sy)
        return
    r = xb.mul_scale(sa, sb, sy)
    fast, ref = np.empty(a.shape, a.dtype), np.empty(a.shape, a.dtype)
    xb.xnn_mul(a, b, za, zb, r, zy, lo, hi, fast)
    xb.xnn_mul_ref(a, b, za, zb, r, zy, lo, hi, ref)
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(ref.astype(np.int64), mul_formula(a, b, sa, za, sb, zb, sy, zy, lo, hi))


@pytest.mark.parametrize("za,zb,zy", [(0, 0, 0), (-128, 127, -128), (127, -128, 127), (3, -5, 1)])
@pytest.mark.parametrize("sa,sb,sy", [(0.5, 2.0 ** -8, 2.0 ** -7),        # issue 18: ratios 64 and 1/2
                                      (2.0 ** -13, 2.0 ** -3, 2.0 ** -3),  # ratio 2**-10 exactly (taken)
                                      (0.3, 0.3, 0.3 / 255.9)])           # ratios just below 2**8
def test_add_every_code_pair(sa, sb, sy, za, zb, zy):
    """All 65536 int8 code pairs, ties included, ADD and SUB, kernel = twin = formula."""
    codes = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    for subtract in (False, True):
        params = xb.add_params(sa, za, sb, zb, sy, subtract)
        fast, ref = np.empty(a.shape, np.int8), np.empty(a.shape, np.int8)
        xb.xnn_add(a, b, params, zy, -128, 127, fast)
        xb.xnn_add_ref(a, b, params, zy, -128, 127, ref)
        np.testing.assert_array_equal(fast, ref)
        np.testing.assert_array_equal(ref.astype(np.int64), add_formula(a, b, sa, za, sb, zb, sy, zy, -128, 127, subtract))


@pytest.mark.parametrize("za,zb,zy", [(0, 0, 1), (-128, 127, -127), (5, -3, 0)])
@pytest.mark.parametrize("sa,sb,sy", [(0.5, 0.5, 0.5), (2.0 ** -13, 2.0 ** -3, 2.0 ** 0), (0.25, 0.5, 2.0 ** -9)])
def test_mul_every_code_pair(sa, sb, sy, za, zb, zy):
    """All 65536 int8 code pairs (ties at odd zy: zy is added after the rounding)."""
    codes = np.arange(-128, 128, dtype=np.int8)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    r = xb.mul_scale(sa, sb, sy)
    fast, ref = np.empty(a.shape, np.int8), np.empty(a.shape, np.int8)
    xb.xnn_mul(a, b, za, zb, r, zy, -128, 127, fast)
    xb.xnn_mul_ref(a, b, za, zb, r, zy, -128, 127, ref)
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(ref.astype(np.int64), mul_formula(a, b, sa, za, sb, zb, sy, zy, -128, 127))


def test_delegate_ranges_are_half_open():
    """2**8 is refused, 2**-10 (ADD) and 2**-16 (MUL) are taken, as the delegate's checks."""
    with pytest.raises(ValueError, match="outside"):
        xb.add_params(2.0 ** -5, 0, 2.0 ** -13, 0, 2.0 ** -13)           # sa / sy == 256
    with pytest.raises(ValueError, match="outside"):
        xb.add_params(2.0 ** -14, 0, 2.0 ** -3, 0, 2.0 ** -3)            # 2**-11
    assert xb.add_params(2.0 ** -13, 0, 2.0 ** -3, 0, 2.0 ** -3)[2] == 20
    with pytest.raises(ValueError, match="outside"):
        xb.mul_scale(2.0 ** -1, 2.0 ** -1, 2.0 ** -10)                   # 256
    with pytest.raises(ValueError, match="outside"):
        xb.mul_scale(2.0 ** -9, 2.0 ** -8, 1.0)                          # 2**-17
    assert xb.mul_scale(2.0 ** -8, 2.0 ** -8, 1.0) == F32(2.0 ** -16)


def test_shapes_must_match():
    a, b, out = np.zeros(3, np.int8), np.zeros(4, np.int8), np.zeros(3, np.int8)
    with pytest.raises(ValueError, match="xnn_add: a"):
        xb.xnn_add(a, b, (1, 1, 12, 0), 0, -128, 127, out)
    with pytest.raises(ValueError, match="xnn_mul: a"):
        xb.xnn_mul_ref(a, b, 0, 0, F32(1), 0, -128, 127, out)
