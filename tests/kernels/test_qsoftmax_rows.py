"""kernels.qsoftmax.softmax_rows (onnxruntime's QlinearSoftmaxCPU rows, jitted) against its
NumPy twin softmax_rows_ref (hypothesis: uint8 and int8 codes at the ends, zero points at the
ends, odd row lengths, output scales down to denormals), and its refusals."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import qsoftmax as S
from tests.kernels.strategies import int_array, zero_point


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dt=st.sampled_from([np.uint8, np.int8]), r=st.integers(1, 9), d=st.integers(1, 300),
       xs=st.sampled_from([0.05, 0.1237, 0.4, 1.0, 8.0]) | st.floats(2.0**-13, 20.0, width=32),
       ys=st.sampled_from([1 / 256, 1 / 200, 1 / 300, 1.0, 0.75, 2.0**-70, 1.1e-44])
       | st.floats(2.0**-20, 2.0, width=32))
def test_softmax_rows_equals_twin(data, dt, r, d, xs, ys):
    x = data.draw(int_array((r, d), dt))
    zy = data.draw(zero_point(dt))
    tab = S.softmax_table(xs, d, dt == np.int8)
    y = S.big_y(ys)
    got, want = np.empty((r, d), dt), np.empty((r, d), dt)
    S.softmax_rows(x, tab, y, zy, got)
    S.softmax_rows_ref(x, tab, y, zy, want)
    np.testing.assert_array_equal(got, want)
    # and the ONNX-level entry point (which builds Y itself) agrees
    np.testing.assert_array_equal(S.qlinear_softmax_rows(x, tab, ys, zy), want)


def test_softmax_rows_non_contiguous_out():
    x = np.arange(24, dtype=np.uint8).reshape(4, 6)
    tab = S.softmax_table(0.1, 6, False)
    big = np.zeros((4, 12), np.uint8)
    S.softmax_rows(x, tab, S.big_y(1 / 256), 0, big[:, ::2])
    want = np.empty((4, 6), np.uint8)
    S.softmax_rows_ref(x, tab, S.big_y(1 / 256), 0, want)
    np.testing.assert_array_equal(big[:, ::2], want)


def test_softmax_rows_refuses():
    tab = S.softmax_table(0.1, 4, False)
    with pytest.raises(ValueError, match="2-D"):
        S.softmax_rows(np.zeros((2, 2, 2), np.uint8), tab, S.big_y(1 / 256), 0, np.empty((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="out"):
        S.softmax_rows(np.zeros((2, 4), np.uint8), tab, S.big_y(1 / 256), 0, np.empty((2, 4), np.int8))
    with pytest.raises(ValueError, match="table"):
        S.softmax_rows(np.zeros((2, 4), np.uint8), tab[:10], S.big_y(1 / 256), 0, np.empty((2, 4), np.uint8))
