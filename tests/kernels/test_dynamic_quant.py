"""kernels.dynamic_quant (DynamicQuantizeLinear's code pass, jitted) against its NumPy twin and
against the step's NumPy reference (intsim.steps.quant.dynamic_quantize), hypothesis: normal,
tiny, huge and all-zero tensors, exact halves (ties), infinities and NaNs (reported, then the
step takes the NumPy path)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from kernels import dynamic_quant as D
from intsim.steps import quant


@st.composite
def tensors(draw):
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["normal", "normal", "tiny", "huge", "zero", "ties", "special", "positive"]))
    if kind == "zero":
        return np.zeros(n, np.float32)
    if kind == "ties":      # values landing on .5 after the division
        return (rng.integers(-400, 400, n) * 0.5).astype(np.float32)
    x = rng.standard_normal(n).astype(np.float32) * np.float32({"tiny": 1e-38, "huge": 1e37}.get(kind, 3.0))
    if kind == "positive":
        x = np.abs(x) + np.float32(0.5)
    if kind == "special":
        x[rng.integers(0, n, 2)] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    return x


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
