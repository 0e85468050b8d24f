"""kernels.conv against its NumPy int64 twin: strides, dilations, asymmetric pads, groups,
depthwise, 1x1, extremes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.conv import ConvGeom, conv2d_acc, conv2d_acc_ref, conv_out_hw
from tests.kernels.strategies import DTYPES, int_array, zero_point


@st.composite
def conv_case(draw):
    group = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 4))
    mg = draw(st.integers(1, 3))
    c, m = cg * group, mg * group
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    geom = ConvGeom(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *[draw(st.integers(0, 2)) for _ in range(4)],
                    draw(st.integers(1, 2)), draw(st.integers(1, 2)), group)
    h = draw(st.integers(max(1, (kh - 1) * geom.dil_h + 1 - geom.pad_top - geom.pad_bottom), 9))
    w = draw(st.integers(max(1, (kw - 1) * geom.dil_w + 1 - geom.pad_left - geom.pad_right), 9))
    xd, wd = draw(st.sampled_from(DTYPES)), draw(st.sampled_from([np.int8, np.uint8]))
    x = draw(int_array((draw(st.integers(1, 2)), c, h, w), xd))
    wt = draw(int_array((m, cg, kh, kw), wd))
    xz = draw(zero_point(xd))
    wz = np.array([draw(zero_point(wd)) for _ in range(m)], np.int64)
    bias = np.array(draw(st.lists(st.integers(-10**6, 10**6), min_size=m, max_size=m)), np.int64)
    return x, wt, xz, wz, bias, geom


@settings(max_examples=150, deadline=None)
@given(conv_case(), st.sampled_from([np.int32, np.int64]))
def test_conv_equals_reference(case, acc_dtype):
    x, w, xz, wz, bias, geom = case
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], geom)
    got = np.empty((x.shape[0], w.shape[0], oh, ow), acc_dtype)
    want = np.empty_like(got)
    conv2d_acc(x, w, xz, wz, bias, geom, got)
    conv2d_acc_ref(x, w, xz, wz, bias, geom, want)
    assert np.array_equal(got, want)


def test_padding_contributes_zero_point():
    x = np.full((1, 1, 1, 1), 7, np.uint8)
    w = np.ones((1, 1, 3, 3), np.int8)
    geom = ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 1)
    acc = np.empty((1, 1, 1, 1), np.int64)
    conv2d_acc(x, w, 7, np.zeros(1, np.int64), np.zeros(1, np.int64), geom, acc)
    assert acc[0, 0, 0, 0] == 0  # the only real tap equals the zero point; pads add nothing


def test_rejects_kernel_larger_than_input_and_bad_groups():
    z = np.zeros(2, np.int64)
    with pytest.raises(ValueError):
        conv2d_acc(np.zeros((1, 2, 2, 2), np.int8), np.zeros((2, 2, 3, 3), np.int8), 0, z, z,
                   ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1), np.empty((1, 2, 1, 1), np.int64))
    with pytest.raises(ValueError):
        conv2d_acc(np.zeros((1, 3, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), 0, z, z,
                   ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 2), np.empty((1, 2, 4, 4), np.int64))
