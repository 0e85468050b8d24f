"""Weights behind a Clip (Brevitas QCDQ: int8 constant -> Clip(min, max) -> DequantizeLinear):
onnxruntime's constant folding turns the Clip into an initializer and then fuses the conv into
QLinearConv; intsim folds Clip/Cast/Identity/Reshape/... of constants at import, so the conv
fuses too and equals onnxruntime bit for bit."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import intsim
from intsim.pipeline import import_onnx

from ..ortutil import optimized_op_types, run_ort
from .qdq_build import Builder


def _qcdq_conv(extra=None):
    rng = np.random.default_rng(7)
    b = Builder()
    w = rng.integers(-128, 128, (8, 3, 3, 3)).astype(np.int8)
    ws = rng.uniform(0.004, 0.02, 8).astype(np.float32)
    xs, ys = np.float32(0.0173), np.float32(0.0917)
    x = b.dq(b.q("x", xs, np.int8(0)), xs, np.int8(0))
    if extra == "reshape":      # weight stored flat, clipped, then reshaped by a constant shape
        wc = b.node("Clip", [b.const("w", w.reshape(8, 27)), b.const("wmin", np.int8(-127)),
                             b.const("wmax", np.int8(127))])
        wc = b.node("Reshape", [wc, b.const("shape", np.array([8, 3, 3, 3], np.int64))])
    else:
        wc = b.node("Clip", [b.const("w", w), b.const("wmin", np.int8(-127)), b.const("wmax", np.int8(127))])
    wd = b.dq(wc, ws, np.zeros(8, np.int8), axis=0)
    bias = rng.integers(-3000, 3000, 8).astype(np.int32)
    bd = b.dq(b.const("bias", bias), (xs * ws).astype(np.float32), np.zeros(8, np.int32), axis=0)
    c = b.node("Conv", [x, wd, bd], name="conv", pads=[1, 1, 1, 1])
    b.node("QuantizeLinear", [c, b.const("ys", ys), b.const("yz", np.int8(0))], ["y"])
    return b.model([("x", [2, 3, 9, 9])], [("y", [2, 8, 9, 9])], opset=17,
                   out_types={"y": onnx.TensorProto.INT8})


@pytest.mark.parametrize("extra", [None, "reshape"])
def test_clip_on_constant_weights_folds_and_the_conv_fuses_as_in_onnxruntime(extra):
    m = _qcdq_conv(extra)
    assert "QLinearConv" in optimized_op_types(m)                # onnxruntime folds the Clip, then fuses
    ops = [n.op for n in import_onnx(m).nodes]
    assert "conv" in ops and "onnx" not in ops
    x = np.random.default_rng(8).normal(0, 1.5, (2, 3, 9, 9)).astype(np.float32)
    want = run_ort(m, {"x": x})["y"]
    got = intsim.load(m, target="ort").run({"x": x})["y"]
    assert np.array_equal(got, want)


def test_cast_and_identity_of_constants_fold_keeping_the_type():
    b = Builder()
    w = np.arange(-4, 4, dtype=np.int8).reshape(2, 4)
    wi = b.node("Identity", [b.const("w", w)])
    wf = b.node("Cast", [wi], to=onnx.TensorProto.FLOAT)
    b.node("Add", ["x", wf], ["y"])
    m = b.model([("x", [2, 4])], [("y", [2, 4])])
    g = import_onnx(m)
    assert [n.attrs["op_type"] for n in g.nodes] == ["Add"]
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    assert np.array_equal(intsim.load(m).run({"x": x})["y"], run_ort(m, {"x": x})["y"])
