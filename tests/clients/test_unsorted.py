"""Nodes listed out of topological order (AMD Quark XINT8 appends a node at the end): the ONNX
checker refuses them, onnxruntime runs them; intsim sorts at load and equals onnxruntime. A
real cycle is still refused, naming a node on it; the checker's message keeps the node name."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import intsim
from intsim.errors import IntsimError

from ..ortutil import run_ort
from .qdq_build import Builder


def _quark_like():
    """x -> Q -> DQ -> Conv -> Q -> DQ -> Relu -> y, with the first Q moved to the end."""
    b = Builder()
    w = np.random.default_rng(0).integers(-4, 5, (2, 3, 3, 3)).astype(np.int8)
    x = b.dq(b.q("x", 0.125, np.uint8(128)), 0.125, np.uint8(128))
    c = b.node("Conv", [x, b.dq(b.const("w", w), 0.25, np.int8(0))], name="conv")
    y = b.dq(b.q(c, 0.5, np.uint8(128)), 0.5, np.uint8(128))
    b.node("Relu", [y], ["y"])
    b.nodes.append(b.nodes.pop(0))          # QuantizeLinear of the input, listed last
    return b.model([("x", [1, 3, 6, 6])], [("y", [1, 2, 4, 4])])


def test_unsorted_graph_runs_and_equals_onnxruntime():
    m = _quark_like()
    with pytest.raises(Exception, match="topologically sorted"):
        onnx.checker.check_model(m)
    x = np.random.default_rng(1).normal(0, 2, (1, 3, 6, 6)).astype(np.float32)
    prog = intsim.load(m, target="ort")
    assert [n.op for n in prog.graph.nodes][:2] == ["quantize", "conv"]
    assert np.array_equal(prog.run({"x": x})["y"], run_ort(m, {"x": x})["y"])
    assert m.graph.node[-1].op_type == "QuantizeLinear"     # the caller's model is left as it was


def test_a_cycle_is_refused_naming_a_node_on_it():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="head"),
             helper.make_node("Add", ["a", "c"], ["b"], name="loop_add"),
             helper.make_node("Relu", ["b"], ["c"], name="loop_relu"),
             helper.make_node("Relu", ["b"], ["y"], name="tail")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(IntsimError, match=r"cycle through node 'loop_(add|relu)'"):
        intsim.load(m)


def test_the_checker_message_keeps_the_node_name():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="bad_relu", bogus=1)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(Exception) as raw:
        onnx.checker.check_model(m)
    assert "bad_relu" not in str(raw.value).strip().splitlines()[0]     # the name sits on a later line
    with pytest.raises(IntsimError, match="bad_relu") as err:
        intsim.load(m)
    assert "\n" not in str(err.value)
