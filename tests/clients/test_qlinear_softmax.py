"""QLinearSoftmax as onnxruntime computes it (kernels.qsoftmax), bit for bit: the
com.microsoft QOperator node, and DQ -> Softmax -> Q, which onnxruntime's optimizer fuses into
it (uint8 and int8, several shapes and axes, Softmax opsets 11 and 13)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import intsim
from intsim.targets.rules import TargetRefusal
from tests.clients.test_ort_float_islands import quantize_ops
from tests.ortutil import float_model, run_ort

pytest.importorskip("onnxruntime")


def qlinear_softmax_model(shape, dt, xs, ys, yzp, axis, opset):
    et = TensorProto.UINT8 if dt == np.uint8 else TensorProto.INT8
    n = helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft",
                         axis=axis, opset=opset)
    inits = [helper.make_tensor("xs", TensorProto.FLOAT, [], [xs]), helper.make_tensor("xz", et, [], [0]),
             helper.make_tensor("ys", TensorProto.FLOAT, [], [ys]), helper.make_tensor("yz", et, [], [yzp])]
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info("x", et, shape)],
                          [helper.make_tensor_value_info("y", et, shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


SHAPES = [((4, 16), -1, 13), ((2, 3, 10), -1, 13), ((2, 5, 7), 1, 13), ((3, 4, 5), 1, 11), ((1, 8, 64), -1, 13),
          ((2, 300), -1, 13), ((2, 4, 3, 3), 2, 11)]


@pytest.mark.parametrize("dt,yzp,ys", [(np.uint8, 0, 1 / 256), (np.int8, -128, 1 / 256), (np.uint8, 3, 1 / 200),
                                       (np.int8, 0, 1 / 256), (np.int8, -100, 1 / 300)])
@pytest.mark.parametrize("shape,axis,opset", SHAPES)
def test_qoperator_qlinear_softmax(dt, yzp, ys, shape, axis, opset):
    r = np.random.default_rng(sum(shape) + axis)
    for xs in (0.05, 0.1237, 0.02, 0.4):
        m = qlinear_softmax_model(list(shape), dt, xs, ys, yzp, axis, opset)
        prog = intsim.load(m, target="ort")
        x = r.integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, shape).astype(dt)
        np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(m, {"x": x})["y"])


def qdq_softmax(act, opset, axis, shape):
    r = np.random.default_rng(0)
    w = r.normal(0, 0.5, (shape[-1], shape[-1])).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Softmax", ["m"], ["s"], axis=axis),
             helper.make_node("MatMul", ["s", "W"], ["y"])]
    m = float_model(nodes, [("x", list(shape))], [("y", list(shape))], {"W": w}, opset=opset)
    calib = [{"x": r.normal(0, 2, shape).astype(np.float32)} for _ in range(4)]
    return quantize_ops(m, calib, ["MatMul", "Softmax"], act)


@pytest.mark.parametrize("act", ["u8", "s8"])
@pytest.mark.parametrize("opset,axis,shape", [(13, -1, (2, 4, 16)), (17, -1, (1, 12, 32)), (11, -1, (2, 4, 16)),
                                              (13, 1, (2, 6, 8)), (11, 1, (2, 3, 8))])
def test_qdq_softmax_fuses_as_onnxruntime(act, opset, axis, shape):
    q = qdq_softmax(act, opset, axis, shape)
    prog = intsim.load(q, target="ort")
    assert any(n.op == "softmax" for n in prog.graph.nodes)
    r = np.random.default_rng(5)
    for _ in range(3):
        f = {"x": r.normal(0, 2, shape).astype(np.float32)}
        np.testing.assert_array_equal(prog.run(f)["y"], run_ort(q, f)["y"])


def test_other_targets_refuse_qlinear_softmax_by_name():
    m = qlinear_softmax_model([2, 8], np.int8, 0.1, 1 / 256, -128, -1, 13)
    with pytest.raises(TargetRefusal, match="no rule for QLinearSoftmax"):
        intsim.load(m, target="pow2")
    intsim.load(m, target="tflite")     # TFLite's own output quantization: its SOFTMAX rule applies
    odd = qlinear_softmax_model([2, 8], np.int8, 0.1, 1 / 128, -128, -1, 13)
    with pytest.raises(TargetRefusal, match="target tflite .*SOFTMAX needs output scale 1/256 and zero point -128"):
        intsim.load(odd, target="tflite")
