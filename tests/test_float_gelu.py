"""Float islands of the erf family (intsim.steps.float_gelu, kernels.ort_gelu): BiasGelu, Gelu
(com.microsoft; ONNX opset 20), Erf, Div -> Erf and the exported Div -> Erf -> Add -> Mul -> Mul
chain that onnxruntime fuses into Gelu, each bit for bit onnxruntime's session on the whole model
over random shapes and values (edges included), run after run (frozen replays on new data);
islands it does not take (tanh Gelu, a chain with other constants, an inner tensor read
outside) stay on onnxruntime; taps on a multi-node island are onnxruntime's."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from kernels.ort_gelu import supported
from tests.ortutil import run_ort

pytestmark = [pytest.mark.skipif(not supported(), reason="onnxruntime runs another MLAS erf on this host"),
              pytest.mark.filterwarnings("ignore::UserWarning")]     # float islands are named at load

F32 = np.float32
EDGES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 0.921875, 3.925, -5.0, 1.3035, 3.4e38], F32)


def _const(name, value, shape=()):
    return helper.make_tensor(name, TensorProto.FLOAT, list(shape), np.asarray(value, F32).reshape(-1).tolist())


def _model(kind, hidden, bias=None, tail_out=False):
    """x (batch, 3, hidden) -> the island of `kind` -> y; `tail_out`: its first node's output is
    also read outside it (cast to int32, a second output)."""
    inits, extra_out = [], []
    if kind == "bias_gelu":
        nodes = [helper.make_node("BiasGelu", ["x", "b"], ["y"], domain="com.microsoft", name="bg")]
        inits.append(_const("b", bias, [hidden]))
    elif kind in ("gelu_ms", "gelu20", "gelu20_tanh"):
        dom = "com.microsoft" if kind == "gelu_ms" else ""
        attrs = {"approximate": "tanh"} if kind == "gelu20_tanh" else {}
        nodes = [helper.make_node("Gelu", ["x"], ["y"], domain=dom, name="gelu", **attrs)]
    elif kind == "erf":
        nodes = [helper.make_node("Erf", ["x"], ["y"], name="erf")]
    elif kind == "div_erf":
        nodes = [helper.make_node("Div", ["x", "c"], ["t"], name="div"), helper.make_node("Erf", ["t"], ["y"], name="erf")]
        inits.append(_const("c", 1.4142135))
    else:       # the exported chain: x / sqrt2 -> Erf -> + 1 -> * x -> * 0.5 (or * 0.25: not a Gelu)
        half = 0.25 if kind == "chain_quarter" else 0.5
        nodes = [helper.make_node("Div", ["x", "c"], ["t"], name="div"), helper.make_node("Erf", ["t"], ["e"], name="erf"),
                 helper.make_node("Add", ["e", "one"], ["a"], name="add"),
                 helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
                 helper.make_node("Mul", ["m", "half"], ["y"], name="mul_1")]
        inits += [_const("c", 1.4142135), _const("one", 1.0), _const("half", half)]
    if tail_out:
        # an integer reader of the first node's output: it ends no island, the tensor is read outside
        nodes.append(helper.make_node("Cast", [nodes[0].output[0]], ["inner"], name="cast", to=TensorProto.INT32))
        extra_out.append(helper.make_tensor_value_info("inner", TensorProto.INT32, [None, 3, hidden]))
    opset = 20 if kind.startswith("gelu20") else 17
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, hidden])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3, hidden])] + extra_out, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    return m


def _takes(prog):
    return any(fn.__module__ == "intsim.steps.float_gelu" for _, fn in prog._steps)


def _same(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["bias_gelu", "gelu_ms", "gelu20", "erf", "div_erf", "chain"]),
       hidden=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_islands_equal_onnxruntime_run_after_run(kind, hidden, seed):
    rng = np.random.default_rng(seed)
    model = _model(kind, hidden, bias=rng.standard_normal(hidden))
    prog = intsim.load(model, target="ort")
    assert _takes(prog)
    for i in range(4):      # the first run records, the others replay frozen (new data each time)
        batch = 1 + i % 2
        x = (rng.standard_normal((batch, 3, hidden)) * rng.choice([0.5, 3.0])).astype(F32)
        if i == 3:
            x.reshape(-1)[:EDGES.size] = EDGES[:x.size]
        got, want = prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"]
        assert _same(got, want), (kind, hidden, i)


@pytest.mark.parametrize("kind,tail_out", [("gelu20_tanh", False), ("chain_quarter", False), ("chain", True),
                                           ("div_erf", True)])
def test_other_islands_stay_on_onnxruntime(kind, tail_out):
    model = _model(kind, 8, tail_out=tail_out)
    prog = intsim.load(model, target="ort")
    assert not _takes(prog)
    x = np.random.default_rng(5).standard_normal((2, 3, 8)).astype(F32) * 2
    for _ in range(3):
        got, want = prog.run({"x": x}), run_ort(model, {"x": x})
        assert all(_same(got[k], want[k]) for k in want)


def test_taps_on_the_chain_are_onnxruntimes():
    """With taps the chain's island runs on onnxruntime (its inner tensors are filled), and its
    output is the same bits as the kernel's."""
    model = _model("chain", 16)
    prog = intsim.load(model, target="ort")
    x = np.random.default_rng(9).standard_normal((1, 3, 16)).astype(F32) * 2
    outs, taps = prog.run({"x": x}, taps=True)
    plain = prog.run({"x": x})["y"]
    assert _same(outs["y"], plain) and _same(plain, run_ort(model, {"x": x})["y"])
    assert any("e" in t["outputs"] for t in taps.values())


def test_encoder_dynamic_forms_take_the_kernel():
    """The architecture zoo's transformer encoder: BiasGelu (dynamic_opt) and the exported chain
    (dynamic) run on the kernel; tests/test_frozen.py checks their outputs run after run."""
    from models import zoo
    for form in ("dynamic_opt", "dynamic"):
        try:
            path = zoo.arch_quantized_model("tiny_encoder", form, 64)
        except zoo.ModelUnavailable as e:
            pytest.skip(str(e))
        prog = intsim.load(str(path), target="ort")
        assert sum(fn.__module__ == "intsim.steps.float_gelu" for _, fn in prog._steps) == 2
        feeds = {zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", 2, 11, 64)}
        for _ in range(3):
            np.testing.assert_array_equal(prog.run(feeds)[zoo.OUTPUT_NAME],
                                          run_ort(str(path), feeds)[zoo.OUTPUT_NAME])
