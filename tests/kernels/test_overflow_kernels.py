"""kernels/overflow.py: the narrow-accumulator GEMM and conv against their NumPy twins and
against a plain-Python-integer loop over the same K order (written here, independently)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.conv import ConvGeom, conv2d_acc, conv_out_hw
from kernels.gemm import gemm_acc
from kernels.overflow import (NarrowAcc, conv2d_acc_narrow, conv2d_acc_narrow_ref, gemm_acc_narrow,
                              gemm_acc_narrow_ref)

from .strategies import biases, int_array, k_size, zero_point, zero_points

SETTINGS = settings(max_examples=80, deadline=None)


# ------------------------------------------------------------------ plain Python model
def py_fit(v: int, bits: int, mode: str) -> int:
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    if mode == "saturate":
        return min(max(v, lo), hi)
    return (v - lo) % 2 ** bits + lo


def py_narrow(bias: int, prods: list, model: NarrowAcc) -> tuple:
    """(acc, events) for one output: products in order, Python ints only."""
    bits, mode, tile = model
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    out = lambda v: v < lo or v > hi  # noqa: E731
    if not tile:
        events = int(out(bias))
        s = py_fit(bias, bits, mode)
        for p in prods:
            events += out(s + p)
            s = py_fit(s + p, bits, mode)
        return s, events
    total, events = bias, 0
    for t0 in range(0, len(prods), tile):
        part = 0
        for p in prods[t0:t0 + tile]:
            events += out(part + p)
            part = py_fit(part + p, bits, mode)
        total += part
    return total, events


def py_gemm(a, b, a_zp, b_zp, bias, model):
    m_, k_ = a.shape
    acc = np.zeros((m_, b.shape[1]), np.int64)
    events = 0
    for m in range(m_):
        for n in range(b.shape[1]):
            prods = [(int(a[m, k]) - int(a_zp)) * (int(b[k, n]) - int(b_zp[n])) for k in range(k_)]
            acc[m, n], e = py_narrow(int(bias[n]), prods, model)
            events += e
    return acc, events


def py_conv(x, w, x_zp, w_zp, bias, g: ConvGeom, model):
    n_, c_, h, wd = x.shape
    m_, cg, kh, kw = w.shape
    oh, ow = conv_out_hw(h, wd, kh, kw, g)
    mg = m_ // g.group
    acc = np.zeros((n_, m_, oh, ow), np.int64)
    events = 0
    for n in range(n_):
        for m in range(m_):
            gi = m // mg
            for oy in range(oh):
                for ox in range(ow):
                    prods = []
                    for c in range(cg):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy = oy * g.stride_h - g.pad_top + ky * g.dil_h
                                ix = ox * g.stride_w - g.pad_left + kx * g.dil_w
                                inside = 0 <= iy < h and 0 <= ix < wd
                                xv = int(x[n, gi * cg + c, iy, ix]) - int(x_zp) if inside else 0
                                prods.append(xv * (int(w[m, c, ky, kx]) - int(w_zp[m])))
                    acc[n, m, oy, ox], e = py_narrow(int(bias[m]), prods, model)
                    events += e
    return acc, events


# ------------------------------------------------------------------------ strategies
models = st.builds(NarrowAcc, st.sampled_from([2, 3, 8, 12, 15, 16, 17, 20, 24, 32]) | st.integers(2, 40),
                   st.sampled_from(["wrap", "saturate"]), st.sampled_from([0, 0, 1, 2, 3, 4, 5, 8]))


@st.composite
def gemm_case(draw):
    m, k, n = draw(st.integers(1, 5)), draw(k_size(40)), draw(st.integers(1, 5))
    adt = draw(st.sampled_from([np.uint8, np.int8]))
    a = draw(int_array((m, k), adt))
    b = draw(int_array((k, n), np.int8))
    return a, b, draw(zero_point(adt)), draw(zero_points(np.int8, n)), draw(biases(n, 20)), draw(models)


@st.composite
def conv_case(draw):
    group = draw(st.sampled_from([1, 1, 2, 3]))
    cg, mg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw, dh, dw = (draw(st.integers(1, 2)) for _ in range(4))
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - pads[0] - pads[2]), 6))
    wd = draw(st.integers(max(1, (kw - 1) * dw + 1 - pads[1] - pads[3]), 6))
    g = ConvGeom(sh, sw, pads[0], pads[1], pads[2], pads[3], dh, dw, group)
    xdt = draw(st.sampled_from([np.uint8, np.int8]))
    x = draw(int_array((draw(st.integers(1, 2)), cg * group, h, wd), xdt))
    w = draw(int_array((mg * group, cg, kh, kw), np.int8))
    m = mg * group
    return x, w, draw(zero_point(xdt)), draw(zero_points(np.int8, m)), draw(biases(m, 18)), g, draw(models)


# ----------------------------------------------------------------------------- tests
@SETTINGS
@given(gemm_case())
def test_gemm_narrow_equals_twin_and_python_loop(case):
    a, b, a_zp, b_zp, bias, model = case
    acc, ref = np.empty((a.shape[0], b.shape[1]), np.int64), np.empty((a.shape[0], b.shape[1]), np.int64)
    ev = gemm_acc_narrow(a, b, a_zp, b_zp, bias, model, acc)
    ev_ref = gemm_acc_narrow_ref(a, b, a_zp, b_zp, bias, model, ref)
    py, ev_py = py_gemm(a, b, a_zp, b_zp, bias, model)
    assert np.array_equal(acc, py) and np.array_equal(ref, py)
    assert ev == ev_ref == ev_py


@SETTINGS
@given(conv_case())
def test_conv_narrow_equals_twin_and_python_loop(case):
    x, w, x_zp, w_zp, bias, g, model = case
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], g)
    shape = (x.shape[0], w.shape[0], oh, ow)
    acc, ref = np.empty(shape, np.int64), np.empty(shape, np.int64)
    ev = conv2d_acc_narrow(x, w, x_zp, w_zp, bias, g, model, acc)
    ev_ref = conv2d_acc_narrow_ref(x, w, x_zp, w_zp, bias, g, model, ref)
    py, ev_py = py_conv(x, w, x_zp, w_zp, bias, g, model)
    assert np.array_equal(acc, py) and np.array_equal(ref, py)
    assert ev == ev_ref == ev_py


@settings(max_examples=60, deadline=None)
@given(conv_case(), st.sampled_from(["wrap", "saturate"]), st.sampled_from([0, 3]))
def test_wide_narrow_accumulator_equals_exact_conv(case, mode, tile):
    """At 32 bits no 8-bit layer overflows: every mode gives the exact sums and no event."""
    x, w, x_zp, w_zp, bias, g, _ = case
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], g)
    acc, exact = (np.empty((x.shape[0], w.shape[0], oh, ow), np.int64) for _ in range(2))
    assert conv2d_acc_narrow(x, w, x_zp, w_zp, bias, g, NarrowAcc(32, mode, tile), acc) == 0
    conv2d_acc(x, w, x_zp, w_zp, bias, g, exact)
    assert np.array_equal(acc, exact)


@settings(max_examples=60, deadline=None)
@given(gemm_case(), st.integers(2, 24))
def test_wrap_is_one_modular_reduction_of_the_exact_sum(case, bits):
    a, b, a_zp, b_zp, bias, _ = case
    acc, exact = (np.empty((a.shape[0], b.shape[1]), np.int64) for _ in range(2))
    gemm_acc_narrow(a, b, a_zp, b_zp, bias, NarrowAcc(bits, "wrap", 0), acc)
    gemm_acc(a, b, a_zp, b_zp, bias, exact)
    want = [[py_fit(int(v), bits, "wrap") for v in row] for row in exact]
    assert acc.tolist() == want


def test_saturation_is_path_dependent_at_the_extremes():
    """u8 255 against s8 -128, then +127 weights: saturating at 16 bits loses what the exact
    sum keeps; the clamp happens on the way, not at the end."""
    a = np.full((1, 6), 255, np.uint8)
    b = np.array([[-128], [-128], [127], [127], [127], [-128]], np.int8)
    acc = np.empty((1, 1), np.int64)
    ev = gemm_acc_narrow(a, b, 0, np.zeros(1, np.int64), np.zeros(1, np.int64), NarrowAcc(16, "saturate", 0), acc)
    # -32640, then -65280 -> -32768 (event), +32385 -> -383, +32385 -> 32002, +32385 -> 32767 (event), -32640 -> 127
    assert int(acc[0, 0]) == 127 and ev == 2
    assert sum(255 * int(v) for v in b[:, 0]) == -765


def test_int32_acc_output_and_k_tail():
    """K = 7 (not a multiple of 4), a 1x1 output, an int32 destination."""
    a = np.array([[255, 0, 255, 1, 255, 254, 255]], np.uint8)
    b = np.array([[-128], [127], [-128], [5], [-128], [-1], [-128]], np.int8)
    acc = np.empty((1, 1), np.int32)
    gemm_acc_narrow(a, b, 255, np.array([-128]), np.array([7]), NarrowAcc(20, "wrap", 0), acc)
    exact = 7 + sum((int(x) - 255) * (int(y) + 128) for x, y in zip(a[0], b[:, 0]))
    assert int(acc[0, 0]) == py_fit(exact, 20, "wrap")


@pytest.mark.parametrize("model, msg", [(NarrowAcc(1, "wrap", 0), "outside"), (NarrowAcc(64, "wrap", 0), "outside"),
                                        (NarrowAcc(16, "exact", 0), "mode"), (NarrowAcc(16, "wrap", -1), "tile")])
def test_bad_model_raises(model, msg):
    with pytest.raises(ValueError, match=msg):
        gemm_acc_narrow(np.zeros((1, 2), np.uint8), np.zeros((2, 1), np.int8), 0, np.zeros(1, np.int64),
                        np.zeros(1, np.int64), model, np.empty((1, 1), np.int64))


def test_bad_shapes_raise_and_name_the_operand():
    with pytest.raises(ValueError, match="do not multiply"):
        gemm_acc_narrow(np.zeros((1, 3), np.uint8), np.zeros((2, 1), np.int8), 0, np.zeros(1, np.int64),
                        np.zeros(1, np.int64), NarrowAcc(16, "wrap", 0), np.empty((1, 1), np.int64))
    with pytest.raises(ValueError, match="x"):
        conv2d_acc_narrow(np.zeros((1, 2, 3), np.uint8), np.zeros((1, 2, 1, 1), np.int8), 0, np.zeros(1, np.int64),
                          np.zeros(1, np.int64), ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1), NarrowAcc(16, "wrap", 0),
                          np.empty((1, 1, 3, 3), np.int64))
    with pytest.raises(ValueError, match="float"):
        gemm_acc_narrow(np.zeros((1, 2), np.float32), np.zeros((2, 1), np.int8), 0, np.zeros(1, np.int64),
                        np.zeros(1, np.int64), NarrowAcc(16, "wrap", 0), np.empty((1, 1), np.int64))
