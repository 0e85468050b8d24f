import numpy as np
from hypothesis import given, settings, strategies as st

from intsim.quantize import bias_correction


@given(st.integers(0, 10_000), st.sampled_from([1, 2, 4]), st.integers(1, 9))
@settings(max_examples=60, deadline=None)
def test_corrected_bias_restores_mean_output(seed, groups, k):
    rng = np.random.default_rng(seed)
    opg, n = 3, 50
    x = rng.normal(1.0, 1.0, size=(groups, n, k))                    # patches per group
    w = rng.normal(size=(groups * opg, k))
    wq = np.round(w * 4) / 4
    b = rng.normal(size=groups * opg)
    mean = x.mean(axis=1)
    b2 = bias_correction.corrected_bias(b, wq - w, mean)
    xw = lambda ww: np.concatenate([x[g] @ ww[g * opg:(g + 1) * opg].T for g in range(groups)], axis=1)  # noqa
    np.testing.assert_allclose((xw(wq) + b2).mean(0), (xw(w) + b).mean(0), rtol=1e-9, atol=1e-9)


def test_missing_bias_is_zeros():
    d = np.ones((2, 3))
    assert np.array_equal(bias_correction.corrected_bias(None, d, np.ones((1, 3))), [-3.0, -3.0])
