"""kernels/window.py (integer pools of the non-onnxruntime targets) and kernels.fixedpoint's
TFLite ADD against their twins: hypothesis-drawn shapes, values, zero points at the ends."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels import fixedpoint as fk
from kernels import window as wk


@st.composite
def pools(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pads = [draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw)]
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    info = np.iinfo(dtype)
    x = np.asarray(draw(st.lists(st.sampled_from([info.min, info.max, 0, 1, -1 if info.min else 2]) |
                                 st.integers(info.min, info.max), min_size=n * c * h * w, max_size=n * c * h * w)),
                   dtype).reshape(n, c, h, w)
    zp = draw(st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(info.min, info.max))
    oh, ow = (h + pads[0] + pads[2] - kh) // sh + 1, (w + pads[1] + pads[3] - kw) // sw + 1
    return x, zp, (kh, kw), (sh, sw), pads, (max(oh, 0), max(ow, 0)), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(pools())
def test_window_sums_equal_reference(case):
    x, zp, k, s, pads, out_hw, include = case
    got = wk.window_sums(x, zp, k, s, pads, out_hw, include)
    want = wk.window_sums_ref(x, zp, k, s, pads, out_hw, include)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=40), st.integers(1, 1 << 20),
       st.sampled_from(wk.ROUNDINGS))
def test_divide_round_equals_exact_rationals(nums, den, rounding):
    nums = np.array(nums + [den // 2, -(den // 2), den + den // 2, -den - den // 2, 0], np.int64)
    assert np.array_equal(wk.divide_round(nums, den, rounding), wk.divide_round_ref(nums, den, rounding))


def test_divide_round_ties_by_hand():
    nums = np.array([5, -5, 7, -7, 4, -4], np.int64)   # / 2: 2.5 -2.5 3.5 -3.5 2 -2
    assert wk.divide_round(nums, 2, "rne").tolist() == [2, -2, 4, -4, 2, -2]
    assert wk.divide_round(nums, 2, "rhu").tolist() == [3, -2, 4, -3, 2, -2]
    assert wk.divide_round(nums, 2, "rhaz").tolist() == [3, -3, 4, -4, 2, -2]
    assert wk.divide_round(nums, 2, "floor").tolist() == [2, -3, 3, -4, 2, -2]
    assert wk.divide_round(nums, 2, "trunc").tolist() == [2, -2, 3, -3, 2, -2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=30), st.integers(1, 300))
def test_divide_rhaz_trunc_is_cs_rounded_average(nums, den):
    got = wk.divide_rhaz_trunc(np.array(nums, np.int64), den).tolist()
    want = [math.trunc(Fraction(v + den // 2, den)) if v > 0 else math.trunc(Fraction(v - den // 2, den)) for v in nums]
    assert got == want


@st.composite
def adds(draw):
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    info = np.iinfo(dtype)
    size = draw(st.integers(1, 40))
    vals = st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(info.min, info.max)
    a = np.array(draw(st.lists(vals, min_size=size, max_size=size)), dtype)
    b = np.array(draw(st.lists(vals, min_size=size, max_size=size)), dtype)
    sa, sb = (draw(st.floats(1e-4, 4.0)) for _ in range(2))
    sy = draw(st.floats(max(sa, sb) / 64, 8.0))
    za, zb, zy = (draw(vals) for _ in range(3))
    return a, b, sa, sb, sy, za, zb, zy, info, draw(st.sampled_from(["double", "single", "cmsis"]))


@settings(max_examples=200, deadline=None)
@given(adds())
def test_tflite_add_equals_reference(case):
    a, b, sa, sb, sy, za, zb, zy, info, mode = case
    m, s = fk.tflite_add_params(sa, sb, sy, 20, single_rounding=mode == "single")
    got, want = np.empty(a.shape, a.dtype), np.empty(a.shape, a.dtype)
    fk.tflite_add(a, b, za, zb, m, s, 20, mode, zy, int(info.min), int(info.max), got)
    fk.tflite_add_ref(a, b, za, zb, m, s, 20, mode, zy, int(info.min), int(info.max), want)
    assert np.array_equal(got, want)
