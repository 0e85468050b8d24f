"""QDQ and QOperator graphs quantized by onnxruntime's quantizer: intsim (target `ort`)
equals onnxruntime with all optimizations on (its fused integer kernels), bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import intsim
from tests.ortutil import float_model, quantize, run_ort

RNG = np.random.default_rng(1234)


def _conv_block(c_in=3, c_out=8, hw=9, act="Relu", stride=1, group=1, pads=(1, 1, 1, 1)):
    w = RNG.normal(0, 0.5, (c_out, c_in // group, 3, 3)).astype(np.float32)
    b = RNG.normal(0, 0.2, (c_out,)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride, stride], pads=list(pads),
                              group=group)]
    last = "c"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        last = "r"
    elif act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["r"]))
        last = "r"
    nodes.append(helper.make_node("GlobalAveragePool", [last], ["gp"]))
    nodes.append(helper.make_node("Flatten", ["gp"], ["f"]))
    nodes.append(helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1))
    inits = {"w": w, "b": b, "fw": RNG.normal(0, 0.3, (5, c_out)).astype(np.float32),
             "fb": RNG.normal(0, 0.1, (5,)).astype(np.float32),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    return float_model(nodes, [("x", [None, c_in, hw, hw])], [("y", [None, 5])], inits)


def _residual():
    w1 = RNG.normal(0, 0.4, (4, 4, 3, 3)).astype(np.float32)
    w2 = RNG.normal(0, 0.4, (4, 4, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "w2"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["s"]),
             helper.make_node("MaxPool", ["s"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Concat", ["mp", "mp2"], ["cat"], axis=1),
             helper.make_node("AveragePool", ["x"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Mul", ["ap", "mp"], ["mp2"]),
             helper.make_node("Reshape", ["cat", "shape"], ["y"])]
    nodes = nodes[:5] + [nodes[6], nodes[7], nodes[5], nodes[8]]
    inits = {"w1": w1, "w2": w2, "shape": np.array([0, -1], np.int64)}
    return float_model(nodes, [("x", [None, 4, 8, 8])], [("y", [None, 128])], inits)


def _matmul():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    inits = {"w": RNG.normal(0, 0.3, (13, 7)).astype(np.float32), "b": RNG.normal(0, 0.1, (7,)).astype(np.float32)}
    return float_model(nodes, [("x", [None, 3, 13])], [("y", [None, 3, 7])], inits)


MODELS = {
    "conv_relu": lambda: _conv_block(),
    "conv_clip_stride2": lambda: _conv_block(act="Clip", stride=2, pads=(0, 1, 1, 0)),
    "depthwise": lambda: _conv_block(c_in=8, c_out=8, group=8),
    "grouped": lambda: _conv_block(c_in=4, c_out=6, group=2, act=None),
    "residual_pool_concat": _residual,
    "matmul": _matmul,
}


def _inputs(model, n, seed):
    rng = np.random.default_rng(seed)
    shape = [d.dim_value or n for d in model.graph.input[0].type.tensor_type.shape.dim]
    return rng.normal(0, 1, shape).astype(np.float32)


def _check(fmodel, fmt, act, per_channel):
    calib = [{"x": _inputs(fmodel, 4, s)} for s in range(8)]
    q = quantize(fmodel, calib, fmt=fmt, act=act, per_channel=per_channel)
    x = _inputs(fmodel, 16, 99) * 1.3  # past the calibrated range too: saturation paths
    want = run_ort(q, {"x": x})
    got = intsim.load(q).run({"x": x})
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("fmt,act,pc", [("qdq", "u8", True), ("qdq", "s8", False), ("qop", "u8", False),
                                        ("qdq", "s8", True)])
def test_matches_onnxruntime_integer_path(name, fmt, act, pc):
    _check(MODELS[name](), fmt, act, pc)
