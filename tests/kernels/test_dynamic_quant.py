"""kernels.dynamic_quant (DynamicQuantizeLinear's code pass, jitted) against its NumPy twin and
against the step's NumPy reference (intsim.steps.quant.dynamic_quantize), hypothesis: normal,
tiny, huge and all-zero tensors, exact halves (ties), infinities and NaNs (reported, then the
step takes the NumPy path)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import dynamic_quant as D
from intsim.steps import quant
from tests.kernels.strategies import FLOAT_KINDS, float_tensor


@st.composite
def tensors(draw):
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(FLOAT_KINDS))
    return float_tensor(rng, n, kind, special=draw(st.sampled_from([np.inf, -np.inf, np.nan])))


@settings(max_examples=300, deadline=None)
@given(x=tensors())
def test_dynamic_quantize_codes_equal_twin_and_reference(x):
    with np.errstate(all="ignore"):
        scale, zp = quant.dynamic_params(x)
        if scale == 0:
            return
        got, want = np.empty(x.shape, np.uint8), np.empty(x.shape, np.uint8)
        nans = D.dynamic_quantize_codes(x, scale, np.float32(zp), got)
        assert nans == D.dynamic_quantize_codes_ref(x, scale, np.float32(zp), want)
        ok = ~np.isnan(np.rint(x / scale) + np.float32(zp))
        np.testing.assert_array_equal(got[ok], want[ok])
        ref, s, z = quant.dynamic_quantize(x)
        assert (s, z) == (scale, zp)
        np.testing.assert_array_equal(got[ok], ref[ok])


@settings(max_examples=300, deadline=None)
@given(x=tensors(), rows=st.integers(1, 3))
def test_dynamic_quantize_rows_equal_twin_and_step(x, rows):
    """The one-call range, (scale, zp) and codes: 1 exactly where the step's NumPy path must run
    (a NaN or infinity, a zero scale), else the step's reference codes, scale and zero point."""
    x = np.ascontiguousarray(np.tile(x, rows).reshape(rows, -1))
    got, want = np.empty(x.shape, np.uint8), np.empty(x.shape, np.uint8)
    gp, wp = np.empty(2, np.float32), np.empty(2, np.float32)
    with np.errstate(all="ignore"):
        status = D.dynamic_quantize_rows(x, got, gp)
        assert status == D.dynamic_quantize_rows_ref(x, want, wp)
        scale, _ = quant.dynamic_params(x) if np.isfinite(x).all() else (None, None)
        assert status == (0 if scale is not None and scale != 0 else 1)
        if status:
            return
        ref, s, z = quant.dynamic_quantize(x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, ref)
    assert (gp[0], gp[1]) == (wp[0], wp[1]) == (s, np.float32(z))
    bound_out = np.empty(x.shape, np.uint8)
    bound_params = np.empty(2, np.float32)
    call = D.bind_dynamic_quantize_rows(x, bound_out, bound_params)
    assert call(x) == 0
    np.testing.assert_array_equal(bound_out, ref)


def test_dynamic_quantize_rows_signed_zeros_and_extremes():
    """-0.0 bounds count as +0.0 (as Python's min(0.0, -0.0)); float32's extremes and subnormals."""
    fmax, tiny = np.finfo(np.float32).max, np.float32(1e-45)
    for x in ([-0.0, -0.0], [-0.0, 1.0], [0.0, -0.0, -2.0], [fmax, -fmax], [tiny, -tiny], [fmax, 1.0],
              [-fmax, -1.0], [3.0, 3.0], [-7.5, 0.0, 12.25]):
        x = np.array(x, np.float32).reshape(1, -1)
        got, gp = np.empty(x.shape, np.uint8), np.empty(2, np.float32)
        with np.errstate(all="ignore"):
            status = D.dynamic_quantize_rows(x, got, gp)
            scale, _ = quant.dynamic_params(x)
            assert status == (0 if scale != 0 else 1), x
            if status:
                continue
            ref, s, z = quant.dynamic_quantize(x)
        np.testing.assert_array_equal(got, ref)
        assert (gp[0], gp[1]) == (s, np.float32(z)), x


@st.composite
def epilogues(draw):
    m, n = draw(st.integers(1, 9)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lim = draw(st.sampled_from([2**7, 2**24 + 3, 2**31 - 1]))     # past 2**24: Cast rounds
    raw = rng.integers(-lim, lim, (m, n), endpoint=True).astype(np.int32)
    raw.flat[0] = draw(st.sampled_from([-lim, lim, 0]))
    col_sum = rng.integers(-2**16, 2**16, n).astype(np.int64)
    a_zp = draw(st.sampled_from([0, 1, 128, 255]))
    b_scale = (rng.uniform(1e-4, 0.1, draw(st.sampled_from([1, n])))).astype(np.float32)
    bias = rng.standard_normal(draw(st.sampled_from([0, n]))).astype(np.float32) * np.float32(5)
    a_scale = np.float32(draw(st.sampled_from([1.0, 0.0123, 3.3e-3, 1e-30])))
    return raw, a_zp, col_sum, a_scale, b_scale, bias


@settings(max_examples=300, deadline=None)
@given(case=epilogues())
def test_dequantize_int_matmul_equals_twin_and_graph_ops(case):
    """The fused epilogue equals its twin and the graph's own float32 nodes written out: Cast,
    Mul(a_scale, b_scale), Mul, Add (NumPy ufuncs, one rounding each)."""
    raw, a_zp, col_sum, a_scale, b_scale, bias = case
    got, twin = np.empty(raw.shape, np.float32), np.empty(raw.shape, np.float32)
    D.dequantize_int_matmul(raw, a_zp, col_sum, a_scale, b_scale, bias, got)
    D.dequantize_int_matmul_ref(raw, a_zp, col_sum, a_scale, b_scale, bias, twin)
    acc = (raw.astype(np.int64) - a_zp * col_sum).astype(np.int32)        # MatMulInteger's int32 (wraps)
    y = np.multiply(acc.astype(np.float32), np.multiply(a_scale, b_scale.reshape(-1) if b_scale.size > 1
                                                        else b_scale.reshape(())))
    if bias.size:
        y = np.add(y, bias)
    np.testing.assert_array_equal(got.view(np.int32), twin.view(np.int32))
    np.testing.assert_array_equal(got.view(np.int32), y.view(np.int32))
    bound = np.empty(raw.shape, np.float32)
    D.bind_dequantize_int_matmul(raw, col_sum, b_scale, bias, bound)(np.int64(a_zp), a_scale)
    np.testing.assert_array_equal(bound.view(np.int32), y.view(np.int32))


def test_dequantize_int_matmul_rejects_bad_arrays():
    raw, out = np.zeros((2, 3), np.int32), np.zeros((2, 3), np.float32)
    ok = dict(col_sum=np.zeros(3, np.int64), b_scale=np.ones(1, np.float32), bias=np.zeros(0, np.float32))
    for name, bad in [("col_sum", np.zeros(2, np.int64)), ("b_scale", np.ones(2, np.float32)),
                      ("bias", np.zeros(3, np.float64))]:
        args = dict(ok, **{name: bad})
        with pytest.raises(ValueError, match=name):
            D.dequantize_int_matmul(raw, 0, args["col_sum"], np.float32(1), args["b_scale"], args["bias"], out)
    with pytest.raises(ValueError, match="raw"):
        D.dequantize_int_matmul(raw.astype(np.int64), 0, ok["col_sum"], np.float32(1), ok["b_scale"], ok["bias"], out)
