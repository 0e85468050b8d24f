import io

import numpy as np
from hypothesis import given, settings, strategies as st

from intsim.ir import IntType
from intsim.quantize import adaround
from intsim.quantize.ranges import output_error


@given(st.floats(0.0, 0.999))
@settings(max_examples=100, deadline=None)
def test_init_v_inverts_rectified_sigmoid(frac):
    h, _ = adaround.rect_sigmoid(adaround.init_v(np.array([frac])))
    assert abs(h[0] - frac) < 1e-5


@given(st.floats(-6, 6))
@settings(max_examples=100, deadline=None)
def test_rect_sigmoid_derivative(v):
    h1, d = adaround.rect_sigmoid(np.array([v]))
    eps = 1e-6
    fd = (adaround.rect_sigmoid(np.array([v + eps]))[0] - adaround.rect_sigmoid(np.array([v - eps]))[0]) / (2 * eps)
    if 0.0 < h1[0] < 1.0 and abs(v) < 5:
        np.testing.assert_allclose(d, fd, rtol=1e-4, atol=1e-7)


@given(st.integers(0, 10_000), st.integers(2, 8), st.sampled_from([1, 2]))
@settings(max_examples=15, deadline=None)
def test_rounds_only_up_or_down_and_never_worse_than_nearest(seed, bits, groups):
    rng = np.random.default_rng(seed)
    k, c = 12, 4
    x = rng.normal(size=(groups, 300, k)) @ rng.normal(size=(k, k))
    hess = np.einsum("grk,grl->gkl", x, x) / 300
    w = rng.normal(size=(c * groups, k))
    t = IntType(bits, True)
    s = np.full(c * groups, np.abs(w).max() / t.qmax).astype(np.float32).astype(np.float64)  # scales are float32
    q, info = adaround.adaround_rows(w, s, t, hess, steps=200)
    v = w / s[:, None]
    assert np.all((q == np.clip(np.floor(v), t.qmin, t.qmax)) | (q == np.clip(np.ceil(v), t.qmin, t.qmax)))
    assert info["kept"] == "nearest" or info["adaround"] <= info["nearest"]
    near = np.clip(np.rint(v), t.qmin, t.qmax)
    err = lambda qq: output_error(qq * s[:, None] - w, hess).sum()  # noqa: E731
    assert err(q) <= err(near)
    np.testing.assert_allclose(err(near), info["nearest"], rtol=1e-12)


def test_adaround_beats_nearest_on_correlated_inputs():
    rng = np.random.default_rng(7)
    k = 16
    x = rng.normal(size=(500, k)) @ (np.eye(k) + 0.8 * rng.normal(size=(k, k)))
    hess = (x.T @ x / 500)[None]
    w = rng.normal(size=(8, k))
    t = IntType(4, True)
    s = np.abs(w).max(1) / t.qmax
    q, info = adaround.adaround_rows(w, s, t, hess, steps=1000)
    assert info["kept"] == "adaround" and info["adaround"] < 0.9 * info["nearest"]


def test_progress_bar_text():
    buf = io.StringIO()
    adaround.progress(1, 4, "conv1", stream=buf)
    adaround.progress(4, 4, "done", stream=buf)
    out = buf.getvalue()
    assert "[######..................] 1/4 conv1" in out and out.endswith("\n")
