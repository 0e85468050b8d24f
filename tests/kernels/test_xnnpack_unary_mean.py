"""kernels.xnnpack_mean and kernels.xnnpack_unary equal their one-element twins (hypothesis;
edge codes, zero points at the ends). The interpreter comparison is in tests/tflite."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels import xnnpack_mean as xm
from kernels import xnnpack_unary as xu

scales = st.floats(2.0 ** -14, 4.0, allow_nan=False, width=32)
zps8 = st.sampled_from([-128, 127, 0, -8, 7]) | st.integers(-128, 127)


@settings(max_examples=200, deadline=None)
@given(sums=st.lists(st.integers(-128 * 4096, 127 * 4096), min_size=1, max_size=40), n=st.integers(1, 4096),
       sx=scales, zx=zps8, sy=scales, zy=zps8, unsigned=st.booleans(), op=st.sampled_from(["mean", "sum"]))
def test_xnn_mean_equals_twin(sums, n, sx, zx, sy, zy, unsigned, op):
    """MEAN's and SUM's parameters (mean_params, sum_params) through the same conversion."""
    dtype = np.uint8 if unsigned else np.int8
    params = xm.mean_params if op == "mean" else xm.sum_params
    s, zp = params(sx, zx + 128 * unsigned, sy, zy + 128 * unsigned, n)
    acc = np.array(sums, np.int64).reshape(1, -1, 1, 1)
    out, twin = np.empty(acc.shape, dtype), np.empty(acc.shape, dtype)
    xm.xnn_mean(acc, s, zp, out)
    xm.xnn_mean_ref(acc, s, zp, twin)
    np.testing.assert_array_equal(out, twin)


@settings(max_examples=200, deadline=None)
@given(sx=scales, zx=zps8, sy=scales, zy=zps8, alpha=st.floats(0.0, 4.0, width=32), unsigned=st.booleans())
def test_lrelu_table_equals_twin(sx, zx, sy, zy, alpha, unsigned):
    dtype, off = (np.uint8, 128) if unsigned else (np.int8, 0)
    np.testing.assert_array_equal(xu.lrelu_table(sx, zx + off, sy, zy + off, alpha, dtype),
                                  xu.lrelu_table_ref(sx, zx + off, sy, zy + off, alpha, dtype))
