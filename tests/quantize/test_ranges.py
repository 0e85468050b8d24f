import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from intsim.errors import QuantParamError
from intsim.ir import IntType
from intsim.quantize import pow2, ranges

finite = st.floats(-8, 8, allow_nan=False, width=32)
weights = hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=finite)


def _with_outlier(w, k):
    w = w.copy()
    w.flat[k % w.size] *= 50
    return w


@given(weights, st.integers(2, 8), st.sampled_from(["affine", "pow2"]), st.booleans(), st.integers(0, 50))
@settings(max_examples=150, deadline=None)
@example(np.array([[0.0, 1e-45]], np.float32), 2, "pow2", False, 0)   # min-max step 2**-149: no finer pow2
@example(np.array([[1e-45]], np.float32), 8, "pow2", True, 0)
def test_msqe_never_worse_than_minmax(w, bits, kind, per_channel, k):
    w = _with_outlier(w, k)
    axis = 0 if per_channel else None
    t = IntType(bits, True)
    s_mm = ranges.choose_weight_scale(w, bits, kind, axis, "minmax")
    s_ms = ranges.choose_weight_scale(w, bits, kind, axis, "msqe")
    assert ranges.weight_msqe(w, s_ms, axis, t) <= ranges.weight_msqe(w, s_mm, axis, t)
    if kind == "pow2":
        assert pow2.is_pow2(s_ms) and pow2.is_pow2(s_mm)


@given(weights, st.integers(2, 8), st.sampled_from(["affine", "pow2"]), st.booleans())
@settings(max_examples=100, deadline=None)
def test_minmax_never_clips(w, bits, kind, per_channel):
    axis = 0 if per_channel else None
    t = IntType(bits, True)
    s = ranges.choose_weight_scale(w, bits, kind, axis, "minmax")
    r = ranges.rows(w, axis)
    q = ranges.quantize_rows(r, np.broadcast_to(np.asarray(s).reshape(-1), (r.shape[0],)), t)
    step = np.broadcast_to(np.asarray(s, np.float64).reshape(-1, 1), r.shape)
    assert np.all(np.abs(q * step - r) <= step / 2 + 1e-12 * np.abs(r))
    assert q.min() >= t.qmin and q.max() <= t.qmax


def test_percentile_100_is_minmax():
    w = np.random.default_rng(0).normal(size=(4, 30)).astype(np.float32)
    for kind in ("affine", "pow2"):
        assert np.array_equal(ranges.choose_weight_scale(w, 4, kind, 0, "percentile:100"),
                              ranges.choose_weight_scale(w, 4, kind, 0, "minmax"))


@given(st.integers(0, 1000), st.sampled_from(["affine", "pow2"]), st.booleans(), st.integers(2, 8))
@settings(max_examples=50, deadline=None)
def test_mse_output_never_worse_output_error_than_minmax(seed, kind, per_channel, bits):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 7)) @ rng.normal(size=(7, 7))      # correlated inputs
    w = rng.normal(size=(3, 7)).astype(np.float32)
    hess = (x.T @ x / len(x))[None]
    axis = 0 if per_channel else None
    t = IntType(bits, True)

    def out_err(s):
        s = np.broadcast_to(np.asarray(s, np.float64).reshape(-1), (3,))
        d = ranges.quantize_rows(w.astype(np.float64), s, t) * s[:, None] - w
        return float(np.sum((x @ d.T) ** 2) / len(x))     # explicit, not via hess

    s_mo = ranges.choose_weight_scale(w, bits, kind, axis, "mse-output", hess)
    s_mm = ranges.choose_weight_scale(w, bits, kind, axis, "minmax")
    assert out_err(s_mo) <= out_err(s_mm) * (1 + 1e-9)


def test_mse_output_needs_statistics():
    with pytest.raises(QuantParamError):
        ranges.choose_weight_scale(np.ones((2, 2), np.float32), 8, "affine", None, "mse-output")


@pytest.mark.parametrize("bad", ["max", "percentile", "percentile:x", "percentile:20", "msqe:3"])
def test_bad_method_raises(bad):
    with pytest.raises(QuantParamError):
        ranges.parse_method(bad)


@pytest.mark.parametrize("bits", [1, 9])
def test_bad_weight_bits(bits):
    with pytest.raises(QuantParamError):
        ranges.choose_weight_scale(np.ones((2, 2), np.float32), bits)


@given(st.floats(-100, 0, width=32), st.floats(0, 100, width=32), st.sampled_from([8, 16]),
       st.sampled_from(["affine", "pow2"]), st.booleans())
@settings(max_examples=200, deadline=None)
def test_act_params_cover_range(lo, hi, bits, kind, symmetric):
    t = IntType(bits, True)
    s, zp = ranges.act_params(lo, hi, t, kind, symmetric)
    assert t.qmin <= zp <= t.qmax and s > 0
    if kind == "pow2":
        assert pow2.is_pow2(s)
    if lo >= 0:
        assert zp == t.qmin
    elif symmetric:
        assert zp == 0
    # the representable range reaches the ends up to half a step (zero point rounding)
    assert float(s) * (t.qmax - zp) >= hi - float(s) / 2
    assert float(s) * (t.qmin - zp) <= lo + float(s) / 2


def test_act_msqe_not_worse_than_minmax():
    v = np.concatenate([np.random.default_rng(0).normal(size=5000), [40.0]]).astype(np.float32)
    t = IntType(8, True)
    for kind in ("affine", "pow2"):
        a = ranges.choose_act_params(v, 8, kind, False, "minmax")
        b = ranges.choose_act_params(v, 8, kind, False, "msqe")
        e = lambda p: np.mean((ranges.fake_quant(v, p[0], p[1], t) - v) ** 2)  # noqa: E731
        assert e(b) <= e(a)
