"""QONNX import (Quant/IntQuant, BipolarQuant, Trunc) against the qonnx package's own
execution (a test-only dependency), compared in integer codes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import intsim

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


def _reference(m, x):
    from qonnx.transformation.infer_shapes import InferShapes
    w = ModelWrapper(m).transform(InferShapes())
    return qonnx_exec.execute_onnx(w, {"x": x})["y"]


def _codes(y, scale, zp):
    return np.rint(y.astype(np.float64) / np.asarray(scale, np.float64) + zp).astype(np.int64)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed,narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR", "CEIL", "HALF_UP", "HALF_DOWN", "UP", "DOWN"])
def test_quant_activation_codes_equal_qonnx(bits, signed, narrow, per_channel, rounding):
    rng = np.random.default_rng(bits * 7 + signed + 2 * narrow)
    scale = rng.uniform(0.05, 0.3, (1, 3, 1, 1)) if per_channel else np.array(0.125)
    zp = np.zeros_like(scale) if signed else np.full_like(scale, 1.0)
    inits = {"s": scale, "z": zp, "b": bits}
    m = _model([helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=DOMAIN, signed=signed,
                                 narrow=narrow, rounding_mode=rounding)], inits, [4, 3, 5, 5], [4, 3, 5, 5])
    x = rng.normal(0, 1.5, (4, 3, 5, 5)).astype(np.float32)
    x[0, 0, 0, :3] = np.float32(scale.reshape(-1)[0]) * np.array([0.5, 1.5, -2.5], np.float32)  # ties
    want = _reference(m, x)
    got = intsim.load(m).run({"x": x})["y"]
    assert np.array_equal(_codes(got, scale, zp), _codes(want, scale, zp))
    assert np.array_equal(got, want.astype(np.float32))


def test_weight_quant_conv_chain_within_one_lsb_and_explained():
    """Quant(x, 8 bit) -> Conv(Quant(W, 4 bit per channel), float bias) -> Relu -> Quant(4 bit unsigned)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.4, (6, 3, 3, 3))
    ws = np.abs(w).reshape(6, -1).max(1).reshape(6, 1, 1, 1) / 7
    acc_scale = (np.float32(0.02) * ws.reshape(-1).astype(np.float32)).astype(np.float32)
    bias = (np.rint(rng.normal(0, 0.1, 6) / acc_scale) * acc_scale).astype(np.float32)  # as Brevitas exports it
    inits = {"sx": 0.02, "zx": 0.0, "b8": 8, "w": w, "sw": ws, "zw": np.zeros((6, 1, 1, 1)), "b4": 4,
             "bias": bias, "sy": 0.07, "zy": 0.0}
    nodes = [helper.make_node("Quant", ["x", "sx", "zx", "b8"], ["xq"], domain=DOMAIN, signed=1, narrow=0,
                              rounding_mode="ROUND"),
             helper.make_node("Quant", ["w", "sw", "zw", "b4"], ["wq"], domain=DOMAIN, signed=1, narrow=1,
                              rounding_mode="ROUND"),
             helper.make_node("Conv", ["xq", "wq", "bias"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Quant", ["r", "sy", "zy", "b4"], ["y"], domain=DOMAIN, signed=0, narrow=0,
                              rounding_mode="ROUND")]
    m = _model(nodes, inits, [8, 3, 9, 9], [8, 6, 9, 9])
    x = rng.normal(0, 1, (8, 3, 9, 9)).astype(np.float32)
    want = _codes(_reference(m, x), 0.07, 0)
    prog = intsim.load(m)
    assert [n.op for n in prog.graph.nodes].count("conv") == 1  # lowered to one integer conv
    got = _codes(prog.run({"x": x})["y"], 0.07, 0)
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff == 0).mean() >= 0.999
    # Every difference sits on a rounding boundary of the real value, where float32 in the
    # reference (conv in float) and the integer path (int32 sum, float32 requant) may part.
    xq = np.clip(np.rint(x / np.float32(0.02)), -128, 127)
    wq = np.clip(np.rint(w / ws), -7, 7)
    bias_q = np.rint(inits["bias"].astype(np.float32) / (np.float32(0.02) * ws.reshape(-1).astype(np.float32)))
    for idx in zip(*np.nonzero(diff)):
        n, c, i, j = idx
        patch = np.pad(xq[n], ((0, 0), (1, 1), (1, 1)))[:, i:i + 3, j:j + 3]
        acc = float((patch * wq[c]).sum() + bias_q[c])
        real = acc * 0.02 * ws.reshape(-1)[c] / 0.07
        assert abs(abs(real - np.floor(real)) - 0.5) < 1e-3, (idx, real)


def test_bipolar_and_trunc():
    rng = np.random.default_rng(1)
    m = _model([helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=DOMAIN)], {"s": 0.5}, [2, 7], [2, 7])
    x = rng.normal(0, 1, (2, 7)).astype(np.float32)
    x[0, 0] = 0.0
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], _reference(m, x))
    inits = {"s": 0.25, "z": 0.0, "ib": 8, "ob": 4}
    m = _model([helper.make_node("Trunc", ["x", "s", "z", "ib", "ob"], ["y"], domain=DOMAIN, rounding_mode="FLOOR")],
               inits, [2, 7], [2, 7])
    x = (rng.integers(-128, 128, (2, 7)) * 0.25).astype(np.float32)
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], _reference(m, x))


def test_verify_against_the_qonnx_reference():
    rng = np.random.default_rng(4)
    inits = {"s": 0.1, "z": 0.0, "b": 4}
    m = _model([helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain=DOMAIN, signed=1, narrow=0,
                                 rounding_mode="ROUND")], inits, [3, 5], [3, 5])
    rep = intsim.verify(m, {"x": rng.normal(0, 1, (3, 5)).astype(np.float32)}, reference="qonnx")
    d = rep.as_dict()
    assert d["passed"] and d["outputs"]["y"]["exact_fraction"] == 1.0
