"""kernels.conv against its NumPy int64 twin: strides, dilations, asymmetric pads, groups,
depthwise (with channel multipliers), 1x1, extremes, int32 wrap, bad geometry."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels.conv import ConvGeom, conv2d_acc, conv2d_acc_ref, conv_out_hw
from kernels.gemm import gemm_acc_ref
from tests.kernels.strategies import DTYPES, biases, int_array, zero_point, zero_points


def geom_strategy(group, pads=st.integers(0, 2)):
    return st.builds(ConvGeom, st.integers(1, 3), st.integers(1, 3), pads, pads, pads, pads,
                     st.integers(1, 2), st.integers(1, 2), st.just(group))


@st.composite
def conv_case(draw, cg=None, kernel=None, geom=None, x_dtypes=DTYPES):
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 5)) if cg is None else cg
    mg = draw(st.integers(1, 3))
    c, m = cg * group, mg * group
    kh, kw = kernel if kernel is not None else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    geom = draw(geom_strategy(group)) if geom is None else geom._replace(group=group)
    h = draw(st.integers(max(1, (kh - 1) * geom.dil_h + 1 - geom.pad_top - geom.pad_bottom), 9))
    w = draw(st.integers(max(1, (kw - 1) * geom.dil_w + 1 - geom.pad_left - geom.pad_right), 9))
    xd, wd = draw(st.sampled_from(x_dtypes)), draw(st.sampled_from([np.int8, np.uint8]))
    x = draw(int_array((draw(st.integers(1, 2)), c, h, w), xd))
    wt = draw(int_array((m, cg, kh, kw), wd))
    return x, wt, draw(zero_point(xd)), draw(zero_points(wd, m)), draw(biases(m)), geom


def run_both(case, acc_dtype):
    x, w, geom = case[0], case[1], case[5]
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], geom)
    got = np.full((x.shape[0], w.shape[0], oh, ow), 0x5A5A5A5A, acc_dtype)
    want = np.empty_like(got)
    conv2d_acc(*case, got)
    conv2d_acc_ref(*case, want)
    return got, want


@settings(max_examples=120, deadline=None)
@given(conv_case(), st.sampled_from([np.int32, np.int64]))
def test_conv_equals_reference(case, acc_dtype):
    got, want = run_both(case, acc_dtype)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(conv_case(cg=1), st.sampled_from([np.int32, np.int64]))
def test_depthwise_equals_reference(case, acc_dtype):
    got, want = run_both(case, acc_dtype)
    assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(conv_case(kernel=(1, 1), geom=ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)), st.sampled_from([np.int32, np.int64]))
def test_pointwise_equals_reference(case, acc_dtype):
    got, want = run_both(case, acc_dtype)
    assert np.array_equal(got, want)


def test_pointwise_is_a_gemm():
    """1x1 conv == GEMM w (M, C) x x (C, H*W), computed by the independent GEMM twin."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 7, 5, 3)).astype(np.uint8)
    w = rng.integers(-128, 128, (4, 7, 1, 1)).astype(np.int8)
    wz, bias = np.array([0, -128, 127, 5], np.int64), np.array([1, 2, 3, -2**31], np.int64)
    acc = np.empty((1, 4, 5, 3), np.int64)
    conv2d_acc(x, w, 255, wz, bias, ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1), acc)
    # GEMM over (H*W, C) x (C, M): a_zp = x_zp, b_zp = w_zp per output channel
    want = np.empty((15, 4), np.int64)
    gemm_acc_ref(x[0].reshape(7, 15).T, w.reshape(4, 7).T, 255, wz, bias, want)
    assert np.array_equal(acc[0].reshape(4, 15), want.T)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([(np.int16, 32767, np.int8, 127), (np.int16, -32768, np.uint8, 0),
                        (np.uint8, 0, np.int8, -128)]), st.booleans(), st.integers(0, 2**32 - 1))
def test_long_reduction_with_extreme_zero_points(types, all_min, seed):
    """Cg*KH*KW = 20*3*3 = 180 > kblock for 16-bit inputs with zero points at the type's end."""
    xd, xz, wd, wz = types
    rng = np.random.default_rng(seed)
    x = np.full((1, 20, 5, 6), np.iinfo(xd).min if all_min else np.iinfo(xd).max, xd)
    x[0, :, ::2] = rng.integers(np.iinfo(xd).min, int(np.iinfo(xd).max) + 1, (20, 3, 6)).astype(xd)
    w = np.full((3, 20, 3, 3), np.iinfo(wd).min, wd)
    geom = ConvGeom(1, 2, 1, 0, 2, 1, 1, 1, 1)
    case = (x, w, xz, np.full(3, wz, np.int64), np.array([0, 2**31 - 1, -2**31], np.int64), geom)
    for acc_dtype in (np.int32, np.int64):
        got, want = run_both(case, acc_dtype)
        assert np.array_equal(got, want)


def test_int32_accumulator_wraps_and_int64_is_exact():
    x = np.full((1, 8192, 3, 3), 255, np.uint8)
    w = np.full((2, 8192, 3, 3), 127, np.int8)
    geom = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    z = np.zeros(2, np.int64)
    a32, a64 = np.empty((1, 2, 1, 1), np.int32), np.empty((1, 2, 1, 1), np.int64)
    conv2d_acc(x, w, 0, z, z, geom, a32)
    conv2d_acc(x, w, 0, z, z, geom, a64)
    exact = 255 * 127 * 8192 * 9
    assert 2**31 < exact < 2**32
    assert a64.ravel().tolist() == [exact, exact]
    assert a32.ravel().tolist() == [exact - 2**32] * 2


def test_padding_contributes_zero_point():
    x = np.full((1, 1, 1, 1), 7, np.uint8)
    w = np.ones((1, 1, 3, 3), np.int8)
    acc = np.empty((1, 1, 1, 1), np.int64)
    conv2d_acc(x, w, 7, np.zeros(1, np.int64), np.zeros(1, np.int64), ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 1), acc)
    assert acc[0, 0, 0, 0] == 0  # the only real tap equals the zero point; pads add nothing


def test_asymmetric_padding_by_hand():
    """x = 1..6 on a 2x3 image, 2x2 ones kernel, pads top 1, left 0, bottom 0, right 1."""
    x = np.arange(1, 7, dtype=np.int8).reshape(1, 1, 2, 3)
    w = np.ones((1, 1, 2, 2), np.int8)
    acc = np.empty((1, 1, 2, 3), np.int64)
    z = np.zeros(1, np.int64)
    conv2d_acc(x, w, 0, z, z, ConvGeom(1, 1, 1, 0, 0, 1, 1, 1, 1), acc)
    assert acc[0, 0].tolist() == [[1 + 2, 2 + 3, 3], [1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 3 + 6]]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 3), st.integers(1, 3), st.integers(0, 3),
       st.integers(0, 3))
def test_out_size_counts_the_windows_that_fit(size, k, stride, dil, p0, p1):
    geom = ConvGeom(stride, 1, p0, 0, p1, 0, dil, 1, 1)
    oh, _ = conv_out_hw(size, 1, k, 1, geom)
    span = size + p0 + p1
    fits = [o for o in range(span) if o * stride + dil * (k - 1) < span]
    assert oh == len(fits) or (not fits and oh < 1)


def test_non_contiguous_acc_and_input():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (1, 4, 6, 5)).astype(np.int8).transpose(0, 1, 3, 2)  # (1, 4, 5, 6) view
    w = rng.integers(-128, 128, (6, 2, 2, 3)).astype(np.int8)
    geom = ConvGeom(2, 1, 1, 2, 0, 1, 1, 2, 2)
    oh, ow = conv_out_hw(5, 6, 2, 3, geom)
    case = (x, w, 3, np.arange(6, dtype=np.int64), np.arange(6, dtype=np.int64), geom)
    acc = np.empty((1, 6, oh, 2 * ow), np.int64)[..., ::2]
    want = np.empty((1, 6, oh, ow), np.int64)
    conv2d_acc(*case, acc)
    conv2d_acc_ref(*case, want)
    assert np.array_equal(acc, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2))
def test_kernel_larger_than_padded_input_is_rejected(size, dil, p0, p1):
    k = (size + p0 + p1) // dil + 2          # dilated extent dil*(k-1)+1 > size + pads
    geom = ConvGeom(1, 1, p0, 0, p1, 0, dil, 1, 1)
    z = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="larger than the padded input"):
        conv2d_acc(np.zeros((1, 1, size, 3), np.int8), np.zeros((1, 1, k, 1), np.int8), 0, z, z, geom,
                   np.empty((1, 1, 1, 3), np.int64))


Z2 = np.zeros(2, np.int64)
G1 = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)


@pytest.mark.parametrize("x, w, geom, acc, word", [
    (np.zeros((1, 3, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1._replace(group=2),
     np.empty((1, 2, 4, 4), np.int64), "group"),                       # C != group * Cg
    (np.zeros((1, 4, 4, 4), np.int8), np.zeros((3, 2, 1, 1), np.int8), G1._replace(group=2),
     np.empty((1, 3, 4, 4), np.int64), "group"),                       # M % group != 0
    (np.zeros((1, 2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1._replace(stride_h=0),
     np.empty((1, 2, 4, 4), np.int64), "strides"),
    (np.zeros((1, 2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1._replace(pad_left=-1),
     np.empty((1, 2, 4, 3), np.int64), "pads"),
    (np.zeros((1, 2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1,
     np.empty((1, 2, 4, 3), np.int64), "acc"),
    (np.zeros((1, 2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1,
     np.empty((1, 2, 4, 4), np.uint32), "acc"),
    (np.zeros((2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), G1,
     np.empty((1, 2, 4, 4), np.int64), "x"),
    (np.zeros((1, 2, 4, 4), np.float32), np.zeros((2, 2, 1, 1), np.int8), G1,
     np.empty((1, 2, 4, 4), np.int64), "x"),
])
def test_bad_input_raises_value_error(x, w, geom, acc, word):
    with pytest.raises(ValueError, match=word):
        conv2d_acc(x, w, 0, Z2[:w.shape[0]] if w.shape[0] <= 2 else np.zeros(w.shape[0], np.int64),
                   np.zeros(w.shape[0], np.int64), geom, acc)


def test_bad_zero_point_and_bias_shapes_raise():
    x, w, acc = np.zeros((1, 2, 4, 4), np.int8), np.zeros((2, 2, 1, 1), np.int8), np.empty((1, 2, 4, 4), np.int64)
    with pytest.raises(ValueError, match="w_zp"):
        conv2d_acc(x, w, 0, np.zeros(3, np.int64), Z2, G1, acc)
    with pytest.raises(ValueError, match="bias"):
        conv2d_acc(x, w, 0, Z2, np.zeros(1, np.int64), G1, acc)
    with pytest.raises(ValueError, match="x_zp"):
        conv2d_acc(x, w, 0.5, Z2, Z2, G1, acc)
