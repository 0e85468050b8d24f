"""ONNX ops defined by a function (HardSwish, Mish, MeanVarianceNormalization; context-dependent:
Gelu, GroupNormalization) run as float islands: under `ort` by onnxruntime's own kernels, bit
for bit; under other targets by the ONNX reference evaluator (close, not bit-exact)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import intsim
from intsim.targets.ort import OrtTarget
from tests.clients.test_ort_float_islands import quantize_ops
from tests.ortutil import float_model, run_ort

pytest.importorskip("onnxruntime")

C = 8
CASES = [  # (op, opset, attrs, extra initializers)
    ("HardSwish", 17, {}, {}),
    ("Mish", 18, {}, {}),
    ("MeanVarianceNormalization", 13, {}, {}),
    ("Gelu", 20, {}, {}),
    ("Gelu", 20, {"approximate": "tanh"}, {}),
    ("GroupNormalization", 21, {"num_groups": 2}, {"gs": np.linspace(0.5, 1.5, C).astype(np.float32),
                                                   "gb": np.linspace(-0.2, 0.2, C).astype(np.float32)}),
]


def model(op, opset, attrs, extra):
    r = np.random.default_rng(3)
    w1 = r.normal(0, 0.4, (C, C, 1, 1)).astype(np.float32)
    w2 = r.normal(0, 0.4, (C, C, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"]),
             helper.make_node(op, ["c1"] + list(extra), ["f"], **attrs),
             helper.make_node("Conv", ["f", "w2"], ["y"])]
    return float_model(nodes, [("x", [1, C, 6, 6])], [("y", [1, C, 6, 6])], {"w1": w1, "w2": w2, **extra},
                       opset=opset)


def feeds(n, seed):
    r = np.random.default_rng(seed)
    return [{"x": r.normal(0, 1.5, (1, C, 6, 6)).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("op,opset,attrs,extra", CASES, ids=[f"{c[0]}{'-' + str(c[2]) if c[2] else ''}" for c in CASES])
def test_function_op_island_equals_onnxruntime(op, opset, attrs, extra):
    q = quantize_ops(model(op, opset, attrs, extra), feeds(6, 5), ["Conv"])
    assert any(n.op_type == op for n in q.graph.node)
    prog = intsim.load(q, target="ort")
    for f in feeds(3, 9):
        np.testing.assert_array_equal(prog.run(f)["y"], run_ort(q, f)["y"])
    saved, OrtTarget.float_engine = OrtTarget.float_engine, "reference"   # the reference evaluator runs it too
    try:
        ref = intsim.load(q, target="ort")
    finally:
        OrtTarget.float_engine = saved
    for f in feeds(1, 9):
        got, want = ref.run(f)["y"], run_ort(q, f)["y"]
        assert got.shape == want.shape and np.isfinite(got).all()
