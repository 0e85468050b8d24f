"""intsim.runtime.dynamic_matmul: a DynamicQuantizeLinear and the MatMulInteger -> Cast ->
Mul(scale) [-> Add(bias)] chains reading it, run as one step, against the graph's own steps (a
run with taps) bit for bit, and against onnxruntime, over drawn graphs (1-3 chains, odd M, K,
N, int8/uint8 weights with zero points at the ends, per-tensor or per-column weight scales, with
and without bias) and inputs (mixed signs, all >= 0, all <= 0, all zero, ties, NaN/infinity:
the graph's steps run). Each input runs three times (ordinary, recorded, replayed frozen runs)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.runtime import dynamic_matmul
from intsim.runtime.program import StepContext

from .ortutil import run_ort


@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, k = draw(st.sampled_from([1, 3, 7, 32])), draw(st.sampled_from([1, 5, 16, 37, 128]))
    lead = draw(st.sampled_from([(), (2,)]))
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dq")]
    inits, outs = [], []
    for c in range(draw(st.integers(1, 3))):
        n = draw(st.sampled_from([1, 9, 32, 33, 70]))
        wt = draw(st.sampled_from([np.int8, np.uint8]))
        info = np.iinfo(wt)
        w = rng.integers(info.min, info.max, (k, n), endpoint=True).astype(wt)
        w.flat[0] = draw(st.sampled_from([info.min, info.max]))
        wz = np.array(draw(st.sampled_from([info.min, info.max, 0, 3])), wt)
        per_col = draw(st.booleans())
        ws = rng.uniform(1e-3, 0.05, (n,) if per_col else ()).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{c}"), numpy_helper.from_array(wz, f"wz{c}"),
                  numpy_helper.from_array(ws, f"ws{c}")]
        nodes += [helper.make_node("MatMulInteger", ["xq", f"w{c}", "xz", f"wz{c}"], [f"acc{c}"], name=f"mm{c}"),
                  helper.make_node("Cast", [f"acc{c}"], [f"accf{c}"], to=TensorProto.FLOAT, name=f"cast{c}"),
                  helper.make_node("Mul", ["xs", f"ws{c}"], [f"s{c}"], name=f"scales{c}"),
                  helper.make_node("Mul", [f"accf{c}", f"s{c}"], [f"p{c}"], name=f"prod{c}")]
        out = f"p{c}"
        if draw(st.booleans()):
            inits.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), f"b{c}"))
            nodes.append(helper.make_node("Add", [out, f"b{c}"], [f"y{c}"], name=f"bias{c}"))
            out = f"y{c}"
        outs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, list(lead) + [m, n]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(lead) + [m, k])],
                          outs, inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, tuple(lead) + (m, k)


def _inputs(rng, shape, kind):
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(3)
    if kind == "positive":
        return np.abs(x)
    if kind == "negative":
        return -np.abs(x)
    if kind == "zero":
        return np.zeros(shape, np.float32)
    if kind == "ties":
        return (rng.integers(-400, 400, shape) * 0.5).astype(np.float32)
    if kind in ("nan", "inf"):
        x.flat[rng.integers(0, x.size)] = np.nan if kind == "nan" else -np.inf
    return x


def _groups(prog):
    return dynamic_matmul.find(prog.graph, StepContext(prog.graph, prog.target, prog.accumulator))


@settings(max_examples=40, deadline=None)
@given(case=graphs(), seed=st.integers(0, 2**32 - 1))
def test_fused_equals_graph_steps_and_onnxruntime(case, seed):
    model, shape = case
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        rows = dynamic_matmul.dynamic_quantize_rows
        mp.setattr(dynamic_matmul, "dynamic_quantize_rows", lambda *a: calls.append(1) or rows(*a))
        prog = intsim.load(model, target="ort")
        _check(prog, model, shape, seed, calls)


def _check(prog, model, shape, seed, calls):
    assert len(_groups(prog)) == 1     # the group is fused
    rng = np.random.default_rng(seed)
    names = [o.name for o in model.graph.output]
    for kind in ["mixed", "positive", "negative", "zero", "ties", "nan", "inf", "mixed"]:
        x = _inputs(rng, shape, kind)
        with np.errstate(all="ignore"):
            want = prog.run({"x": x}, taps=True)[0]
            runs = [prog.run({"x": x}) for _ in range(3)]
        for got in runs:
            for name in names:
                np.testing.assert_array_equal(got[name].view(np.int32), want[name].view(np.int32))
        assert calls        # the fused step ran (its ordinary run)
        if kind not in ("nan", "inf"):
            ort = run_ort(model, {"x": x})
            for name in names:
                np.testing.assert_array_equal(runs[-1][name].view(np.int32), ort[name].view(np.int32))


def test_not_fused_when_an_intermediate_is_read_elsewhere():
    """The scale read by another node (here a graph output) keeps the graph's steps."""
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (8, 4)).astype(np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"]),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["xs", "ws"], ["s"]),
             helper.make_node("Mul", ["accf", "s"], ["y"])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4]),
                           helper.make_tensor_value_info("xs", TensorProto.FLOAT, [])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prog = intsim.load(model, target="ort")
    assert _groups(prog) == []
    x = rng.standard_normal((3, 8)).astype(np.float32)
    got, want = prog.run({"x": x}), run_ort(model, {"x": x})
    for name in ("y", "xs"):
        np.testing.assert_array_equal(got[name], want[name])
