import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from intsim.errors import QuantParamError
from intsim.quantize import pow2


@given(st.integers(-126, 149))
@settings(max_examples=100, deadline=None)
def test_pow2_scale_is_exact_power_of_two(e):
    s = pow2.pow2_scale(e)
    assert s.dtype == np.float32
    assert float(s) == 2.0 ** -e
    assert pow2.is_pow2(s) and int(pow2.exponent_of(s)) == e


@given(st.floats(1e-30, 1e30, allow_nan=False, allow_infinity=False))
@settings(max_examples=200, deadline=None)
def test_ceil_exponent_brackets_target(t):
    e = int(pow2.ceil_exponent(t))
    assert 2.0 ** -e >= t > 2.0 ** -(e + 1)


@pytest.mark.parametrize("absmax,qmax", [(1.0, 127), (127.0, 127), (0.5, 7), (3.0, 1), (1e-3, 127)])
def test_minmax_exponent_covers_without_wasting(absmax, qmax):
    e = int(pow2.minmax_exponent(absmax, qmax))
    assert 2.0 ** -e * qmax >= absmax > 2.0 ** -(e + 1) * qmax


def test_zero_range_gets_exponent_zero():
    assert int(pow2.minmax_exponent(0.0, 127)) == 0


def test_not_pow2_rejected():
    assert not pow2.is_pow2(np.float32(0.3))
    assert not pow2.is_pow2(np.array([0.5, 0.0], np.float32))
    with pytest.raises(QuantParamError):
        pow2.exponent_of(np.float32(3.0))
    with pytest.raises(QuantParamError):
        pow2.pow2_scale(200)
