"""kernels.pool against its NumPy twins (hypothesis), onnxruntime 1.32 one-node graphs
(QLinearGlobalAveragePool, QLinearAveragePool com.microsoft; MaxPool opset 12) and onnx.reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto as TP, helper

from kernels import pool as P
from tests.kernels.strategies import int_array, zero_point
from tests.kernels.test_eltwise_ort import ELEM, ort_session, qparams, vinfo, zp_pick

F32 = np.float32


def ort_qpool(op, x, sx, zx, sy, zy, **attrs):
    inits = qparams([("sx", sx), ("zx", zx), ("sy", sy), ("zy", zy)], x.dtype)
    node = helper.make_node(op, ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft", **attrs)
    s = ort_session([node], [vinfo("x", x.dtype, list(x.shape))], [vinfo("y", x.dtype, None)], inits)
    return s.run(None, {"x": x})[0]


def ort_maxpool(x, **attrs):
    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    s = ort_session([node], [vinfo("x", x.dtype, list(x.shape))], [vinfo("y", x.dtype, None)], [], opset=12, ms=False)
    return s.run(None, {"x": x})[0]


def random_geometry(rng, spatial, dilate=False):
    k = [int(rng.integers(1, s + 1)) for s in spatial]
    st_ = [int(rng.integers(1, 4)) for _ in spatial]
    pads = [int(rng.integers(0, kk)) for kk in k] + [int(rng.integers(0, kk)) for kk in k]
    dl = [int(rng.integers(1, 3)) if dilate else 1 for _ in spatial]
    return k, st_, pads, dl, int(rng.integers(0, 2))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_global_avgpool_matches_onnxruntime(dtype):
    rng = np.random.default_rng(21)
    info = np.iinfo(dtype)
    compared = 0
    for trial in range(8):
        hw = [(7, 7), (1, 1), (13, 11), (56, 56), (3, 1), (32, 32), (9, 9), (2, 5)][trial]
        x = rng.integers(info.min, info.max + 1, (2, 257) + hw).astype(dtype)
        sx = F32(rng.uniform(0.005, 0.1))
        sy = F32(sx * rng.choice([1.0, 0.5, 2.0, 1 / 3, 3.0]))
        zx, zy = zp_pick(rng, dtype), zp_pick(rng, dtype)
        want = ort_qpool("QLinearGlobalAveragePool", x, sx, zx, sy, zy, channels_last=0)
        got = np.empty_like(want)
        P.global_avgpool(x, sx, zx, sy, zy, got)
        assert np.array_equal(got, want)
        xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        want_l = ort_qpool("QLinearGlobalAveragePool", xl, sx, zx, sy, zy, channels_last=1)
        assert np.array_equal(np.moveaxis(got, 1, -1), want_l)
        compared += 2 * want.size
    assert compared > 8000


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_avgpool_and_maxpool_match_onnxruntime(dtype):
    """Random 1-D/2-D/3-D geometries with pads, strides, ceil_mode, count_include_pad (and
    dilations for MaxPool); the kernel==image, no-pad case goes through global_avgpool as in ORT."""
    rng = np.random.default_rng(22)
    info = np.iinfo(dtype)
    n_avg = n_max = 0
    for it in range(150):
        ns = 1 + it % 3
        spatial = [int(rng.integers(1, 10)) for _ in range(ns)]
        x = rng.integers(info.min, info.max + 1, [int(rng.integers(1, 3)), int(rng.integers(1, 6))] + spatial).astype(dtype)
        sx = F32(rng.uniform(0.005, 0.05))
        sy = F32(sx * rng.choice([1.0, 0.5, 2.0, 1.5, rng.uniform(0.3, 3)]))
        zx, zy = zp_pick(rng, dtype), zp_pick(rng, dtype)
        k, strides, pads, _, cm = random_geometry(rng, spatial)
        if it % 10 == 0:
            k, pads = list(spatial), [0] * (2 * ns)
        cip = int(rng.integers(0, 2))
        want = ort_qpool("QLinearAveragePool", x, sx, zx, sy, zy, kernel_shape=k, strides=strides, pads=pads,
                         count_include_pad=cip, ceil_mode=cm)
        got = np.empty_like(want)
        P.avgpool(x, sx, zx, sy, zy, k, strides, pads, cip, cm, got)
        assert np.array_equal(got, want), (x.shape, k, strides, pads, cip, cm)
        n_avg += want.size
        k, strides, pads, dl, cm = random_geometry(rng, spatial, dilate=True)
        try:
            want = ort_maxpool(x, kernel_shape=k, strides=strides, pads=pads, dilations=dl, ceil_mode=cm)
        except Exception:
            with pytest.raises(ValueError):
                P.maxpool(x, k, strides, pads, dl, cm, np.empty((1,), dtype))
            continue
        got = np.empty_like(want)
        P.maxpool(x, k, strides, pads, dl, cm, got)
        assert np.array_equal(got, want), (x.shape, k, strides, pads, dl, cm)
        n_max += want.size
    assert n_avg > 3000 and n_max > 3000


def test_maxpool_matches_onnx_reference():
    from onnx.reference import ReferenceEvaluator
    rng = np.random.default_rng(23)
    for it in range(30):
        spatial = [int(rng.integers(3, 9)) for _ in range(2)]
        x = rng.integers(-128, 128, [1, 3] + spatial).astype(np.int8)
        k, strides, pads, dl, cm = random_geometry(rng, spatial, dilate=True)
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=k, strides=strides, pads=pads,
                                dilations=dl, ceil_mode=cm)
        try:
            want = ReferenceEvaluator(node).run(None, {"x": x})[0]
            shape = x.shape[:2] + P.pool_output_shape(spatial, k, strides, pads, dl, cm)
        except (ValueError, RuntimeError):
            continue
        if want.shape != shape:
            continue  # onnx.reference and onnxruntime disagree on this geometry; ORT is the target
        got = np.empty(shape, np.int8)
        P.maxpool(x, k, strides, pads, dl, cm, got)
        assert np.array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), ns=st.integers(1, 3))
def test_pool_kernels_equal_twins(data, dtype, ns):
    spatial = [data.draw(st.integers(1, 7)) for _ in range(ns)]
    x = data.draw(int_array(tuple([data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))] + spatial), dtype))
    k = [data.draw(st.integers(1, s)) for s in spatial]
    strides = [data.draw(st.integers(1, 3)) for _ in spatial]
    pads = [data.draw(st.integers(0, kk - 1)) for kk in k] + [data.draw(st.integers(0, kk - 1)) for kk in k]
    dl = [data.draw(st.integers(1, 2)) for _ in spatial]
    cm, cip = data.draw(st.integers(0, 1)), data.draw(st.integers(0, 1))
    sx = data.draw(st.sampled_from([2.0 ** -6, 2.0 ** -3, 0.0173, 0.5]))
    sy = data.draw(st.sampled_from([2.0 ** -6, 2.0 ** -4, 0.0311, 0.25]))
    zx, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    try:
        shape = x.shape[:2] + P.pool_output_shape(spatial, k, strides, pads, dl, cm)
    except ValueError:
        return
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    P.maxpool(x, k, strides, pads, dl, cm, got)
    P.maxpool_ref(x, k, strides, pads, dl, cm, want)
    assert np.array_equal(got, want)
    shape = x.shape[:2] + P.pool_output_shape(spatial, k, strides, pads, [1] * ns, cm)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    P.avgpool(x, sx, zx, sy, zy, k, strides, pads, cip, cm, got)
    P.avgpool_ref(x, sx, zx, sy, zy, k, strides, pads, cip, cm, want)
    assert np.array_equal(got, want)


def test_bad_input_raises_value_error():
    x = np.zeros((1, 2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="pads"):
        P.maxpool(x, [2, 2], [1, 1], [2, 0, 0, 0], [1, 1], 0, np.empty((1, 2, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="out shape"):
        P.avgpool(x, 0.1, 0, 0.1, 0, [2, 2], [1, 1], [0, 0, 0, 0], 0, 0, np.empty((1, 2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="scale ratio"):
        P.global_avgpool(x, 1.0, 0, 1e-6, 0, np.empty((1, 2, 1, 1), np.uint8))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), glob=st.booleans())
def test_bound_pools_read_their_arrays_at_each_call(data, dtype, glob):
    """bind_avgpool / bind_maxpool_nhwc bind arrays, not values (intsim.frozen replays them):
    after x changes in place, a call equals the twins on the new x."""
    h, w = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    x = data.draw(int_array((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 20)), h, w), dtype))
    k = [h, w] if glob else [data.draw(st.integers(1, h)), data.draw(st.integers(1, w))]
    pads = [0] * 4 if glob else [data.draw(st.integers(0, kk - 1)) for kk in k * 2]
    zx, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    shape = x.shape[:2] + P.pool_output_shape([h, w], k, [1, 1], pads, [1, 1], 0)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    call = P.bind_avgpool(x, 0.0173, zx, 0.0311, zy, k, [1, 1], pads, 1, 0, got)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    goth = np.empty((shape[0],) + shape[2:] + (shape[1],), dtype)
    callh = P.bind_maxpool_nhwc(xh, k, [1, 1], pads, [1, 1], 0, goth)
    for _ in range(2):
        x[...] = data.draw(int_array(x.shape, dtype))
        xh[...] = x.transpose(0, 2, 3, 1)
        call()
        P.avgpool_ref(x, 0.0173, zx, 0.0311, zy, k, [1, 1], pads, 1, 0, want)
        assert np.array_equal(got, want)
        callh()
        P.maxpool_ref(x, k, [1, 1], pads, [1, 1], 0, want)
        assert np.array_equal(goth, want.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("k", [[3, 4], [2, 2]])
def test_avgpool_of_a_strided_view_equals_twin(dtype, k):
    """avgpool (bind_avgpool) on a non-contiguous x, global ([3, 4] = the image) and windowed."""
    info = np.iinfo(dtype)
    x = np.random.default_rng(2).integers(info.min, info.max + 1, (2, 5, 4, 3)).astype(dtype).transpose(0, 1, 3, 2)
    shape = x.shape[:2] + P.pool_output_shape(x.shape[2:], k, [1, 1], [0] * 4, [1, 1], 0)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    P.avgpool(x, 0.02, 3, 0.05, 7, k, [1, 1], [0] * 4, 1, 0, got)
    P.avgpool_ref(x, 0.02, 3, 0.05, 7, k, [1, 1], [0] * 4, 1, 0, want)
    assert np.array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), n=st.integers(1, 3), h=st.integers(1, 9),
       w=st.integers(1, 9), c=st.integers(1, 37))
def test_global_avgpool_channels_last_equals_twin(data, dtype, n, h, w, c):
    """bind_global_avgpool_nhwc on channels-last images equals global_avgpool_ref on their NCHW
    transposes (edge codes, zero points at the ends), and reads its arrays at each call."""
    info = np.iinfo(dtype)
    xh = data.draw(int_array((n, h, w, c), dtype))
    xh.reshape(-1)[0], xh.reshape(-1)[-1] = info.min, info.max
    zx, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    sx, sy = F32(data.draw(st.sampled_from([0.0173, 2.0 ** -7, 0.5]))), F32(data.draw(st.sampled_from([0.0311, 2.0 ** -5])))
    plan = P.global_avgpool_plan(sx, zx, sy, zy, h * w, dtype)
    got, want = np.empty((n, c, 1, 1), dtype), np.empty((n, c, 1, 1), dtype)
    call = P.bind_global_avgpool_nhwc(xh, plan, got)
    for _ in range(2):
        call()
        P.global_avgpool_ref(np.ascontiguousarray(xh.transpose(0, 3, 1, 2)), sx, zx, sy, zy, want)
        assert np.array_equal(got, want)
        xh[...] = data.draw(int_array(xh.shape, dtype))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_global_avgpool_channels_last_past_one_int32_block(dtype):
    """More pixels than one int32 partial sum holds (kernels.pool._GAP_BLOCK), every code at its
    extreme: the int64 total is still exact."""
    info = np.iinfo(dtype)
    hw = P._GAP_BLOCK + 1000
    xh = np.full((1, hw, 1, 2), info.max, dtype)
    xh[0, ::7, 0, 1] = info.min
    plan = P.global_avgpool_plan(F32(1.0), int(info.min), F32(1.0 / 128), 0, hw, dtype)
    got, want = np.empty((1, 2, 1, 1), dtype), np.empty((1, 2, 1, 1), dtype)
    P.bind_global_avgpool_nhwc(xh, plan, got)()
    P.global_avgpool_ref(np.ascontiguousarray(xh.transpose(0, 3, 1, 2)), F32(1.0), int(info.min), F32(1.0 / 128), 0,
                         want)
    assert np.array_equal(got, want)


def test_global_avgpool_channels_last_refuses_bad_arrays():
    plan = P.global_avgpool_plan(F32(0.1), 0, F32(0.1), 0, 6, np.uint8)
    xh = np.zeros((1, 2, 3, 4), np.uint8)
    with pytest.raises(ValueError, match="out must be"):
        P.bind_global_avgpool_nhwc(xh, plan, np.zeros((1, 4), np.uint8))
    with pytest.raises(ValueError, match="planned 6"):
        P.bind_global_avgpool_nhwc(np.zeros((1, 2, 2, 4), np.uint8), plan, np.zeros((1, 4, 1, 1), np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        P.bind_global_avgpool_nhwc(xh.transpose(0, 2, 1, 3), plan, np.zeros((1, 4, 1, 1), np.uint8))
