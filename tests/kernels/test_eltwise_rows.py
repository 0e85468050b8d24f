"""kernels.eltwise.qlinear_mul_rows (QLinearMul with one b per row of a): against its NumPy int64
twin and against qlinear_mul on b expanded to a's shape (hypothesis: edge codes, zero points at
the ends, odd shapes, clamps), and against onnxruntime's QLinearMul on the broadcast graph."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import eltwise as E
from tests.kernels.strategies import int_array, zero_point
from tests.kernels.test_eltwise_ort import ort_binary

F32 = np.float32
SCALES = st.sampled_from([2.0 ** -8, 2.0 ** -3, 2.0 ** -5, 1.0]) | st.floats(0.0001, 0.5).map(F32).filter(lambda s: s > 0)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), rows=st.integers(1, 9), cols=st.integers(1, 37))
def test_rows_equal_twin_and_expanded_kernel(data, dtype, rows, cols):
    a = data.draw(int_array((rows, cols), dtype))
    b = data.draw(int_array((rows,), dtype))
    sa, sb, sy = (F32(data.draw(SCALES)) for _ in range(3))
    za, zb, zy = (data.draw(zero_point(dtype)) for _ in range(3))
    info = np.iinfo(dtype)
    lo = data.draw(st.sampled_from([int(info.min), int(info.min) + 3]))
    hi = data.draw(st.sampled_from([int(info.max), int(info.max) - 5]))
    got, twin, full = (np.empty((rows, cols), dtype) for _ in range(3))
    E.qlinear_mul_rows(a, sa, za, b, sb, zb, sy, zy, lo, hi, got)
    E.qlinear_mul_rows_ref(a, sa, za, b, sb, zb, sy, zy, lo, hi, twin)
    E.qlinear_mul(a, sa, za, np.repeat(b[:, None], cols, axis=1), sb, zb, sy, zy, lo, hi, full)
    np.testing.assert_array_equal(got, twin)
    np.testing.assert_array_equal(got, full)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_rows_equal_onnxruntime_broadcast(dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, (2, 5, 7, 3)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (2, 5, 1, 1)).astype(dtype)
    a[0, 0, 0, :] = (info.min, info.max, 0)
    b[0, :2, 0, 0] = (info.min, info.max)
    for sa, sb, sy, za, zb, zy in [(2.0 ** -8, 2.0 ** -3, 2.0 ** -5, int(info.max), int(info.min), 1),
                                   (0.013, 0.07, 0.021, 3, -1 if dtype == np.int8 else 200, int(info.min))]:
        want = ort_binary("QLinearMul", a, b, F32(sa), za, F32(sb), zb, F32(sy), zy)
        got = np.empty(a.shape, dtype)
        E.qlinear_mul_rows(a.reshape(10, 21), F32(sa), za, b.reshape(10), F32(sb), zb, F32(sy), zy,
                           int(info.min), int(info.max), got.reshape(10, 21))
        np.testing.assert_array_equal(got, want)


def test_rows_refuse_bad_arrays():
    a, out = np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8)
    with pytest.raises(ValueError, match=r"b \(R,\)"):
        E.qlinear_mul_rows(a, 1.0, 0, np.zeros(4, np.uint8), 1.0, 0, 1.0, 0, 0, 255, out)
    with pytest.raises(ValueError, match="must be a uint8/int8/uint16/int16 array"):   # operand types may differ
        E.qlinear_mul_rows(a, 1.0, 0, np.zeros(3, np.int32), 1.0, 0, 1.0, 0, 0, 255, out)
    with pytest.raises(ValueError, match="zero point 300"):
        E.qlinear_mul_rows(a, 1.0, 300, np.zeros(3, np.uint8), 1.0, 0, 1.0, 0, 0, 255, out)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), n=st.integers(1, 3), pix=st.integers(1, 13),
       ch=st.integers(1, 37))
def test_cols_equal_twin_on_the_broadcast(data, dtype, n, pix, ch):
    """qlinear_mul_cols (channels-last a (N, P, C) by b (N, C)) equals the NumPy twin
    qlinear_mul_ref on b expanded to a's shape, with edge codes, zero points at the ends and
    clamps."""
    a = data.draw(int_array((n, pix, ch), dtype))
    b = data.draw(int_array((n, ch), dtype))
    info = np.iinfo(dtype)
    a.reshape(-1)[0], a.reshape(-1)[-1] = info.min, info.max
    b.reshape(-1)[-1] = data.draw(st.sampled_from([int(info.min), int(info.max), -8 if dtype == np.int8 else 8, 7]))
    sa, sb, sy = (F32(data.draw(SCALES)) for _ in range(3))
    za, zb, zy = (data.draw(zero_point(dtype)) for _ in range(3))
    lo = data.draw(st.sampled_from([int(info.min), int(info.min) + 3]))
    hi = data.draw(st.sampled_from([int(info.max), int(info.max) - 5]))
    got, want = np.empty(a.shape, dtype), np.empty(a.shape, dtype)
    E.qlinear_mul_cols(a, sa, za, b, sb, zb, sy, zy, lo, hi, got)
    E.qlinear_mul_ref(a, sa, za, np.repeat(b[:, None, :], pix, axis=1), sb, zb, sy, zy, lo, hi, want)
    np.testing.assert_array_equal(got, want)
    bound = np.empty(a.shape, dtype)
    E.bind_mul_cols(a, sa, za, b, sb, zb, sy, zy, lo, hi, bound)()
    np.testing.assert_array_equal(bound, want)


def test_cols_refuse_bad_arrays():
    a, out = np.zeros((1, 3, 4), np.uint8), np.zeros((1, 3, 4), np.uint8)
    with pytest.raises(ValueError, match=r"b \(N, C\)"):
        E.qlinear_mul_cols(a, 1.0, 0, np.zeros((1, 3), np.uint8), 1.0, 0, 1.0, 0, 0, 255, out)
    with pytest.raises(ValueError, match="C-contiguous uint8/int8"):
        E.qlinear_mul_cols(a, 1.0, 0, np.zeros((1, 4), np.int16), 1.0, 0, 1.0, 0, 0, 255, out)
    with pytest.raises(ValueError, match="C-contiguous uint8/int8"):
        E.qlinear_mul_cols(a.transpose(0, 2, 1), 1.0, 0, np.zeros((1, 3), np.uint8), 1.0, 0, 1.0, 0, 0, 255,
                           out.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="zero point 300"):
        E.qlinear_mul_cols(a, 1.0, 300, np.zeros((1, 4), np.uint8), 1.0, 0, 1.0, 0, 0, 255, out)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("za,zb", [("min", "max"), ("max", "min"), ("min", "min"), (0, 0)])
def test_every_code_pair_equals_twin(dtype, za, zb):
    """qlinear_mul (same shape) and qlinear_mul_cols, whose float32 products stand in for int32
    ones (exact: |a - za|, |b - zb| <= 255), equal the int64 twin on every pair of codes with
    zero points at the ends, under a ratio whose results span the clamp (and one past 2**31)."""
    info = np.iinfo(dtype)
    za, zb = (int(getattr(info, z)) if isinstance(z, str) else z for z in (za, zb))
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    a, b = np.repeat(codes, 256).reshape(1, 256, 256), np.tile(codes, 256).reshape(1, 256, 256)
    for sy in (F32(0.01), F32(3e-7), F32(3e-10)):
        want = np.empty(a.shape, dtype)
        E.qlinear_mul_ref(a, F32(0.05), za, b, F32(0.02), zb, sy, 3, int(info.min), int(info.max), want)
        got = np.empty(a.shape, dtype)
        E.qlinear_mul(a, F32(0.05), za, b, F32(0.02), zb, sy, 3, int(info.min), int(info.max), got)
        np.testing.assert_array_equal(got, want)
        cols = np.empty(a.shape, dtype)        # b's 256 columns: one value per channel, every row a code
        E.qlinear_mul_cols(a.reshape(1, 256, 256), F32(0.05), za, np.ascontiguousarray(b[:, 0]), F32(0.02), zb, sy, 3,
                           int(info.min), int(info.max), cols)
        np.testing.assert_array_equal(cols, want)
