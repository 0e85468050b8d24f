import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from intsim.ir import IntType
from intsim.quantize import lsq, pow2


def _problem(seed, c=4, k=9, n=300):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, k)) @ rng.normal(size=(k, k))
    w = rng.normal(size=(c, k))
    return x, w, (x.T @ x / n)[None]


@given(st.integers(0, 10_000), st.integers(2, 8))
@settings(max_examples=50, deadline=None)
def test_loss_matches_explicit_reconstruction(seed, bits):
    x, w, hess = _problem(seed)
    t = IntType(bits, True)
    s = np.full(4, np.abs(w).max() / t.qmax * 0.7)
    err, _ = lsq.lsq_loss_grad(w, s, t, hess)
    wq = np.clip(np.rint(w / s[:, None]), t.qmin, t.qmax) * s[:, None]
    np.testing.assert_allclose(err, ((x @ (wq - w).T) ** 2).mean(0), rtol=1e-9, atol=1e-12)


@given(st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_gradient_matches_finite_difference_when_all_clipped(seed):
    x, w, hess = _problem(seed)
    w = np.where(np.abs(w) < 0.5, 0.5 * np.sign(w + 1e-9), w)     # every |w/s| >> qmax
    t = IntType(4, True)
    s = np.full(4, 1e-3)
    _, g = lsq.lsq_loss_grad(w, s, t, hess)
    for c in range(4):
        ds = np.zeros(4)
        ds[c] = 1e-7
        fd = (lsq.lsq_loss_grad(w, s + ds, t, hess)[0].sum() - lsq.lsq_loss_grad(w, s - ds, t, hess)[0].sum()) / 2e-7
        np.testing.assert_allclose(g[c], fd, rtol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_pow2_learned_scales_are_exact_and_trajectory_recorded(per_channel):
    x, w, hess = _problem(1)
    t = IntType(4, True)
    s, traj = lsq.learn_scale(w, np.float32(0.25), t, hess, "pow2", per_channel, steps=40)
    assert pow2.is_pow2(s) and s.shape == ((4,) if per_channel else ())
    arr = traj.as_arrays()
    assert arr["log2_scale"].shape == (41, 4 if per_channel else 1)
    assert arr["loss"][0] == 1.0
    assert np.all(np.log2(arr["scale"]) == np.rint(arr["log2_scale"]))


def test_affine_lsq_improves_a_badly_initialised_scale():
    x, w, hess = _problem(2)
    t = IntType(4, True)
    s0 = np.float32(np.abs(w).max() / t.qmax * 4)     # far too coarse
    s, traj = lsq.learn_scale(w, s0, t, hess, "affine", False, steps=200, lr=0.05)
    assert traj.loss[-1] < 0.5 * traj.loss[0]
    assert s.dtype == np.float32


def test_adam_minimises_a_quadratic():
    opt, x = lsq.Adam(0.1), np.array([3.0, -2.0])
    for _ in range(500):
        x = opt.step(x, 2 * x)
    assert np.all(np.abs(x) < 1e-2)
