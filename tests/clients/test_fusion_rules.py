"""Which QDQ patterns fuse follows onnxruntime's QDQ selectors (qdq_selectors.cc): Add/Mul and
Concat only on one element type, pools only when input and output types agree, Conv only when
input and output types agree, int8 activations only with int8 weights, and a bias only when it
is int32. What onnxruntime leaves unfused stays a float island in intsim, and both agree bit
for bit with onnxruntime's optimized session. Scales are powers of two so float islands are
exact in float32 (the fusion decision, not float summation order, is under test)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto

import intsim
from intsim.pipeline import import_onnx

from ..ortutil import optimized_op_types, run_ort
from .qdq_build import Builder


I8, U8 = np.int8, np.uint8


def _ops(m):
    return [n.op if n.op != "onnx" else n.attrs["op_type"] for n in import_onnx(m).nodes]


def _same(m, feeds):
    want = run_ort(m, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = intsim.load(m, target="ort").run(feeds)
    for k, v in want.items():
        assert got[k].dtype == v.dtype, k
        assert np.array_equal(got[k], v), (k, int(np.sum(got[k] != v)))


def _binary(op, ta, tb, ty):
    b = Builder()
    za, zb, zy = [np.asarray(0 if t is I8 else 128, t) for t in (ta, tb, ty)]
    a = b.dq(b.q("a", 0.0625, za), 0.0625, za)
    c = b.dq(b.q("c", 0.125, zb), 0.125, zb)
    y = b.node(op, [a, c])
    b.node("QuantizeLinear", [y, b.const("ys", np.float32(0.09375 if op == "Add" else 0.25)), b.const("yz", zy)],
           ["y"])
    return b.model([("a", [2, 3, 4, 4]), ("c", [2, 3, 4, 4])], [("y", [2, 3, 4, 4])],
                   out_types={"y": TensorProto.INT8 if ty is I8 else TensorProto.UINT8})


@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("types", [(I8, I8, U8), (U8, I8, U8), (I8, U8, I8), (I8, I8, I8), (U8, U8, U8)])
def test_binary_fuses_only_on_one_element_type(op, types):
    m = _binary(op, *types)
    fused = len(set(types)) == 1
    assert (op.lower() in _ops(m)) == fused
    rng = np.random.default_rng(1)
    feeds = {"a": rng.normal(0, 3, (2, 3, 4, 4)).astype(np.float32),
             "c": rng.normal(0, 3, (2, 3, 4, 4)).astype(np.float32)}
    _same(m, feeds)


@pytest.mark.parametrize("tx,ty", [(I8, U8), (U8, I8), (U8, U8)])
def test_avgpool_fuses_only_when_input_and_output_types_agree(tx, ty):
    b = Builder()
    zx, zy = [np.asarray(0 if t is I8 else 128, t) for t in (tx, ty)]
    x = b.dq(b.q("x", 0.0625, zx), 0.0625, zx)
    p = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    b.node("QuantizeLinear", [p, b.const("ys", np.float32(0.125)), b.const("yz", zy)], ["y"])
    m = b.model([("x", [1, 3, 6, 6])], [("y", [1, 3, 3, 3])],
                out_types={"y": TensorProto.INT8 if ty is I8 else TensorProto.UINT8})
    assert ("avgpool" in _ops(m)) == (tx is ty)
    _same(m, {"x": np.random.default_rng(2).normal(0, 3, (1, 3, 6, 6)).astype(np.float32)})


def test_concat_of_mixed_types_stays_float():
    b = Builder()
    a = b.dq(b.q("a", 0.0625, np.int8(0)), 0.0625, np.int8(0))
    c = b.dq(b.q("c", 0.0625, np.uint8(128)), 0.0625, np.uint8(128))
    y = b.node("Concat", [a, c], axis=1)
    b.node("QuantizeLinear", [y, b.const("ys", np.float32(0.125)), b.const("yz", np.int8(0))], ["y"])
    m = b.model([("a", [1, 2, 3, 3]), ("c", [1, 2, 3, 3])], [("y", [1, 4, 3, 3])], out_types={"y": TensorProto.INT8})
    assert "concat" not in _ops(m)
    rng = np.random.default_rng(3)
    _same(m, {k: rng.normal(0, 3, (1, 2, 3, 3)).astype(np.float32) for k in "ac"})


def _conv(tx, tw, ty, bias=None):
    b = Builder()
    zx, zy = [np.asarray(0 if t is I8 else 128, t) for t in (tx, ty)]
    rng = np.random.default_rng(4)
    w = rng.integers(-3, 4, (4, 3, 2, 2)).astype(tw) if tw is I8 else rng.integers(125, 132, (4, 3, 2, 2)).astype(U8)
    x = b.dq(b.q("x", 0.125, zx), 0.125, zx)
    wd = b.dq(b.const("w", w), 0.25, np.asarray(0 if tw is I8 else 128, tw))
    ins = [x, wd]
    if bias is np.float32:     # a float bias constant (no DQ): onnxruntime runs the conv in float
        ins.append(b.const("bias", np.array([0.375, -0.5, 0.25, 0.0], np.float32)))
    elif bias is not None:
        bias_scale = 0.125 * 0.25 if bias is np.int32 else 0.25     # else: int8, or int32 at 8x the acc scale
        bias = np.int32 if isinstance(bias, str) else bias
        ins.append(b.dq(b.const("bias", np.array([3, -2, 1, 0], bias)), bias_scale, np.asarray(0, bias)))
    c = b.node("Conv", ins, name="conv0")
    b.node("QuantizeLinear", [c, b.const("ys", np.float32(0.25)), b.const("yz", zy)], ["y"])
    return b.model([("x", [1, 3, 5, 5])], [("y", [1, 4, 4, 4])],
                   out_types={"y": TensorProto.INT8 if ty is I8 else TensorProto.UINT8})


@pytest.mark.parametrize("tx,tw,ty,bias,fused", [
    (U8, I8, U8, np.int32, True), (I8, I8, I8, np.int32, True), (U8, U8, U8, None, True),
    (U8, I8, I8, None, False),        # input type != output type
    (I8, I8, U8, None, False),
    (I8, U8, I8, None, False),        # int8 activations need int8 weights
    (U8, I8, U8, np.int8, False),     # bias not int32 (Quark XINT8 writes int8 biases)
    (U8, I8, U8, np.float32, True),   # a float bias: onnxruntime's BiasQuantization makes it int32
    (U8, I8, U8, "int32-own-scale", False),   # int32 bias whose scale is not x_scale*w_scale
])
def test_conv_fuses_as_onnxruntime_decides(tx, tw, ty, bias, fused):
    m = _conv(tx, tw, ty, bias)
    assert ("QLinearConv" in optimized_op_types(m)) == fused      # what onnxruntime decided
    assert ("conv" in _ops(m)) == fused
    _same(m, {"x": np.random.default_rng(5).normal(0, 2, (1, 3, 5, 5)).astype(np.float32)})


def test_a_float_conv_warns_naming_node_and_reason():
    m = _conv(U8, I8, I8)
    with pytest.warns(UserWarning, match=r"float islands.*conv0.*input type uint8 differs from output type int8"):
        intsim.load(m, target="ort")


@pytest.mark.parametrize("op,per_channel,trans_b", [("Conv", False, 0), ("Conv", True, 0), ("Gemm", True, 0),
                                                     ("Gemm", True, 1), ("Gemm", False, 1)])
def test_float_bias_is_quantized_as_onnxruntime_does(op, per_channel, trans_b):
    """onnxruntime's BiasQuantization: int32 = Round(b / f32(x_scale * w_scale)), then QLinearConv/QGemm."""
    rng = np.random.default_rng(11)
    b = Builder()
    xs = np.float32(0.0173)
    x = b.dq(b.q("x", xs, np.uint8(3)), xs, np.uint8(3))
    w_shape = (8, 3, 3, 3) if op == "Conv" else ((8, 24) if trans_b else (24, 8))
    ws = rng.uniform(0.004, 0.02, 8).astype(np.float32) if per_channel else np.float32(0.011)
    axis = (0 if op == "Conv" or trans_b else 1) if per_channel else None
    wd = b.dq(b.const("w", rng.integers(-127, 128, w_shape).astype(np.int8)), ws,
              np.zeros(8, np.int8) if per_channel else np.int8(0), axis=axis)
    bias = b.const("bias", rng.normal(0, 0.5, 8).astype(np.float32))
    kw = {"pads": [1, 1, 1, 1]} if op == "Conv" else {"transB": trans_b}
    c = b.node(op, [x, wd, bias], name="node", **kw)
    b.node("QuantizeLinear", [c, b.const("ys", np.float32(0.0917)), b.const("yz", np.uint8(120))], ["y"])
    shapes = ([2, 3, 7, 7], [2, 8, 7, 7]) if op == "Conv" else ([5, 24], [5, 8])
    m = b.model([("x", shapes[0])], [("y", shapes[1])], out_types={"y": TensorProto.UINT8})
    assert ("QLinearConv" if op == "Conv" else "QGemm") in optimized_op_types(m)
    assert ("conv" if op == "Conv" else "matmul") in _ops(m)
    _same(m, {"x": rng.normal(0, 1.5, shapes[0]).astype(np.float32)})
