"""The planned entry points of kernels.eltwise and kernels.pool (parameters validated once, then
the vectorized kernels): against their NumPy twins (hypothesis, edge values, both the checked
and unchecked cvt paths, the multi-threaded split of large arrays) and against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import eltwise as E
from kernels import pool as P
from tests.kernels.strategies import int_array, zero_point
from tests.kernels.test_eltwise_ort import ort_binary, ort_quantize, tie_inputs

F32 = np.float32

# ordinary scales, and ratios large enough that fma results leave int32 (cvt -> INT32_MIN)
scales = (st.sampled_from([2.0 ** -k for k in range(0, 10)]) | st.floats(2.0 ** -13, 8.0, width=32)
          | st.sampled_from([1e6, 3e7, 1e-7, 2.0 ** -30]))


def _add_both(a, b, sa, za, sb, zb, sy, zy, lo, hi, dtype):
    """(plan, qlinear_add_planned, twin), after checking that the bound call gives the same."""
    plan = E.add_plan(sa, za, sb, zb, sy, zy, lo, hi, dtype)
    got, want, bound = np.empty(a.shape, dtype), np.empty(a.shape, dtype), np.empty(a.shape, dtype)
    E.qlinear_add_planned(a, b, plan, got)
    E.qlinear_add_ref(a, sa, za, b, sb, zb, sy, zy, lo, hi, want)
    E.bind_add_planned(a, b, plan, bound)()
    assert np.array_equal(bound, got)
    return plan, got, want


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), n=st.integers(1, 75),
       scalar_b=st.booleans())
def test_add_planned_equals_twin(data, dtype, n, scalar_b):
    info = np.iinfo(dtype)
    a = data.draw(int_array((n,), dtype))
    b = data.draw(int_array((1,) if scalar_b else (n,), dtype))
    sa, sb, sy = data.draw(scales), data.draw(scales), data.draw(scales)
    za, zb, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    lo = data.draw(st.integers(int(info.min), int(info.max)))
    hi = data.draw(st.integers(lo, int(info.max)))
    _, got, want = _add_both(a, b, sa, za, sb, zb, sy, zy, lo, hi, dtype)
    assert np.array_equal(got, want)


def test_add_plan_checks_cvt_only_when_needed():
    """Huge ratios make the float result leave int32; the checked loop gives lo there (cvt's
    INT32_MIN saturated), the unchecked one is used only when the bound proves it cannot."""
    a = np.array([0, 1, 128, 255], np.uint8)
    plan, got, want = _add_both(a, a, 3e7, 0, 1.0, 0, 1e-3, 0, 5, 250, np.uint8)
    assert plan.checked and np.array_equal(got, want) and got[3] == 5   # 255 * 3e10 -> INT32_MIN -> lo
    plan, got, want = _add_both(a, a, 0.1, 3, 0.2, 7, 0.05, 9, 0, 255, np.uint8)
    assert not plan.checked and np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_add_planned_large_matches_onnxruntime(dtype):
    """Arrays above the threading threshold (split into chunks) and an odd length."""
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    n = E._PAR_MIN * 2 + 12345
    a = rng.integers(info.min, info.max + 1, n).astype(dtype)
    b = rng.integers(info.min, info.max + 1, n).astype(dtype)
    for sa, sb, sy, za, zb, zy in ((F32(0.02), F32(0.04), F32(0.03), info.min, info.max, 0),
                                   (F32(2 ** -4), F32(2 ** -5), F32(2 ** -3), 3, -3 if info.min else 250, info.max)):
        plan = E.add_plan(sa, za, sb, zb, sy, zy, info.min, info.max, dtype)
        for bb in (b, b[:1].copy()):
            got, bound = np.empty(n, dtype), np.empty(n, dtype)
            E.qlinear_add_planned(a, bb, plan, got)
            assert np.array_equal(got, ort_binary("QLinearAdd", a, bb, sa, za, sb, zb, sy, zy))
            E.bind_add_planned(a, bb, plan, bound)()
            assert np.array_equal(bound, got)


def test_bound_add_reads_its_arrays_at_each_call():
    """bind_add_planned binds arrays, not values: a call after a changes sees the new a."""
    rng = np.random.default_rng(4)
    plan = E.add_plan(0.02, 3, 0.04, 250, 0.03, 7, 0, 255, np.uint8)
    a, b = rng.integers(0, 256, (2, 5, 7, 3)).astype(np.uint8), rng.integers(0, 256, (2, 5, 7, 3)).astype(np.uint8)
    out, want = np.empty_like(a), np.empty_like(a)
    call = E.bind_add_planned(a, b, plan, out)
    for _ in range(3):
        a[...] = rng.integers(0, 256, a.shape)
        call()
        E.qlinear_add_ref(a, 0.02, 3, b, 0.04, 250, 0.03, 7, 0, 255, want)
        assert np.array_equal(out, want)


def test_bound_scalar_add_reads_b_at_each_call():
    """A single-value b is bound as an array too (the scalar-B kernel derives fma(b, rB, fixed)
    at each call): a call after b changes sees the new b, as the twin does."""
    rng = np.random.default_rng(5)
    plan = E.add_plan(0.02, 3, 0.04, 250, 0.03, 7, 0, 255, np.uint8)
    a, b = rng.integers(0, 256, (32, 512)).astype(np.uint8), np.array([9], np.uint8)
    out, want = np.empty_like(a), np.empty_like(a)
    call = E.bind_add_planned(a, b, plan, out)
    for code in (0, 9, 128, 255):
        b[0] = code
        call()
        E.qlinear_add_ref(a, 0.02, 3, b, 0.04, 250, 0.03, 7, 0, 255, want)
        assert np.array_equal(out, want)


def test_add_planned_rejects_bad_arrays():
    plan = E.add_plan(0.1, 0, 0.1, 0, 0.1, 0, 0, 255, np.uint8)
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        E.qlinear_add_planned(a, a.view(np.int8), plan, np.empty_like(a))
    with pytest.raises(ValueError, match="shape"):
        E.qlinear_add_planned(a, np.zeros(3, np.uint8), plan, np.empty_like(a))
    with pytest.raises(ValueError, match="contiguous"):
        E.qlinear_add_planned(a.T, a, plan, np.empty_like(a))
    with pytest.raises(ValueError, match="contiguous"):
        E.bind_add_planned(a.T, a, plan, np.empty_like(a))
    with pytest.raises(ValueError, match="shape"):
        E.bind_add_planned(a, a, plan, np.empty((4, 3), np.uint8))
    with pytest.raises(ValueError, match="scale"):
        E.add_plan(0.1, 0, float("nan"), 0, 0.1, 0, 0, 255, np.uint8)
    with pytest.raises(ValueError, match="dtype"):
        E.add_plan(0.1, 0, 0.1, 0, 0.1, 0, 0, 255, np.int16)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 11)), per_axis=st.booleans())
def test_quantize_planned_equals_twin(data, dtype, shape, per_axis):
    info = np.iinfo(dtype)
    c = shape[1] if per_axis else 1
    scale = np.array([data.draw(scales) for _ in range(c)], F32)
    zp = np.array([data.draw(zero_point(dtype)) for _ in range(c)])
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * 300).astype(F32)
    x.reshape(-1)[0] = F32(0.5) * scale[0]
    x.reshape(-1)[-1] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30]))
    plan = E.quantize_plan(scale, zp, info.min, info.max, dtype)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    E.quantize_linear_planned(x, plan, got)
    E.quantize_linear_ref(x, scale, zp, info.min, info.max, want)
    assert np.array_equal(got, want)
    d1, d2 = np.empty(shape, F32), np.empty(shape, F32)
    E.dequantize_linear_planned(got, E.dequantize_plan(scale, zp), d1)
    E.dequantize_linear_ref(got, scale, zp, d2)
    assert np.array_equal(d1.view(np.int32), d2.view(np.int32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_quantize_planned_large_matches_onnxruntime(dtype):
    """Per tensor (split along the flat array) and per axis (split along the outer axis)."""
    rng = np.random.default_rng(8)
    info = np.iinfo(dtype)
    x = tie_inputs(rng, E._PAR_MIN + 4099, F32(0.0173))
    plan = E.quantize_plan(F32(0.0173), info.max, info.min, info.max, dtype)
    got = np.empty(x.shape, dtype)
    E.quantize_linear_planned(x, plan, got)
    assert np.array_equal(got, ort_quantize(x, F32(0.0173), info.max, dtype))
    scale = rng.uniform(0.001, 0.1, 3).astype(F32)
    zp = np.array([info.min, 0 if info.min else 128, info.max])
    x3 = (rng.standard_normal((9, 3, E._PAR_MIN // 9 + 7)) * 4).astype(F32)
    got = np.empty(x3.shape, dtype)
    E.quantize_linear_planned(x3, E.quantize_plan(scale, zp, info.min, info.max, dtype), got)
    assert np.array_equal(got, ort_quantize(x3, scale, zp, dtype, axis=1))


def test_quantize_planned_rejects_bad_input():
    plan = E.quantize_plan(np.ones(3, F32), np.zeros(3), 0, 255, np.uint8)
    with pytest.raises(ValueError, match="per-axis"):
        E.quantize_linear_planned(np.zeros((2, 4, 5), F32), plan, np.empty((2, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="float32"):
        E.quantize_linear_planned(np.zeros((2, 3, 5)), plan, np.empty((2, 3, 5), np.uint8))
    with pytest.raises(ValueError, match="zero points"):
        E.quantize_plan(F32(1), 300, 0, 255, np.uint8)
    with pytest.raises(ValueError, match="8- or 16-bit"):
        E.quantize_plan(F32(1), 0, 0, 255, np.int32)
    with pytest.raises(ValueError, match="finite"):
        E.dequantize_plan(F32(0), 0)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]),
       shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5)))
def test_global_avgpool_planned_equals_twin(data, dtype, shape):
    x = data.draw(int_array(shape, dtype))
    sx = data.draw(st.sampled_from([2.0 ** -6, 0.0173, 0.5]))
    sy = data.draw(st.sampled_from([2.0 ** -6, 0.0311, 0.25]))
    zx, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    hw = shape[2] * shape[3]
    try:
        plan = P.global_avgpool_plan(sx, zx, sy, zy, hw, dtype)
    except ValueError:
        return      # scale ratio outside ORT's accepted range
    got, want = np.empty(shape[:2] + (1, 1), dtype), np.empty(shape[:2] + (1, 1), dtype)
    P.global_avgpool_planned(x, plan, got)
    P.global_avgpool_ref(x, sx, zx, sy, zy, want)
    assert np.array_equal(got, want)
    # bound to x and an out (checked once): each call reads the values x holds then
    x = np.ascontiguousarray(x)
    bound = np.full_like(got, 7)
    call = P.bind_global_avgpool_planned(x, plan, bound)
    for _ in range(2):
        x[...] = data.draw(int_array(shape, dtype))
        call()
        P.global_avgpool_ref(x, sx, zx, sy, zy, want)
        assert np.array_equal(bound, want)


def test_global_avgpool_planned_rejects_other_sizes():
    plan = P.global_avgpool_plan(0.1, 0, 0.1, 0, 9, np.uint8)
    with pytest.raises(ValueError, match="planned"):
        P.global_avgpool_planned(np.zeros((1, 2, 4, 4), np.uint8), plan, np.empty((1, 2, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        P.global_avgpool_planned(np.zeros((1, 2, 3, 3), np.int8), plan, np.empty((1, 2, 1, 1), np.int8))
    with pytest.raises(ValueError, match="planned"):     # the bound form checks as the planned one
        P.bind_global_avgpool_planned(np.zeros((1, 2, 4, 4), np.uint8), plan, np.empty((1, 2, 1, 1), np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("geom", [([3, 3], [2, 2], [1, 1, 1, 1], 0), ([2, 3], [1, 2], [0, 1, 1, 2], 1),
                                  ([3], [2], [2, 1], 1)])
def test_maxpool_planes_large_equals_twin(dtype, geom):
    """The dilation-1 plane kernel above the threading threshold (odd sizes, asymmetric pads,
    ceil mode), against the padded-view twin."""
    k, s, p, cm = geom
    rng = np.random.default_rng(len(k) + cm)
    info = np.iinfo(dtype)
    spatial = [37, 41][:len(k)] if len(k) == 2 else [4099]
    x = rng.integers(info.min, info.max + 1, [3, 29] + spatial).astype(dtype)
    x[0, 0] = info.min
    shape = x.shape[:2] + P.pool_output_shape(spatial, k, s, p, [1] * len(k), cm)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    P.maxpool(x, k, s, p, [1] * len(k), cm, got)
    P.maxpool_ref(x, k, s, p, [1] * len(k), cm, want)
    assert got.size >= 1 << 15 and np.array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
def test_dequantize_every_code_with_zero_points_at_the_ends(dtype):
    """Every code of 8- and 16-bit types (the int32-difference kernel) against the NumPy int64
    twin, per tensor and per channel, zero points at both ends of the type."""
    info = np.iinfo(dtype)
    q = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    for zp in (info.min, info.max, 0 if info.min < 0 else 1):
        for scale in (np.float32(0.0173), np.float32(2.0 ** -7), np.float32(3.0e-5)):
            got, want = np.empty(q.shape, np.float32), np.empty(q.shape, np.float32)
            E.dequantize_linear(q, scale, zp, got)
            E.dequantize_linear_ref(q, scale, zp, want)
            assert np.array_equal(got.view(np.int32), want.view(np.int32))
    q3 = q.reshape(2, 2, -1)
    scales, zps = np.array([0.02, 0.5], np.float32), np.array([info.min, info.max], np.int64)
    got, want = np.empty(q3.shape, np.float32), np.empty(q3.shape, np.float32)
    E.dequantize_linear(q3, scales, zps, got)
    E.dequantize_linear_ref(q3, scales, zps, want)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))
