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


@st.composite
def cols_case(draw):
    """(x, axes, lead, k, n): a float32 tensor and contiguous axes [a, b) not reaching its end,
    with k >= 2 rows of n >= 2 columns (size-1 axes anywhere)."""
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=2, max_size=4)))
    r = len(shape)
    a = draw(st.integers(0, r - 2))
    b = draw(st.integers(a + 1, r - 1))
    lead, k, n = int(np.prod(shape[:a])), int(np.prod(shape[a:b])), int(np.prod(shape[b:]))
    if k < 2 or n < 2:
        shape, a, b, k, n = (draw(st.integers(1, 3)), 6, 5), 1, 2, 6, 5
        lead = shape[0]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["normal", "mixed", "dequantized", "ends"]))
    if mode == "normal":
        v = rng.standard_normal(shape)
    elif mode == "mixed":
        v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 6, shape)
    elif mode == "dequantized":
        v = (rng.integers(0, 256, shape) - int(rng.integers(0, 256))) * float(np.float32(rng.uniform(1e-3, 1.0)))
    else:
        v = rng.choice(np.array([0.0, -0.0, -3.4e38, 3.4e38, 1e-45, -1.0, 16777217.0, np.inf]), shape)
    x = aligned(shape)
    x[...] = v.astype(np.float32)
    return x, list(range(a, b)), lead, k, n


def _same(got, want):
    return np.array_equal(got.view(np.int32), want.view(np.int32)) or \
        (np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(got, want, equal_nan=True))


@settings(max_examples=150, deadline=None)
@given(case=cols_case())
def test_cols_kernel_equals_twin(case):
    x, _, lead, k, n = case
    got, want = np.full(lead * n, 7, np.float32), np.full(lead * n, 9, np.float32)
    M.ort_mean_cols(x, lead, k, n, got)
    M.ort_mean_cols_ref(x, lead, k, n, want)
    assert _same(got, want)


@settings(max_examples=80, deadline=None)
@given(case=cols_case())
def test_cols_kernel_equals_onnxruntime(case):
    x, axes, lead, k, n = case
    got = np.empty(lead * n, np.float32)
    M.ort_mean_cols(x, lead, k, n, got)
    assert _same(got, ort_reduce_mean(x, axes).reshape(-1)), (x.shape, axes)


def test_cols_order_is_visible():
    """The encoder's tail, (8, 32, 128) over the tokens: a plain sum down each column (right for
    one block, onnxruntime's RK) differs from onnxruntime's blocks of 4 rows (KRK) at batch 8."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((8, 32, 128)) * 10.0 ** rng.integers(-3, 6, (8, 32, 128))).astype(np.float32)
    want = ort_reduce_mean(x, [1])
    got = np.empty((8, 128), np.float32)
    M.ort_mean_cols(x, 8, 32, 128, got)
    assert np.array_equal(got, want)
    plain = x[:, 0].copy()
    for r in range(1, 32):
        plain = plain + x[:, r]
    assert not np.array_equal(plain / np.float32(32), want)
    one = np.empty((1, 128), np.float32)      # one block: the plain order is onnxruntime's
    M.ort_mean_cols(x[:1].copy(), 1, 32, 128, one)
    assert np.array_equal(one, ort_reduce_mean(x[:1].copy(), [1]))
    assert np.array_equal(one, plain[:1] / np.float32(32))


def test_cols_refuses_bad_input():
    with pytest.raises(ValueError):
        M.ort_mean_cols(np.zeros((2, 3, 4), np.float64), 2, 3, 4, np.empty(8, np.float32))
    with pytest.raises(ValueError):
        M.ort_mean_cols(np.zeros((2, 3, 1), np.float32), 2, 3, 1, np.empty(2, np.float32))
    with pytest.raises(ValueError):
        M.ort_mean_cols(np.zeros((2, 3, 4), np.float32), 2, 3, 4, np.empty(7, np.float32))
