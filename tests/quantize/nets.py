"""Tiny float ONNX models built with onnx.helper for the quantizer's tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _bn(rng, prefix, c, x, y):
    inits = [_init(f"{prefix}_g", rng.uniform(0.5, 1.5, c)), _init(f"{prefix}_b", rng.normal(0, 0.1, c)),
             _init(f"{prefix}_m", rng.normal(0, 0.2, c)), _init(f"{prefix}_v", rng.uniform(0.5, 2.0, c))]
    node = helper.make_node("BatchNormalization", [x] + [i.name for i in inits], [y], name=prefix, epsilon=1e-5)
    return node, inits


def conv_net(seed: int = 0, c1: int = 6, c2: int = 8, act: str = "Relu", depthwise: bool = False,
             bn: bool = True, spread: float = 1.0, hw: int = 7, opset: int = 17) -> onnx.ModelProto:
    """x (N,2,hw,hw) -> Conv3x3(c1) [+BN] + act -> Conv (3x3 depthwise, or 1x1 to c2) + act
    -> [Conv1x1 to c2 + Relu when depthwise] -> GlobalAveragePool -> Flatten -> Gemm(5).
    `spread` multiplies the first conv's channel ranges by a geometric sequence (outliers)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def act_node(x, y, name):
        if act == "Relu":
            return helper.make_node("Relu", [x], [y], name=name)
        inits.extend([_init(name + "_lo", np.float32(0)), _init(name + "_hi", np.float32(6))])
        return helper.make_node("Clip", [x, name + "_lo", name + "_hi"], [y], name=name)

    w1 = rng.normal(0, 0.4, (c1, 2, 3, 3)) * np.geomspace(1, spread, c1).reshape(-1, 1, 1, 1)
    inits += [_init("w1", w1), _init("b1", rng.normal(0, 0.1, c1))]
    nodes.append(helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]))
    src = "c1"
    if bn:
        n, i = _bn(rng, "bn1", c1, "c1", "n1")
        nodes.append(n)
        inits += i
        src = "n1"
    nodes.append(act_node(src, "a1", "act1"))
    if depthwise:
        inits += [_init("w2", rng.normal(0, 0.5, (c1, 1, 3, 3))), _init("b2", rng.normal(0, 0.1, c1))]
        nodes.append(helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="dw2", pads=[1, 1, 1, 1], group=c1))
        nodes.append(act_node("c2", "a2", "act2"))
        inits += [_init("w3", rng.normal(0, 0.4, (c2, c1, 1, 1))), _init("b3", rng.normal(0, 0.1, c2))]
        nodes.append(helper.make_node("Conv", ["a2", "w3", "b3"], ["c3"], name="pw3"))
        nodes.append(helper.make_node("Relu", ["c3"], ["a3"], name="act3"))
        last = "a3"
    else:
        inits += [_init("w2", rng.normal(0, 0.4, (c2, c1, 1, 1))), _init("b2", rng.normal(0, 0.1, c2))]
        nodes.append(helper.make_node("Conv", ["a1", "w2", "b2"], ["c2"], name="conv2"))
        nodes.append(act_node("c2", "a2", "act2"))
        last = "a2"
    nodes.append(helper.make_node("GlobalAveragePool", [last], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"))
    inits += [_init("wf", rng.normal(0, 0.5, (5, c2))), _init("bf", rng.normal(0, 0.1, 5))]
    nodes.append(helper.make_node("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1))
    graph = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, hw, hw])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def calib(n: int = 32, seed: int = 1, hw: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 2, hw, hw)).astype(np.float32)
