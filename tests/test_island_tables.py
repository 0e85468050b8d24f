"""Float islands run as 256-entry tables (intsim.runtime.island_tables): the table path equals
the island's own steps (a run with taps runs those) on every input code, for each op kind and
both float engines (onnxruntime's: target ort; the ONNX reference evaluator's: cmsis-nn), and
islands that are not a function of one code keep their steps."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from kernels.lut import apply_table, apply_table_ref, bind_table
from intsim.runtime.island_tables import probe_codes

# op kind -> (nodes from "x" to "y", extra initializers); "x" is the dequantized float input
F = np.float32
KINDS = {
    "HardSigmoid": ([helper.make_node("HardSigmoid", ["x"], ["y"], alpha=1 / 6, beta=0.5)], {}),
    "HardSwish": ([helper.make_node("HardSwish", ["x"], ["y"])], {}),
    "HardSwish_inlined": ([helper.make_node("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
                           helper.make_node("Mul", ["x", "h"], ["y"])], {}),
    "SiLU": ([helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])], {}),
    "Tanh": ([helper.make_node("Tanh", ["x"], ["y"])], {}),
    "Elu": ([helper.make_node("Elu", ["x"], ["y"], alpha=0.7)], {}),
    "Erf": ([helper.make_node("Erf", ["x"], ["y"])], {}),
    "Exp": ([helper.make_node("Exp", ["x"], ["y"])], {}),
    "Softplus": ([helper.make_node("Softplus", ["x"], ["y"])], {}),
    "Clip": ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], {"lo": F(-0.5), "hi": F(1.25)}),
    "GeluChain": ([helper.make_node("Div", ["x", "sq2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                   helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
                   helper.make_node("Mul", ["m", "half"], ["y"])],
                  {"sq2": F(1.4142135), "one": F(1.0), "half": np.full((1, 1), 0.5, F)}),
}


def _model(nodes, consts, in_type, sx, zx, sy, zy, width=256, opset=17, shape=None):
    """codes "q" (N, width), or of the declared `shape` -> DequantizeLinear -> nodes ->
    QuantizeLinear -> "out"."""
    shape = shape or ["N", width]
    elem = TensorProto.UINT8 if in_type == np.uint8 else TensorProto.INT8
    inits = [numpy_helper.from_array(np.array(sx, F), "sx"), numpy_helper.from_array(np.array(zx, in_type), "zx"),
             numpy_helper.from_array(np.array(sy, F), "sy"), numpy_helper.from_array(np.array(zy, in_type), "zy")]
    inits += [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "sx", "zx"], ["x"])] + list(nodes) +
        [helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["out"])], "island",
        [helper.make_tensor_value_info("q", elem, shape)], [helper.make_tensor_value_info("out", elem, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _steps(prog, feeds) -> int:
    return len(prog.timed_steps(feeds)[1])


def _check(model, in_type, target, shape=(3, 256), tabled=True):
    prog = intsim.load(model, target=target)
    codes = np.arange(256, dtype=np.uint8).view(in_type)
    x = np.resize(codes, shape)
    feeds = {"q": x}
    island, _ = prog.run(feeds, taps=True)      # the island's own steps
    for _ in range(3):                          # ordinary, recorded, replayed (frozen) runs
        got = prog.run(feeds)
        np.testing.assert_array_equal(got["out"], island["out"])
        assert got["out"].dtype == island["out"].dtype
    assert (_steps(prog, feeds) == 1) == tabled
    return got["out"]


scales = st.floats(0.0009765625, 0.25, allow_nan=False, allow_infinity=False, width=32)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("target", ["ort", "cmsis-nn"])
@settings(max_examples=6, deadline=None)
@given(signed=st.booleans(), sx=scales, sy=scales, zx=st.integers(0, 255), zy=st.integers(0, 255))
def test_table_equals_island_on_every_code(kind, target, signed, sx, sy, zx, zy):
    in_type = np.int8 if signed else np.uint8
    if signed:
        zx, zy = zx - 128, zy - 128
    nodes, consts = KINDS[kind]
    _check(_model(nodes, consts, in_type, sx, zx, sy, zy, width=256), in_type, target)


@pytest.mark.parametrize("zx,zy", [(-128, -128), (127, 127), (0, -128), (-8, 7)])
def test_zero_points_at_the_ends(zx, zy):
    nodes, consts = KINDS["HardSwish_inlined"]
    _check(_model(nodes, consts, np.int8, 0.05, zx, 0.03, zy, width=256), np.int8, "ort")


def test_odd_shapes_and_channels_last_values():
    nodes, consts = KINDS["SiLU"]
    rng = np.random.default_rng(1)
    prog = intsim.load(_model(nodes, consts, np.uint8, 0.04, 128, 0.02, 10, shape=["N", "M"]), target="ort")
    for shape in [(1, 1), (7, 13), (0, 5)]:
        x = rng.integers(0, 256, shape).astype(np.uint8)
        island, _ = prog.run({"q": x}, taps=True)
        np.testing.assert_array_equal(prog.run({"q": x})["out"], island["out"])
    prog = intsim.load(_model(nodes, consts, np.uint8, 0.04, 128, 0.02, 10, shape=["N", 3, "H", "W"]), target="ort")
    x = rng.integers(0, 256, (2, 3, 5, 7)).astype(np.uint8)
    island, _ = prog.run({"q": x}, taps=True)
    np.testing.assert_array_equal(prog.run({"q": x})["out"], island["out"])
    xh = rng.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)       # an NCHW view of NHWC memory
    x = xh.transpose(0, 3, 1, 2)
    island, _ = prog.run({"q": np.ascontiguousarray(x)}, taps=True)
    np.testing.assert_array_equal(prog.run({"q": x})["out"], island["out"])


def test_equals_onnxruntime_on_every_code():
    from tests.ortutil import run_ort
    nodes, consts = KINDS["HardSigmoid"]
    model = _model(nodes, consts, np.uint8, 0.07, 120, 1 / 255, 0, width=256)
    got = _check(model, np.uint8, "ort")
    x = np.resize(np.arange(256, dtype=np.uint8), (3, 256))
    np.testing.assert_array_equal(got, run_ort(model, {"q": x})["out"])


def test_islands_that_are_not_one_code_keep_their_steps():
    # a per-channel constant, a second non-constant input, an op that is not value by value
    per_channel = ([helper.make_node("Mul", ["x", "w"], ["y"])], {"w": np.linspace(0.5, 2, 256).astype(F)})
    norm = ([helper.make_node("LpNormalization", ["x"], ["y"], axis=-1, p=2)], {})
    for nodes, consts in (per_channel, norm):
        _check(_model(nodes, consts, np.uint8, 0.05, 128, 0.01, 0, width=256), np.uint8, "ort", tabled=False)
    # the inner tensor is also a graph output
    model = _model(*KINDS["SiLU"], np.uint8, 0.05, 128, 0.01, 0, width=256)
    model.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, ["N", 256]))
    prog = intsim.load(model, target="ort")
    assert _steps(prog, {"q": np.zeros((1, 256), np.uint8)}) == 4


def test_reference_kernels_keep_the_island():
    model = _model(*KINDS["HardSwish"], np.uint8, 0.05, 128, 0.01, 0, width=256)
    prog = intsim.load(model, target="ort", kernels="reference")
    assert _steps(prog, {"q": np.zeros((1, 256), np.uint8)}) == 3


def test_probe_holds_every_code_at_every_residue():
    idx = probe_codes(256 * 17)
    for c in (0, 1, 128, 255):
        pos = np.flatnonzero(idx == c)
        assert len(pos) == 17 and set(pos % 16) == set(range(16))


@settings(max_examples=40, deadline=None)
@given(signed=st.booleans(), n=st.integers(0, 300), seed=st.integers(0, 2**31 - 1))
def test_bind_table_equals_reference(signed, n, seed):
    rng = np.random.default_rng(seed)
    dt = np.int8 if signed else np.uint8
    x = rng.integers(0, 256, n).astype(np.uint8).view(dt).reshape(-1)
    table = rng.integers(-128, 128, 256).astype(np.int8)
    want = np.empty(n, np.int8)
    apply_table_ref(x, table, want)
    out = np.empty(n, np.int8)
    call = bind_table(x, table, out)
    call()
    np.testing.assert_array_equal(out, want)
    x[...] = x[::-1].copy()             # the bound call reads the arrays it was bound to
    call()
    apply_table_ref(x, table, want)
    np.testing.assert_array_equal(out, want)
    apply_table(x, table, out)
    np.testing.assert_array_equal(out, want)
