"""kernels.pool.maxpool (the row/flat-plane fast path and the general kernel) against its
padded-view NumPy twin `maxpool_ref`: random 1-D/2-D geometries, values at the type's ends,
flat-plane shapes (W == stride * OW) and others, the threaded path, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import threads as kernel_threads
from kernels import pool as P
from tests.kernels.strategies import int_array


def run_both(x, k, s, p, dl, cm):
    ns = x.ndim - 2
    shape = x.shape[:2] + P.pool_output_shape(x.shape[2:], k, s, p, dl, cm)
    got, want = np.full(shape, 7, x.dtype), np.full(shape, 9, x.dtype)
    P.maxpool(x, k, s, p, dl, cm, got)
    P.maxpool_ref(x, k, s, p, dl, cm, want)
    assert len(k) == ns
    return got, want


@st.composite
def geometry(draw, ns, max_hw=40):
    spatial = [draw(st.integers(1, max_hw)) for _ in range(ns)]
    k = [draw(st.integers(1, 5)) for _ in range(ns)]
    s = [draw(st.integers(1, 3)) for _ in range(ns)]
    p = [draw(st.integers(0, kk - 1)) for kk in k] + [draw(st.integers(0, kk - 1)) for kk in k]
    return spatial, k, s, p, draw(st.integers(0, 1))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]), ns=st.integers(1, 2))
def test_maxpool_equals_twin(data, dtype, ns):
    spatial, k, s, p, cm = data.draw(geometry(ns))
    try:
        P.pool_output_shape(spatial, k, s, p, [1] * ns, cm)
    except ValueError:
        return
    x = data.draw(int_array(tuple([data.draw(st.integers(1, 5))] + [data.draw(st.integers(1, 3))] + spatial), dtype))
    got, want = run_both(x, k, s, p, [1] * ns, cm)
    assert np.array_equal(got, want)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.int16]), kw=st.integers(1, 5), sw=st.integers(1, 3),
       ow=st.integers(1, 13), kh=st.integers(1, 5), sh=st.integers(1, 3), oh=st.integers(1, 9))
def test_flat_plane_shapes_equal_twin(data, dtype, kw, sw, ow, kh, sh, oh):
    """W == stride * OW: the horizontal windows run as one loop over the whole plane and the
    border columns (windows crossing a row end) are redone; the type's minimum at row ends
    and in the first/last rows would leak if a crossing window were left in place."""
    pw, ph = data.draw(st.integers(0, kw - 1)), data.draw(st.integers(0, kh - 1))
    iw, ih = sw * ow, max(1, sh * oh)
    pad_r = data.draw(st.integers(0, kw - 1))
    p = [ph, pw, data.draw(st.integers(0, kh - 1)), pad_r]
    try:
        osz = P.pool_output_shape([ih, iw], [kh, kw], [sh, sw], p, [1, 1], 0)
    except ValueError:
        return
    info = np.iinfo(dtype)
    x = data.draw(int_array((2, 3, ih, iw), dtype))
    x[:, :, :, 0] = info.max          # a row's first column next to the previous row's last
    x[:, :, 0, :] = data.draw(st.sampled_from([info.min, info.max]))
    got, want = run_both(x, [kh, kw], [sh, sw], p, [1, 1], 0)
    assert np.array_equal(got, want), (osz, iw, sw)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("geom", [((56, 112), [3, 3], [2, 2], [1, 1, 1, 1], 0),
                                  ((24, 24), [2, 2], [2, 2], [0, 0, 0, 0], 0),
                                  ((23, 25), [3, 3], [1, 1], [1, 1, 1, 1], 0),
                                  ((31, 33), [3, 2], [2, 3], [2, 0, 1, 1], 1),
                                  ((4099,), [3], [2], [1, 1], 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_large_inputs_threads_equal_twin(dtype, geom, threads):
    """Above the serial threshold (256 KiB of input) planes are split over threads."""
    spatial, k, s, p, cm = geom
    info = np.iinfo(dtype)
    rng = np.random.default_rng(sum(spatial) + threads)
    planes = -(-(1 << 18) // int(np.prod(spatial))) + 3
    x = rng.integers(info.min, info.max + 1, [planes, 1] + list(spatial)).astype(dtype)
    x[0] = info.min
    x[1] = info.max
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        got, want = run_both(x, k, s, p, [1] * len(k), cm)
    finally:
        kernel_threads.set_num_threads(old)
    assert x.nbytes >= 1 << 18 and np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.int16]), ns=st.integers(1, 3))
def test_dilated_and_3d_equal_twin(data, dtype, ns):
    """Dilations and 3-D pools go through the general kernel."""
    spatial, k, s, p, cm = data.draw(geometry(ns, max_hw=9))
    dl = [data.draw(st.integers(1, 3)) for _ in range(ns)]
    try:
        P.pool_output_shape(spatial, k, s, p, dl, cm)
    except ValueError:
        return
    x = data.draw(int_array(tuple([2, 2] + spatial), dtype))
    got, want = run_both(x, k, s, p, dl, cm)
    assert np.array_equal(got, want)


def test_non_contiguous_input_equals_twin():
    x = np.random.default_rng(3).integers(0, 256, (2, 3, 20, 30)).astype(np.uint8)[:, :, ::2, 1::2]
    got, want = run_both(x, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0)
    assert np.array_equal(got, want)


def test_bad_input_names_the_problem():
    x = np.zeros((1, 2, 6, 6), np.uint8)
    with pytest.raises(ValueError, match="dtype"):
        P.maxpool(x.astype(np.int32), [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 3, 3), np.int32))
    with pytest.raises(ValueError, match="out shape"):
        P.maxpool(x, [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        P.maxpool(x, [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 3, 6), np.uint8)[:, :, :, ::2])
    with pytest.raises(ValueError, match="pads"):
        P.maxpool(x, [2, 2], [1, 1], [2, 0, 0, 0], [1, 1], 0, np.empty((1, 2, 7, 5), np.uint8))


# ------------------------------------------------------------------------------ channels-last
@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]), dilated=st.booleans())
def test_maxpool_nhwc_equals_twin_and_nchw_kernel(data, dtype, dilated):
    """maxpool_nhwc == its twin == the NCHW kernel on the transposes (random 2-D geometries,
    dilations, channels crossing vector widths, values at the type's ends)."""
    spatial, k, s, p, cm = data.draw(geometry(2, max_hw=20))
    dl = [data.draw(st.integers(1, 3)) for _ in range(2)] if dilated else [1, 1]
    try:
        osz = P.pool_output_shape(spatial, k, s, p, dl, cm)
    except ValueError:
        return
    c = data.draw(st.sampled_from([1, 3, 16, 24, 33, 49, 64, 81]))   # 32/16-byte blocks, lanes left
    x = data.draw(int_array((data.draw(st.integers(1, 3)),) + tuple(spatial) + (c,), dtype))
    shape = (x.shape[0],) + osz + (c,)
    got, twin = np.full(shape, 7, dtype), np.full(shape, 9, dtype)
    P.maxpool_nhwc(x, k, s, p, dl, cm, got)
    P.maxpool_nhwc_ref(x, k, s, p, dl, cm, twin)
    nchw = np.empty((x.shape[0], c) + osz, dtype)
    P.maxpool(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), k, s, p, dl, cm, nchw)
    assert np.array_equal(got, twin)
    assert np.array_equal(got, nchw.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("threads", [1, 2])
def test_maxpool_nhwc_threads_equal_twin(threads):
    """ResNet's stem pool (3x3, stride 2, pad 1 on 112x112x64) above the 256 KiB threshold."""
    rng = np.random.default_rng(threads)
    x = rng.integers(0, 256, (2, 112, 112, 64)).astype(np.uint8)
    x[0, :, :, 0] = 255
    got, want = np.empty((2, 56, 56, 64), np.uint8), np.empty((2, 56, 56, 64), np.uint8)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        P.maxpool_nhwc(x, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0, got)
    finally:
        kernel_threads.set_num_threads(old)
    P.maxpool_nhwc_ref(x, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 0, want)
    assert np.array_equal(got, want)


def test_maxpool_nhwc_refuses_bad_input():
    x = np.zeros((1, 6, 6, 2), np.uint8)
    with pytest.raises(ValueError, match="C-contiguous"):
        P.maxpool_nhwc(x[:, :, ::2], [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="out shape"):
        P.maxpool_nhwc(x, [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="pads"):
        P.maxpool_nhwc(x, [2, 2], [1, 1], [2, 0, 0, 0], [1, 1], 0, np.empty((1, 7, 5, 2), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        P.maxpool_nhwc(x.astype(np.int32), [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 3, 3, 2), np.int32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_window_without_taps_gives_the_type_minimum_as_onnxruntime(dtype):
    """kernel 1x2, dilation 2, pads 1 on a 1x1 image: the only window's taps (-1, 1) both lie
    outside the image; onnxruntime starts its max from the type's lowest value and returns it."""
    import onnxruntime as ort
    from onnx import TensorProto, helper
    x = np.full((1, 1, 1, 1), 89, dtype)
    t = TensorProto.INT8 if dtype == np.int8 else TensorProto.UINT8
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 2], pads=[0, 1, 0, 1], dilations=[1, 2])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", t, [1, 1, 1, 1])],
                              [helper.make_tensor_value_info("y", t, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got, twin = np.full((1, 1, 1, 1), 7, dtype), np.full((1, 1, 1, 1), 7, dtype)
    P.maxpool(x, [1, 2], [1, 1], [0, 1, 0, 1], [1, 2], 0, got)
    P.maxpool_ref(x, [1, 2], [1, 1], [0, 1, 0, 1], [1, 2], 0, twin)
    nhwc = np.full((1, 1, 1, 1), 7, dtype)
    P.maxpool_nhwc(x, [1, 2], [1, 1], [0, 1, 0, 1], [1, 2], 0, nhwc)
    assert want.reshape(-1)[0] == np.iinfo(dtype).min
    assert np.array_equal(got, want) and np.array_equal(twin, want) and np.array_equal(nhwc, want)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), k=st.sampled_from([3, 4]),
       ns=st.integers(1, 2), w=st.integers(1, 70))
def test_window_equal_to_stride_equals_twin(data, dtype, k, ns, w):
    """kw == sw == 3 or 4 (MaxPool1d(k) of audio nets): the constant-tap loops of
    kernels.pool._hmax_interior, with and without pads, a tail shorter than a window (W not a
    multiple of k), flat planes (W == k * OW) and ceil_mode, values at the type's ends."""
    pads = [data.draw(st.integers(0, k - 1)) for _ in range(2 * ns)] if data.draw(st.booleans()) else [0] * (2 * ns)
    spatial = ([data.draw(st.integers(1, 6))] if ns == 2 else []) + [w]
    cm = data.draw(st.integers(0, 1))
    try:
        P.pool_output_shape(spatial, [k] * ns, [k] * ns, pads, [1] * ns, cm)
    except ValueError:
        return
    x = data.draw(int_array(tuple([data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))] + spatial), dtype))
    got, want = run_both(x, [k] * ns, [k] * ns, pads, [1] * ns, cm)
    assert np.array_equal(got, want)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]), ns=st.integers(1, 2),
       dilated=st.booleans())
def test_bind_maxpool_equals_twin_on_new_data(data, dtype, ns, dilated):
    """bind_maxpool's call (checked once, the rows kernel bound to x and out) equals maxpool_ref
    on the values x holds at each call."""
    spatial, k, s, p, cm = data.draw(geometry(ns))
    dl = [2] * ns if dilated else [1] * ns
    try:
        shape = P.pool_output_shape(spatial, k, s, p, dl, cm)
    except ValueError:
        return
    x = data.draw(int_array(tuple([data.draw(st.integers(1, 3))] + [data.draw(st.integers(1, 3))] + spatial), dtype))
    x = np.ascontiguousarray(x)
    out, want = np.empty(x.shape[:2] + shape, dtype), np.empty(x.shape[:2] + shape, dtype)
    call = P.bind_maxpool(x, k, s, p, dl, cm, out)
    for _ in range(2):
        call()
        P.maxpool_ref(x, k, s, p, dl, cm, want)
        assert np.array_equal(out, want)
        x[...] = x[..., ::-1]       # new values in the bound array
    with pytest.raises(ValueError):
        P.bind_maxpool(x.T if x.ndim > 1 and x.size > 1 and not x.T.flags.c_contiguous else x.tolist(),
                       k, s, p, dl, cm, out)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]),
       c=st.sampled_from([2, 16, 64, 130]))
def test_bind_maxpool_through_channels_last_equals_twin(data, dtype, c):
    """A bound 2-D NCHW pool on one thread runs channels-last inside (x transposed into its own
    buffer, the channels-last kernel, rows back into out's planes): equal to maxpool_ref on the
    values x holds at each call, with many channels, ceil_mode, pads and values at the type's
    ends."""
    spatial, k, s, p, cm = data.draw(geometry(2, max_hw=20))
    try:
        shape = P.pool_output_shape(spatial, k, s, p, [1, 1], cm)
    except ValueError:
        return
    x = np.ascontiguousarray(data.draw(int_array(tuple([data.draw(st.integers(1, 2)), c] + spatial), dtype)))
    out, want = np.full(x.shape[:2] + shape, 3, dtype), np.empty(x.shape[:2] + shape, dtype)
    call = P.bind_maxpool(x, k, s, p, [1, 1], cm, out)
    for _ in range(2):
        call()
        P.maxpool_ref(x, k, s, p, [1, 1], cm, want)
        assert np.array_equal(out, want)
        x[...] = x[:, ::-1]         # new values in the bound array


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16]), dilated=st.booleans())
def test_1d_pool_channels_last_as_one_row_equals_twin(data, dtype, dilated):
    """A 1-D MaxPool on a signal held channels-last (N, W, C) runs as the 2-D pool of one row
    (intsim.steps.pool.window_2d lifts the window): equal to maxpool_ref on the (N, C, W) signal
    (odd lengths, pads, strides, ceil mode, dilations, values at the type's ends)."""
    from intsim.steps.pool import window_2d
    spatial, k, s, p, cm = data.draw(geometry(1, max_hw=60))
    dl = [data.draw(st.integers(1, 3))] if dilated else [1]
    try:
        osz = P.pool_output_shape(spatial, k, s, p, dl, cm)
    except ValueError:
        return
    c = data.draw(st.sampled_from([1, 3, 8, 16, 32, 33, 48, 64, 71]))
    x = data.draw(int_array((data.draw(st.integers(1, 3)), c) + tuple(spatial), dtype))
    want = np.full(x.shape[:2] + osz, 9, dtype)
    P.maxpool_ref(x, k, s, p, dl, cm, want)
    xh = np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(x.shape[0], 1, spatial[0], c)
    got = np.full((x.shape[0], 1) + osz + (c,), 7, dtype)
    P.maxpool_nhwc(xh, *window_2d(k, s, p, dl), cm, got)
    assert np.array_equal(got[:, 0].transpose(0, 2, 1), want)
