"""kernels.eltwise.qlinear_mul_planned (same-shape QLinearMul, constants validated once, the
vectorized loop) against qlinear_mul's own NumPy twin and its planned twin (hypothesis: codes
and zero points at the ends, scale ratios large enough that cvt leaves int32), and the bound
call."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import eltwise as E
from tests.kernels.strategies import int_array, zero_point

scales = (st.sampled_from([2.0 ** -k for k in range(0, 10)]) | st.floats(2.0 ** -13, 8.0, width=32)
          | st.sampled_from([1e6, 3e7, 1e-7, 2.0 ** -30]))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint8, np.int8]), n=st.integers(1, 300))
def test_mul_planned_equals_twins(data, dtype, n):
    info = np.iinfo(dtype)
    a, b = data.draw(int_array((n,), dtype)), data.draw(int_array((n,), dtype))
    za, zb, zy = data.draw(zero_point(dtype)), data.draw(zero_point(dtype)), data.draw(zero_point(dtype))
    sa, sb, sy = data.draw(scales), data.draw(scales), data.draw(scales)
    lo = data.draw(st.sampled_from([int(info.min), int(info.min) + 7]))
    hi = data.draw(st.sampled_from([int(info.max), int(info.max) - 3]))
    plan = E.mul_plan(sa, za, sb, zb, sy, zy, lo, hi, dtype)
    got, twin, ref, bound = (np.empty(n, dtype) for _ in range(4))
    E.qlinear_mul_planned(a, b, plan, got)
    E.qlinear_mul_planned_ref(a, b, plan, twin)
    E.qlinear_mul_ref(a, sa, za, b, sb, zb, sy, zy, lo, hi, ref)
    E.bind_mul_planned(a, b, plan, bound)()
    np.testing.assert_array_equal(got, twin)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, bound)


def test_mul_planned_refuses():
    plan = E.mul_plan(0.1, 0, 0.2, 0, 0.3, 0, 0, 255, np.uint8)
    a = np.zeros(4, np.uint8)
    with pytest.raises(ValueError, match="one shape"):
        E.qlinear_mul_planned(a, np.zeros(5, np.uint8), plan, np.empty(4, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        E.qlinear_mul_planned(a.astype(np.int8), a, plan, np.empty(4, np.uint8))
    with pytest.raises(ValueError, match="zero point"):
        E.mul_plan(0.1, 300, 0.2, 0, 0.3, 0, 0, 255, np.uint8)
