"""TFLite PRELU, RESIZE_BILINEAR and SOFTMAX (optimized and reference) kernels equal their NumPy / Python-int twins on
hypothesis-drawn codes, scales, zero points (ends included) and odd shapes; the live tests
against the interpreter are in tests/tflite/test_tflite_ops_live.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kernels import tflite_prelu as pk
from kernels import tflite_resize as rk
from kernels import tflite_softmax as sk
from kernels import tflite_softmax_fixed as sfk

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-13, 4.0, allow_nan=False, allow_infinity=False, width=32)
zps = st.sampled_from([-128, 127, 0, -8, 7]) | st.integers(-128, 127)


def _codes(rng, shape, dtype=np.int8):
    info = np.iinfo(dtype)
    v = rng.integers(info.min, info.max + 1, shape)
    v.reshape(-1)[:2] = [info.min, info.max][:v.size]     # the ends of the type
    return v.astype(dtype)


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), shared=st.integers(0, 3), sx=scales, sa=scales,
       sy=scales, zx=zps, za=zps, zy=zps, mode=st.sampled_from(["double", "single", "cmsis", "builtin"]),
       seed=st.integers(0, 2**31 - 1))
def test_prelu_equals_twin(shape, shared, sx, sa, sy, zx, za, zy, mode, seed):
    rng = np.random.default_rng(seed)
    x = _codes(rng, shape)
    alpha = _codes(rng, shape[min(shared, len(shape) - 1):])
    try:
        mults = pk.prelu_multipliers(sx, sa, sy)
    except ValueError:
        return
    if max(mults[0][1], mults[1][1]) > 30 or min(mults[0][1], mults[1][1]) < -31:
        return
    got, want = np.empty(x.shape, np.int8), np.empty(x.shape, np.int8)
    pk.tflite_prelu(x, alpha, zx, za, zy, mults, mode, got)
    pk.tflite_prelu_ref(x, alpha, zx, za, zy, mults, mode, want)
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5), oh=st.integers(1, 17),
       ow=st.integers(1, 17), corners=st.sampled_from([(False, False), (True, False), (False, True)]),
       seed=st.integers(0, 2**31 - 1))
def test_resize_bilinear_equals_twin(n, h, w, c, oh, ow, corners, seed):
    x = _codes(np.random.default_rng(seed), (n, h, w, c))
    got, want = np.empty((n, oh, ow, c), np.int8), np.empty((n, oh, ow, c), np.int8)
    rk.resize_bilinear(x, (oh, ow), *corners, got)
    rk.resize_bilinear_ref(x, (oh, ow), *corners, want)
    np.testing.assert_array_equal(got, want)
    rk.resize_bilinear_q11(x, (oh, ow), *corners, got)
    rk.resize_bilinear_q11_ref(x, (oh, ow), *corners, want)
    np.testing.assert_array_equal(got, want)


def test_resize_bilinear_of_a_constant_image_is_that_constant():
    """The four weights sum to 2**20 (2**22 for XNNPACK's) at every output pixel, on every corner mode."""
    for corners in [(False, False), (True, False), (False, True)]:
        for v in (-128, -1, 0, 127):
            x = np.full((1, 3, 5, 2), v, np.int8)
            out = np.empty((1, 7, 4, 2), np.int8)
            rk.resize_bilinear(x, (7, 4), *corners, out)
            assert (out == v).all()
            rk.resize_bilinear_q11(x, (7, 4), *corners, out)
            assert (out == v).all()


@SETTINGS
@given(rows=st.integers(1, 4), d=st.integers(1, 300), sx=scales, beta=st.sampled_from([1.0, 0.5, 2.0]),
       zy=st.sampled_from([-128, 0]), dtype=st.sampled_from([np.int8, np.uint8]), seed=st.integers(0, 2**31 - 1))
def test_softmax_equals_twin(rows, d, sx, beta, zy, dtype, seed):
    x = _codes(np.random.default_rng(seed), (rows, d), dtype)
    zy = zy + 128 if dtype == np.uint8 else zy
    table = sk.softmax_table(sx, beta)
    got, want = np.empty(x.shape, dtype), np.empty(x.shape, dtype)
    sk.softmax_rows(x, table, np.float32(1 / 256), zy, got)
    sk.softmax_rows_ref(x, table, np.float32(1 / 256), zy, want)
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(rows=st.integers(1, 4), d=st.integers(1, 300), sx=scales | st.floats(4.0, 64.0, width=32),
       beta=st.sampled_from([1.0, 0.5, 2.0, 0.1]), dtype=st.sampled_from([np.int8, np.uint8]),
       flat=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_softmax_fixed_equals_twin(rows, d, sx, beta, dtype, flat, seed):
    """The reference kernel's gemmlowp fixed point: Numba rows equal the NumPy int64 twin (a
    constant row at the type's top included: every difference 0, exp exactly One)."""
    x = _codes(np.random.default_rng(seed), (rows, d), dtype)
    if flat:
        x[...] = np.iinfo(dtype).max
    got, want = np.empty(x.shape, dtype), np.empty(x.shape, dtype)
    sfk.softmax_fixed_rows(x, sx, beta, got)
    sfk.softmax_fixed_rows_ref(x, sx, beta, want)
    np.testing.assert_array_equal(got, want)


def test_softmax_fixed_params_are_tflites_preprocessing():
    """PreprocessSoftmaxScaling of 0.25 * 2**26 = 2**24: M = 2**30, L = 25; diff_min =
    -floor(31 * 2**26 / 2**25) = -62; one nonzero code of two equal ones takes half: 128 - 128 = 0."""
    assert sfk.reference_params(0.25, 1.0) == (1 << 30, 25, -62)
    out = np.empty((1, 2), np.int8)
    sfk.softmax_fixed_rows(np.array([[5, 5]], np.int8), 0.25, 1.0, out)
    assert out.tolist() == [[0, 0]]


def test_softmax_table_is_exp_of_minus_scaled_distance_to_the_max():
    t = sk.softmax_table(0.25, 1.0)
    assert t[255] == 1.0 and np.isclose(t[255 - 4], np.exp(-1.0), rtol=1e-6)


@SETTINGS
@given(n=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), ci=st.integers(1, 5), co=st.integers(1, 5),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3), pt=st.integers(0, 3),
       pl=st.integers(0, 3), extra=st.integers(-2, 3), zx=zps, seed=st.integers(0, 2**31 - 1))
def test_transpose_conv_acc_equals_twin(n, h, w, ci, co, kh, kw, sh, sw, pt, pl, extra, zx, seed):
    from kernels import tflite_transpose_conv as tk

    rng = np.random.default_rng(seed)
    x, wt = _codes(rng, (n, h, w, ci)), _codes(rng, (co, kh, kw, ci))
    out_hw = (max((h - 1) * sh + kh - 2 * pt + extra, 1), max((w - 1) * sw + kw - 2 * pl + extra, 1))
    got = tk.transpose_conv_acc(x, zx, wt, (sh, sw), (pt, pl), out_hw)
    want = tk.transpose_conv_acc_ref(x, zx, wt, (sh, sw), (pt, pl), out_hw)
    np.testing.assert_array_equal(got, want)


def test_transpose_conv_acc_of_one_pixel_is_the_kernel():
    """One input pixel, one channel, x - zx = 1: the output is the kernel placed at the origin."""
    from kernels import tflite_transpose_conv as tk

    w = np.arange(1, 7, dtype=np.int8).reshape(1, 2, 3, 1)
    acc = tk.transpose_conv_acc(np.array([[[[5]]]], np.int8), 4, w, (2, 2), (0, 0), (2, 3))
    assert acc[0, :, :, 0].tolist() == [[1, 2, 3], [4, 5, 6]]


@SETTINGS
@given(p=st.integers(1, 3), c=st.integers(1, 4), q=st.integers(1, 5), real=st.lists(st.floats(1e-9, 100.0),
       min_size=4, max_size=4), zp=st.integers(-10, 10), seed=st.integers(0, 2**31 - 1))
def test_reduced64_requant_equals_twin_and_formula(p, c, q, real, zp, seed):
    """Mode reduced64 (TFLite's int64 MultiplyByQuantizedMultiplier, 16x8): the Numba kernel,
    the NumPy twin and the Python-int formula agree on accumulators up to +-2**47."""
    from kernels import fixedpoint as fk

    m0, shift = fk.quantize_multiplier(np.array(real[:c], np.float64))
    if shift.max() > 14:
        return
    acc = np.random.default_rng(seed).integers(-(1 << 47), 1 << 47, (p, c, q))
    acc.reshape(-1)[:1] = -(1 << 47)
    got, want = np.empty(acc.shape, np.int16), np.empty(acc.shape, np.int16)
    fk.requant_fixedpoint(acc, m0, shift, zp, -32768, 32767, "reduced64", got)
    fk.requant_fixedpoint_ref(acc, m0, shift, zp, -32768, 32767, "reduced64", want)
    np.testing.assert_array_equal(got, want)
    for (pi, ci, qi), a in np.ndenumerate(acc):
        m, s = int(m0[ci]), int(shift[ci])
        r = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
        v = (int(a) * r + (1 << (14 - s))) >> (15 - s)
        v = ((v + zp + (1 << 31)) % (1 << 32)) - (1 << 31)
        assert got[pi, ci, qi] == min(max(v, -32768), 32767)


@pytest.mark.parametrize("fn", [sfk.softmax_fixed_rows, sfk.softmax_fixed_rows_ref])
def test_softmax_fixed_refuses_bad_arrays(fn):
    """Shapes and dtypes are checked before the jitted loop indexes anything: an empty row, a
    shorter output, mixed dtypes or a non-array are ValueErrors, never an out-of-bounds access."""
    x = np.zeros((2, 5), np.int8)
    for xx, out, why in [(np.zeros((2, 0), np.int8), np.zeros((2, 0), np.int8), "D >= 1"),
                         (x, np.zeros((2, 4), np.int8), "one"), (x, np.zeros((2, 5), np.uint8), "one"),
                         (x, np.zeros((2, 5), np.int16), "int8 or uint8"), (x.tolist(), np.zeros((2, 5), np.int8),
                                                                             "int8 or uint8")]:
        with pytest.raises(ValueError, match=why):
            fn(xx, 0.25, 1.0, out)
