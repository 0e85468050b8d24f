"""kernels.ort_mean (onnxruntime's float32 ReduceMean over trailing axes) against its NumPy twin
and against onnxruntime itself: random leading/trailing shapes (rows crossing every 16-byte
alignment, rows shorter than a packet, longer than two), magnitudes that make the summation
order visible, and bad input."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

from kernels import ort_mean as M


def aligned(shape):
    """A C-contiguous float32 array of `shape` whose buffer starts on 64 bytes (as onnxruntime's
    allocator places an intermediate tensor)."""
    n = int(np.prod(shape))
    buf = np.empty(n + 16, np.float32)
    off = (-buf.ctypes.data % 64) // 4
    return buf[off:off + n].reshape(shape)


def ort_reduce_mean(x, axes):
    g = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], axes=list(axes), keepdims=0)], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(),
                                so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@st.composite
def rows_case(draw):
    lead = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=2)))
    tail = tuple(draw(st.lists(st.integers(1, 37), min_size=1, max_size=2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["normal", "mixed", "dequantized", "ends"]))
    shape = lead + tail
    if mode == "normal":
        v = rng.standard_normal(shape)
    elif mode == "mixed":           # magnitudes 1e-3..1e5: a different order gives other bits
        v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 6, shape)
    elif mode == "dequantized":     # what a DQ -> ReduceMean -> Q tail sees
        v = (rng.integers(0, 256, shape) - int(rng.integers(0, 256))) * float(np.float32(rng.uniform(1e-3, 1.0)))
    else:
        v = rng.choice(np.array([0.0, -3.4e38, 3.4e38, 1e-45, -1.0, 16777217.0]), shape)
    x = aligned(shape)
    x[...] = v.astype(np.float32)
    return x, len(tail)


@settings(max_examples=150, deadline=None)
@given(case=rows_case())
def test_kernel_equals_twin(case):
    x, k = case
    n = int(np.prod(x.shape[-k:]))
    got, want = np.full(x.size // n, 7, np.float32), np.full(x.size // n, 9, np.float32)
    M.ort_mean_rows(x, n, got)
    M.ort_mean_rows_ref(x, n, want)
    assert np.array_equal(got.view(np.int32), want.view(np.int32))


@settings(max_examples=60, deadline=None)
@given(case=rows_case())
def test_kernel_equals_onnxruntime(case):
    x, k = case
    n = int(np.prod(x.shape[-k:]))
    got = np.empty(x.size // n, np.float32)
    M.ort_mean_rows(x, n, got)
    want = ort_reduce_mean(x, range(x.ndim - k, x.ndim)).reshape(-1)
    assert np.array_equal(got.view(np.int32), want.view(np.int32)), (x.shape, k)


def test_order_is_visible():
    """A row where a plain left-to-right sum differs from onnxruntime's: the test above can fail."""
    x = aligned((1, 14))
    x[0] = [1e8, 1.0, -1e8, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    got = np.empty(1, np.float32)
    M.ort_mean_rows(x, 14, got)
    plain = np.float32(0)
    for v in x[0]:
        plain = np.float32(plain + v)
    assert got[0] == ort_reduce_mean(x, [1])[0]
    assert got[0] != np.float32(plain / np.float32(14))


def test_refuses_bad_input():
    with pytest.raises(ValueError):
        M.ort_mean_rows(np.zeros((2, 5), np.float64), 5, np.empty(2, np.float32))
    with pytest.raises(ValueError):
        M.ort_mean_rows(np.zeros((2, 5), np.float32), 3, np.empty(3, np.float32))
    with pytest.raises(ValueError):
        M.ort_mean_rows(np.zeros((2, 5), np.float32), 5, np.empty(3, np.float32))
    with pytest.raises(ValueError):
        M.ort_mean_rows(np.zeros((2, 10), np.float32)[:, ::2], 5, np.empty(2, np.float32))
