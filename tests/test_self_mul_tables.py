"""x times a table of itself run as one table (intsim.runtime.self_mul_tables): swish (QDQ Sigmoid
then Mul, the lut and mul steps) and hard-swish (a HardSigmoid island table then Mul) equal the
steps they replace (a run with taps runs those) and onnxruntime on every input code, for drawn
scales and zero points (at the ends too), both signednesses, channels-last inputs, and a kept
first step when its output is read elsewhere."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from tests.ortutil import run_ort

F = np.float32
ACTS = {"swish": "Sigmoid", "hard_swish": "HardSigmoid"}


def _model(act, in_type, sx, zx, sf, zf, sy, zy, shape=("N", 256), f_output=False):
    """codes "q" -> DequantizeLinear "x"; f = Q/DQ(act(x)); "out" = Q(x * f)."""
    elem = TensorProto.UINT8 if in_type == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(v, t), k) for k, v, t in
             (("sx", sx, F), ("zx", zx, in_type), ("sf", sf, F), ("zf", zf, in_type), ("sy", sy, F),
              ("zy", zy, in_type))]
    attrs = {"alpha": 1 / 6, "beta": 0.5} if act == "hard_swish" else {}
    nodes = [helper.make_node("DequantizeLinear", ["q", "sx", "zx"], ["x"]),
             helper.make_node(ACTS[act], ["x"], ["a"], **attrs),
             helper.make_node("QuantizeLinear", ["a", "sf", "zf"], ["fq"]),
             helper.make_node("DequantizeLinear", ["fq", "sf", "zf"], ["f"]),
             helper.make_node("Mul", ["x", "f"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "sy", "zy"], ["out"])]
    outs = [helper.make_tensor_value_info("out", elem, list(shape))]
    if f_output:
        outs.append(helper.make_tensor_value_info("fq", elem, list(shape)))
    graph = helper.make_graph(nodes, "self_mul", [helper.make_tensor_value_info("q", elem, list(shape))], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _steps(prog, feeds) -> int:
    return len(prog.timed_steps(feeds)[1])


def _check(model, x, steps=1):
    """The table run (ordinary, recorded and replayed frozen runs) equals the steps' own run and
    onnxruntime; the run has `steps` steps."""
    prog = intsim.load(model, target="ort")
    feeds = {"q": x}
    own, _ = prog.run(feeds, taps=True)
    want = run_ort(model, {"q": np.ascontiguousarray(x)})
    for _ in range(3):
        got = prog.run(feeds)
        for k in got:
            np.testing.assert_array_equal(got[k], own[k])
            np.testing.assert_array_equal(got[k], want[k])
    assert _steps(prog, feeds) == steps


scales = st.floats(0.0009765625, 0.25, allow_nan=False, allow_infinity=False, width=32)


@pytest.mark.parametrize("act", sorted(ACTS))
@settings(max_examples=8, deadline=None)
@given(signed=st.booleans(), sx=scales, sf=scales, sy=scales, zx=st.integers(0, 255), zf=st.integers(0, 255),
       zy=st.integers(0, 255))
def test_table_equals_steps_and_onnxruntime_on_every_code(act, signed, sx, sf, sy, zx, zf, zy):
    in_type = np.int8 if signed else np.uint8
    if signed:
        zx, zf, zy = zx - 128, zf - 128, zy - 128
    x = np.resize(np.arange(256, dtype=np.uint8).view(in_type), (3, 256))
    _check(_model(act, in_type, sx, zx, sf, zf, sy, zy), x)


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("z", [-128, 127, -8, 7])
def test_zero_points_at_the_ends(act, z):
    x = np.resize(np.arange(256, dtype=np.uint8).view(np.int8), (2, 256))
    _check(_model(act, np.int8, 0.05, z, 1 / 255, z, 0.03, z), x)


@pytest.mark.parametrize("act", sorted(ACTS))
def test_channels_last_and_odd_shapes(act):
    rng = np.random.default_rng(3)
    model = _model(act, np.uint8, 0.04, 120, 1 / 255, 0, 0.02, 10, shape=("N", 3, "H", "W"))
    for shape in [(1, 3, 1, 1), (2, 3, 5, 7)]:
        _check(model, rng.integers(0, 256, shape).astype(np.uint8))
    xh = rng.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)       # an NCHW view of NHWC memory
    _check(model, xh.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("act", sorted(ACTS))
def test_first_step_kept_when_its_output_is_read_elsewhere(act):
    x = np.resize(np.arange(256, dtype=np.uint8), (2, 256))
    _check(_model(act, np.uint8, 0.05, 128, 1 / 255, 0, 0.03, 3, f_output=True), x, steps=2)


def test_off_switch_and_reference_kernels_keep_the_steps(monkeypatch):
    x = np.resize(np.arange(256, dtype=np.uint8), (2, 256))
    model = _model("swish", np.uint8, 0.05, 128, 1 / 255, 0, 0.03, 3)
    assert _steps(intsim.load(model, target="ort", kernels="reference"), {"q": x}) == 2
    monkeypatch.setenv("INTSIM_ISLAND_TABLES", "0")
    _check(model, x, steps=2)
