import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from intsim.quantize import cle
from intsim.quantize.graph import FloatGraph, fold_batchnorm
from tests.ortutil import run_ort
from tests.quantize import nets


@given(st.integers(0, 10_000), st.booleans(), st.floats(1.0, 100.0))
@settings(max_examples=20, deadline=None)
def test_cle_keeps_relu_model_outputs(seed, depthwise, spread):
    m = nets.conv_net(seed=seed, depthwise=depthwise, spread=spread)
    x = nets.calib(8, seed=seed + 1)
    fg = FloatGraph(m)
    fold_batchnorm(fg)
    before = run_ort(fg.to_model(), {"x": x})["y"]
    info = cle.equalize(fg)
    assert len(info["pairs"]) == (2 if depthwise else 1)
    after = run_ort(fg.to_model(), {"x": x})["y"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * np.abs(before).max())


@given(st.integers(0, 10_000), st.floats(2.0, 1000.0))
@settings(max_examples=30, deadline=None)
def test_cle_reduces_range_spread_of_a_pair(seed, spread):
    fg = FloatGraph(nets.conv_net(seed=seed, spread=spread, bn=False))
    pair = cle.find_pairs(fg)[0]
    r1 = lambda: np.abs(fg.inits[pair.first.weight]).reshape(fg.inits[pair.first.weight].shape[0], -1).max(1)  # noqa
    r2 = lambda: cle.input_channel_ranges(fg.inits[pair.second.weight], 1)  # noqa
    a, b = cle.range_spread(r1()), cle.range_spread(r2())
    cle.equalize(fg)
    a2, b2 = cle.range_spread(r1()), cle.range_spread(r2())
    np.testing.assert_allclose(r1(), r2(), rtol=1e-5)      # both ranges equal sqrt(r1 r2)
    assert max(a2, b2) <= np.sqrt(a * b) * (1 + 1e-5) <= max(a, b) * (1 + 1e-5)


def test_relu6_becomes_relu_and_is_reported():
    fg = FloatGraph(nets.conv_net(act="Clip", depthwise=True))
    fold_batchnorm(fg)
    info = cle.equalize(fg)
    assert info["relu6_replaced"] == ["conv1", "dw2"]
    assert [n.op_type for n in fg.nodes if n.name.startswith("act")] == ["Relu", "Relu", "Relu"]


def test_depthwise_input_ranges():
    w = np.arange(1, 7, dtype=np.float32).reshape(6, 1, 1, 1) * np.array([1, -1, 1, -1, 1, -1]).reshape(6, 1, 1, 1)
    assert np.array_equal(cle.input_channel_ranges(w, 6), np.arange(1, 7))
    s = np.arange(1, 7, dtype=np.float64)
    assert np.array_equal(cle.scale_input_channels(w, 6, s).ravel(), (w.ravel() * s))


@pytest.mark.parametrize("r,want", [([1, 4], 4.0), ([0, 2, 3], 1.5), ([0, 0], 1.0)])
def test_range_spread(r, want):
    assert cle.range_spread(np.array(r, float)) == want
