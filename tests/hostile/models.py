"""Small hostile models for tests/hostile/, built with onnx.helper."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def const(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def model(nodes, inputs, outputs, inits, opset=13, domains=()):
    g = helper.make_graph(nodes, "hostile", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] +
                          [helper.make_opsetid(d, 1) for d in domains])
    m.ir_version = 8
    return m


def qdq_conv(m_out=2, c=1, hw=4, x_zp_dtype=np.int8, w_axis=None, y_dtype=TensorProto.FLOAT,
             y_name="y"):
    """x float [N, c, hw, hw] -> Q -> DQ -> Conv 3x3 (int8 weights, DQ) -> Q -> DQ -> y."""
    rng = np.random.default_rng(0)
    w = rng.integers(-100, 100, (m_out, c, 3, 3)).astype(np.int8)
    ws = np.full(m_out, 0.02, np.float32) if w_axis is not None else np.float32(0.02)
    wz = np.zeros(m_out, np.int8) if w_axis is not None else np.int8(0)
    dq_w = helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dq_w",
                            **({"axis": w_axis} if w_axis is not None else {}))
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"], name="dq_x"), dq_w,
             helper.make_node("Conv", ["xf", "wf"], ["yf"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], [y_name], name="dq_y")]
    inits = [const("xs", np.float32(0.05)), const("xz", x_zp_dtype(0)), const("w", w), const("ws", ws),
             const("wz", wz), const("ys", np.float32(0.1)), const("yz", np.int8(0))]
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, c, hw, hw])],
                 [helper.make_tensor_value_info(y_name, y_dtype, [None, m_out, hw, hw])], inits)


def qdq_pad(pads, hw=4):
    """x float [N, 1, hw, hw] -> Q -> DQ -> Pad(pads) -> Q -> DQ -> y: an integer Pad."""
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("Pad", ["xf", "pads"], ["pf"], name="pad"),
             helper.make_node("QuantizeLinear", ["pf", "s", "z"], ["pq"], name="q_p"),
             helper.make_node("DequantizeLinear", ["pq", "s", "z"], ["y"], name="dq_y")]
    inits = [const("s", np.float32(0.05)), const("z", np.int8(0)), const("pads", np.asarray(pads, np.int64))]
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, hw, hw])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, None, None])], inits)


def float_conv(m_out=2, c=1, hw=4):
    """A float Conv + Relu model (quantize's input)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    inits = [const("w", rng.standard_normal((m_out, c, 3, 3)).astype(np.float32)),
             const("b", np.zeros(m_out, np.float32))]
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, c, hw, hw])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, m_out, hw, hw])], inits)


def qonnx_quant(bit_width):
    """x -> Quant(scale 0.1, zp 0, bit_width, signed) -> y (QONNX)."""
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], name="quant", domain="qonnx.custom_op.general",
                              signed=1, narrow=0, rounding_mode="ROUND")]
    inits = [const("s", np.float32(0.1)), const("z", np.float32(0)), const("b", np.float32(bit_width))]
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])], inits,
                 domains=("qonnx.custom_op.general",))


def qdq_add(a_shape, b_shape):
    """a, b float -> Q -> DQ -> Add -> Q -> DQ -> y: an integer Add of broadcast operands."""
    nodes = [helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"], name="q_a"),
             helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["af"], name="dq_a"),
             helper.make_node("QuantizeLinear", ["b", "s", "z"], ["bq"], name="q_b"),
             helper.make_node("DequantizeLinear", ["bq", "s", "z"], ["bf"], name="dq_b"),
             helper.make_node("Add", ["af", "bf"], ["yf"], name="add"),
             helper.make_node("QuantizeLinear", ["yf", "ys", "z"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"], name="dq_y")]
    inits = [const("s", np.float32(0.05)), const("ys", np.float32(0.1)), const("z", np.int8(0))]
    return model(nodes, [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
                         helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(a_shape))], inits)


def qdq_matmul(w_shape):
    """x float [..., K] -> Q -> DQ -> MatMul(DQ(int8 w of w_shape)) -> Q -> DQ -> y."""
    w = np.random.default_rng(0).integers(-100, 100, w_shape).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wf"], name="dq_w"),
             helper.make_node("MatMul", ["xf", "wf"], ["yf"], name="matmul"),
             helper.make_node("QuantizeLinear", ["yf", "ys", "z"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"], name="dq_y")]
    inits = [const("s", np.float32(0.05)), const("z", np.int8(0)), const("w", w), const("ws", np.float32(0.01)),
             const("ys", np.float32(0.5))]
    rank = len(w_shape)
    return model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * (rank - 1) + [w_shape[-2]])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)], inits)
