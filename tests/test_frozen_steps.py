"""Frozen replays of the quantize, dequantize, lut, concat, broadcast and same-shape mul steps (their freeze
hooks write into the recorded outputs) and of shape arithmetic (kept as recorded): small QDQ
graphs quantized by onnxruntime, run after run on changing data, bit-exact with onnxruntime,
and those steps never on their ordinary path."""
import numpy as np
import pytest
from onnx import helper

import intsim
from benchmarks.op_gaps import shuffle_dyn
from intsim.runtime import frozen
from kernels import threads as kernel_threads

from .ortutil import float_model, quantize, run_ort


def _conv(name, x, y, cin, cout, rng, k=1, group=1):
    w = (rng.standard_normal((cout, cin // group, k, k)) * 0.3).astype(np.float32)
    return helper.make_node("Conv", [x, name + "_w"], [y], pads=[k // 2] * 4, group=group), {name + "_w": w}


def _concat(rng):
    """Two branches of different ranges (so different scales) concatenated on channels, then a
    concat with the graph input."""
    n1, i1 = _conv("a", "x", "a", 6, 6, rng)
    n2, i2 = _conv("b", "x", "b", 6, 6, rng, 3, 6)
    nodes = [n1, n2, helper.make_node("Relu", ["b"], ["br"]), helper.make_node("Mul", ["br", "k"], ["bk"]),
             helper.make_node("Concat", ["a", "bk"], ["c"], axis=1),
             helper.make_node("Concat", ["c", "x"], ["y"], axis=1)]
    return float_model(nodes, [("x", [None, 6, 9, 9])], [("y", [None, 18, 9, 9])],
                       {**i1, **i2, "k": np.float32(7.0)})


def _sigmoid(rng):
    n1, i1 = _conv("c", "x", "c", 5, 5, rng)
    nodes = [n1, helper.make_node("Sigmoid", ["c"], ["y"])]
    return float_model(nodes, [("x", [None, 5, 8, 8])], [("y", [None, 5, 8, 8])], i1)


def _se_mul(rng):
    """Squeeze-excite: x * sigmoid(conv(global average pool(x))), a (N, C, 1, 1) scale."""
    n1, i1 = _conv("s", "p", "s", 6, 6, rng)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), n1, helper.make_node("Sigmoid", ["s"], ["g"]),
             helper.make_node("Mul", ["x", "g"], ["y"])]
    return float_model(nodes, [("x", [None, 6, 7, 7])], [("y", [None, 6, 7, 7])], i1)


def _hardswish(rng):
    """HardSwish as torch exports it at opset 13: x * HardSigmoid(x), a Mul of two same-shape tensors."""
    n1, i1 = _conv("h", "x", "c", 5, 5, rng)
    nodes = [n1, helper.make_node("HardSigmoid", ["c"], ["g"], alpha=1.0 / 6), helper.make_node("Mul", ["c", "g"], ["y"])]
    return float_model(nodes, [("x", [None, 5, 8, 8])], [("y", [None, 5, 8, 8])], i1)


MODELS = {"concat": _concat, "sigmoid": _sigmoid, "se_mul": _se_mul, "hardswish": _hardswish}
# the steps each model replays through freeze hooks (concat's Mul by a scalar keeps its ordinary path)
HOOKED = {"concat": {"quantize", "dequantize", "concat"}, "sigmoid": {"quantize", "dequantize", "lut"},
          "se_mul": {"quantize", "dequantize", "lut", "mul"}, "hardswish": {"quantize", "dequantize", "mul"}}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_replays_equal_onnxruntime(name, threads):
    rng = np.random.default_rng(0)
    m = MODELS[name](rng)
    shape = [d.dim_value or 2 for d in m.graph.input[0].type.tensor_type.shape.dim]
    calib = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    q = quantize(m, calib)
    prog = intsim.load(q)
    batches = [{"x": (rng.standard_normal(shape) * s).astype(np.float32)} for s in (1.0, 3.0, 0.2)]
    want = [run_ort(q, f) for f in batches]
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        for i in (0, 1, 2, 0, 2, 1):        # first sight, recording, replays on changing data
            got = prog.run(batches[i])
            for k, v in want[i].items():
                np.testing.assert_array_equal(got[k], v, err_msg=f"{name} batch {i}")
    finally:
        kernel_threads.set_num_threads(old)
    (rec,) = [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]
    ops = {node.name: node.op for node, _ in prog._steps}
    assert HOOKED[name] <= set(ops.values()), f"{name}: {sorted(set(ops.values()))}"
    assert not [n for n in rec.ordinary if ops[n] in HOOKED[name]], rec.ordinary


def test_concat_inputs_in_other_quantization_are_requantized():
    """The concat model really exercises the table path: its inputs' scales differ."""
    q = quantize(_concat(np.random.default_rng(0)), [{"x": np.random.default_rng(s).standard_normal((2, 6, 9, 9))
                                                      .astype(np.float32)} for s in range(4)])
    prog = intsim.load(q)
    consts = prog.graph.constants
    for node in (n for n in prog.graph.nodes if n.op == "concat"):
        scales = {float(np.asarray(consts[node.inputs[i]]).reshape(-1)[0]) for i in range(0, len(node.inputs), 3)}
        if len(scales) > 1:
            return
    pytest.fail("every concat has its inputs in the output's quantization")


def test_shape_arithmetic_is_not_replayed():
    rng = np.random.default_rng(0)
    q = quantize(shuffle_dyn(rng, 8, 5), [{"x": rng.standard_normal((2, 8, 5, 5)).astype(np.float32)} for _ in range(4)])
    prog = intsim.load(q)
    feeds = {n: [{"x": rng.standard_normal((n, 8, 5, 5)).astype(np.float32)} for _ in range(2)] for n in (1, 3)}
    for i in range(4):          # two feed keys (batch 1 and 3), each recorded then replayed
        for n in (1, 3):
            f = feeds[n][i % 2]
            got = prog.run(f)
            for k, v in run_ort(q, f).items():
                np.testing.assert_array_equal(got[k], v, err_msg=f"batch {n} run {i}")
    kept = [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]
    assert len(kept) == 2
    ops = {node.name: node.attrs.get("op_type") for node, _ in prog._steps}
    for rec in kept:
        assert sorted(ops[n] for n in rec.skipped) == ["Concat", "Concat", "Gather", "Shape", "Unsqueeze"]
        assert len(rec.calls) == len(prog._steps) - 5
