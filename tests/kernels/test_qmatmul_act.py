"""kernels.qmatmul_act (QLinearMatMul of two activations, onnxruntime's float requantization)
against its NumPy int64 twin (hypothesis: edge codes, zero points at the ends, odd shapes,
per-column multipliers, biases, the threaded split), and its refusals."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import qmatmul_act as Q
from kernels.requant import ort_multiplier
from tests.kernels.strategies import int_array, zero_point

BYTES = [np.uint8, np.int8]
scales = st.sampled_from([2.0 ** -k for k in range(0, 12)]) | st.floats(2.0 ** -14, 4.0, width=32)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), a_dt=st.sampled_from(BYTES), b_dt=st.sampled_from(BYTES), y_dt=st.sampled_from(BYTES),
       p=st.integers(1, 5), m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 11),
       per_col=st.booleans(), threads=st.sampled_from([1, 2]))
def test_qlinear_matmul_act_equals_twin(data, a_dt, b_dt, y_dt, p, m, k, n, per_col, threads):
    a = data.draw(int_array((p, m, k), a_dt))
    b = data.draw(int_array((p, k, n), b_dt))
    za, zb, zy = data.draw(zero_point(a_dt)), data.draw(zero_point(b_dt)), data.draw(zero_point(y_dt))
    sa, sy = data.draw(scales), data.draw(scales)
    sb = np.array([data.draw(scales) for _ in range(n if per_col else 1)], np.float32)
    mult = np.ascontiguousarray(np.broadcast_to(ort_multiplier(sa, sb, sy).reshape(-1), (n,)), np.float32)
    bias = np.array(data.draw(st.lists(st.sampled_from([0, 0, -(2**20), 2**20 - 1]) | st.integers(-5000, 5000),
                                       min_size=n, max_size=n)), np.int32)
    info = np.iinfo(y_dt)
    lo = data.draw(st.sampled_from([int(info.min), int(info.min) + 3]))
    hi = data.draw(st.sampled_from([int(info.max), int(info.max) - 5]))
    got, want = np.empty((p, m, n), y_dt), np.empty((p, m, n), y_dt)
    old = Q.PAR_MACS
    Q.PAR_MACS = 1          # exercise the parallel region on small shapes too
    try:
        Q.qlinear_matmul_act(a, za, b, zb, bias, mult, zy, lo, hi, got, threads=threads)
    finally:
        Q.PAR_MACS = old
    Q.qlinear_matmul_act_ref(a, za, b, zb, bias, mult, zy, lo, hi, want)
    np.testing.assert_array_equal(got, want)


def test_qlinear_matmul_act_large_sums_round_as_float32():
    """|acc| past 2**24 (f32(acc) rounds) at K near the int32 limit of the wrapper's check."""
    k = 30000
    a = np.full((1, 2, k), 255, np.uint8)
    b = np.full((1, k, 3), 0, np.uint8)
    b[0, :, 1] = 255
    mult = np.array([1e-9, 3.7e-9, 2.0**-27], np.float32)
    got, want = np.empty((1, 2, 3), np.uint8), np.empty((1, 2, 3), np.uint8)
    bias = np.zeros(3, np.int32)
    Q.qlinear_matmul_act(a, 0, b, 128, bias, mult, 7, 0, 255, got)
    Q.qlinear_matmul_act_ref(a, 0, b, 128, bias, mult, 7, 0, 255, want)
    np.testing.assert_array_equal(got, want)


def test_qlinear_matmul_act_refuses():
    a, b = np.zeros((2, 3, 4), np.uint8), np.zeros((2, 4, 5), np.uint8)
    bias, mult, out = np.zeros(5, np.int32), np.ones(5, np.float32), np.empty((2, 3, 5), np.uint8)
    with pytest.raises(ValueError, match="int32"):     # K * 255 * 255 past int32
        Q.qlinear_matmul_act(np.zeros((1, 1, 40000), np.uint8), 0, np.zeros((1, 40000, 5), np.uint8), 255, bias,
                             mult, 0, 0, 255, np.empty((1, 1, 5), np.uint8))
    with pytest.raises(ValueError, match="fit"):
        Q.qlinear_matmul_act(a, 0, np.zeros((2, 3, 5), np.uint8), 0, bias, mult, 0, 0, 255, out)
    with pytest.raises(ValueError, match="non-finite"):
        Q.qlinear_matmul_act(a, 0, b, 0, bias, np.full(5, np.inf, np.float32), 0, 0, 255, out)
    with pytest.raises(ValueError, match="range"):
        Q.qlinear_matmul_act(a, 0, b, 0, bias, mult, 0, 10, 300, out)
    with pytest.raises(ValueError, match="C-contiguous"):
        Q.qlinear_matmul_act(a.astype(np.int16), 0, b, 0, bias, mult, 0, 0, 255, out)
