"""kernels.pool.maxpool (the row/flat-plane fast path and the general kernel) against its
padded-view NumPy twin `maxpool_ref`: random 1-D/2-D geometries, values at the type's ends,
flat-plane shapes (W == stride * OW) and others, the threaded path, and bad input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import fast_gemm
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
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), ns=st.integers(1, 2))
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
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), kw=st.integers(1, 5), sw=st.integers(1, 3),
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
    old = fast_gemm.get_num_threads()
    fast_gemm.set_num_threads(threads)
    try:
        got, want = run_both(x, k, s, p, [1] * len(k), cm)
    finally:
        fast_gemm.set_num_threads(old)
    assert x.nbytes >= 1 << 18 and np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), ns=st.integers(1, 3))
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
        P.maxpool(x.astype(np.int16), [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 3, 3), np.int16))
    with pytest.raises(ValueError, match="out shape"):
        P.maxpool(x, [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="C-contiguous"):
        P.maxpool(x, [2, 2], [2, 2], [0] * 4, [1, 1], 0, np.empty((1, 2, 3, 6), np.uint8)[:, :, :, ::2])
    with pytest.raises(ValueError, match="pads"):
        P.maxpool(x, [2, 2], [1, 1], [2, 0, 0, 0], [1, 1], 0, np.empty((1, 2, 7, 5), np.uint8))
