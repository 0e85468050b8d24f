"""QONNX bias quantizers: a 32-bit Quant (Brevitas Int32Bias) is accepted, its codes become the
int32 bias of the fused integer conv, and intsim equals qonnx's execute_onnx bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.errors import IntsimError
from intsim.pipeline import import_onnx

qonnx_exec = pytest.importorskip("qonnx.core.onnx_exec")
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402

DOMAIN = "qonnx.custom_op.general"


def _model(nodes, inits, in_shape, out_shape):
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    m.ir_version = 8
    return m


def _qonnx(m, x):
    from qonnx.transformation.infer_shapes import InferShapes
    return qonnx_exec.execute_onnx(ModelWrapper(m).transform(InferShapes()), {"x": x})["y"]


def _quant(i, o, s, bits, signed=1, narrow=0):
    return helper.make_node("Quant", [i, s, "zero", bits], [o], domain=DOMAIN, signed=signed, narrow=narrow,
                            rounding_mode="ROUND")


def _int32_bias_conv(rng):
    """Quant(x, 8 bit) -> Conv(Quant(W, 4 bit per channel), Quant(b, 32 bit, x_scale*w_scale)) -> Quant(8 bit).
    Power-of-two scales: qonnx's float conv is exact, so integer and float readings agree."""
    ws = 2.0 ** -rng.integers(3, 6, (4, 1, 1, 1))
    inits = {"zero": 0.0, "b8": 8, "b4": 4, "b32": 32, "xs": 2.0 ** -4, "ws": ws, "ys": 2.0 ** -2,
             "bs": (np.float32(2.0 ** -4) * ws.reshape(-1)).astype(np.float32),
             "w": rng.normal(0, 0.3, (4, 3, 3, 3)), "b": rng.normal(0, 0.5, 4)}
    nodes = [_quant("x", "xq", "xs", "b8"), _quant("w", "wq", "ws", "b4", narrow=1),
             _quant("b", "bq", "bs", "b32"), helper.make_node("Conv", ["xq", "wq", "bq"], ["c"], pads=[1, 1, 1, 1]),
             _quant("c", "y", "ys", "b8")]
    return _model(nodes, inits, [2, 3, 6, 6], [2, 4, 6, 6])


def test_int32_bias_quant_is_accepted_fused_and_equals_qonnx():
    rng = np.random.default_rng(0)
    m = _int32_bias_conv(rng)
    conv = [n for n in import_onnx(m).nodes if n.op == "conv"]
    assert len(conv) == 1 and conv[0].inputs[-1]          # the 32-bit codes are the conv's int32 bias
    x = rng.normal(0, 1, (2, 3, 6, 6)).astype(np.float32)
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], _qonnx(m, x))


def test_wide_quant_of_a_constant_equals_qonnx_even_at_the_clamp():
    """y = x + Quant(c, 32 bit): codes up to the int32 limits (where float32 rounds qmax up)."""
    c = np.array([1.0, -3.5, 2.0 ** 40, -(2.0 ** 40), 1234.5], np.float32)
    inits = {"zero": 0.0, "b32": 32, "s": 2.0 ** -3, "c": c}
    m = _model([_quant("c", "cq", "s", "b32"), helper.make_node("Add", ["x", "cq"], ["y"])], inits, [5], [5])
    x = np.linspace(-2, 2, 5).astype(np.float32)
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], _qonnx(m, x))


def test_a_wide_quant_of_an_activation_is_refused_by_name():
    m = _model([_quant("x", "y", "s", "b24")], {"zero": 0.0, "b24": 24, "s": 0.5}, [3], [3])
    with pytest.raises(IntsimError, match="24-bit Quant of a tensor computed at run time"):
        intsim.load(m)


def _float_bias_model(rng, op, wbits, relu):
    """Quant(x, 8) -> Conv/Gemm(Quant(W, wbits per channel), float bias) [-> Relu] -> Quant(out)."""
    c = 16
    w = rng.normal(0, 0.3, (c, 8, 3, 3) if op == "Conv" else (c, 24)).astype(np.float32)
    ws = (np.abs(w).reshape(c, -1).max(1) / (2 ** (wbits - 1) - 1)).astype(np.float32)
    ws = ws.reshape((c, 1, 1, 1) if op == "Conv" else (c, 1))
    inits = {"zero": 0.0, "b8": 8, "bw": wbits, "xs": 0.0213, "ws": ws, "ys": 0.0771, "w": w,
             "b": rng.normal(0, 0.3, c)}
    kw = {"pads": [1, 1, 1, 1]} if op == "Conv" else {"transB": 1}
    nodes = [_quant("x", "xq", "xs", "b8"), _quant("w", "wq", "ws", "bw", narrow=1),
             helper.make_node(op, ["xq", "wq", "b"], ["c"], **kw)]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
    nodes.append(_quant("r" if relu else "c", "y", "ys", "b8", signed=0 if relu else 1))
    shape_in, shape_out = ([4, 8, 12, 12], [4, c, 12, 12]) if op == "Conv" else ([64, 24], [64, c])
    return _model(nodes, inits, shape_in, shape_out), shape_in


@pytest.mark.parametrize("op", ["Conv", "Gemm"])
@pytest.mark.parametrize("wbits", [3, 4, 8])
@pytest.mark.parametrize("relu", [False, True])
def test_qonnx_float_bias_is_added_in_float_as_qonnx_does(op, wbits, relu):
    """The float bias is not rounded onto the accumulator grid (which missed up to 2% of outputs
    by 1 LSB here): the integer accumulation is dequantized and the bias added in float32."""
    rng = np.random.default_rng(wbits + 10 * relu)
    m, shape_in = _float_bias_model(rng, op, wbits, relu)
    ops = [n.op if n.op != "onnx" else n.attrs["op_type"] for n in import_onnx(m).nodes]
    assert ops.count("conv" if op == "Conv" else "matmul") == 1 and "Add" in ops
    x = rng.normal(0, 1, shape_in).astype(np.float32)
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], _qonnx(m, x))
