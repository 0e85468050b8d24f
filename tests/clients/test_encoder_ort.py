"""A small transformer encoder layer (attention with Softmax, residual Adds, LayerNormalization,
FFN with Gelu in Erf form) quantized by onnxruntime's quantize_static, QDQ and QOperator, uint8
and int8 activations: intsim's `ort` target equals onnxruntime's optimized session bit for bit
(QLinearSoftmax fused or written, float islands by onnxruntime), also with taps on."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import intsim
from tests.ortutil import float_model, quantize, run_ort

pytest.importorskip("onnxruntime")

T, D, F = 8, 32, 64


def encoder():
    r = np.random.default_rng(0)

    def n(*s):
        return r.normal(0, 0.3, s).astype(np.float32)
    inits = {"Wq": n(D, D), "Wk": n(D, D), "Wv": n(D, D), "Wo": n(D, D), "W1": n(D, F), "b1": n(F), "W2": n(F, D),
             "b2": n(D), "g1": np.ones(D, np.float32), "be1": np.zeros(D, np.float32),
             "g2": np.ones(D, np.float32), "be2": np.zeros(D, np.float32), "sc": np.float32(1 / np.sqrt(D)),
             "s2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(.5)}
    N = helper.make_node
    nodes = [N("MatMul", ["x", "Wq"], ["q"]), N("MatMul", ["x", "Wk"], ["k"]), N("MatMul", ["x", "Wv"], ["v"]),
             N("Transpose", ["k"], ["kt"], perm=[0, 2, 1]), N("MatMul", ["q", "kt"], ["qk"]),
             N("Mul", ["qk", "sc"], ["qks"]), N("Softmax", ["qks"], ["p"], axis=-1), N("MatMul", ["p", "v"], ["a"]),
             N("MatMul", ["a", "Wo"], ["o"]), N("Add", ["o", "x"], ["r1"]),
             N("LayerNormalization", ["r1", "g1", "be1"], ["l1"], axis=-1), N("MatMul", ["l1", "W1"], ["h0"]),
             N("Add", ["h0", "b1"], ["h"]), N("Div", ["h", "s2"], ["e0"]), N("Erf", ["e0"], ["e1"]),
             N("Add", ["e1", "one"], ["e2"]), N("Mul", ["h", "e2"], ["e3"]), N("Mul", ["e3", "half"], ["ge"]),
             N("MatMul", ["ge", "W2"], ["f0"]), N("Add", ["f0", "b2"], ["f"]), N("Add", ["f", "l1"], ["r2"]),
             N("LayerNormalization", ["r2", "g2", "be2"], ["y"], axis=-1)]
    return float_model(nodes, [("x", [1, T, D])], [("y", [1, T, D])], inits, opset=17)


@pytest.mark.parametrize("fmt", ["qdq", "qop"])
@pytest.mark.parametrize("act", ["u8", "s8"])
def test_encoder_equals_onnxruntime(fmt, act):
    r = np.random.default_rng(1)
    calib = [{"x": r.normal(0, 1, (1, T, D)).astype(np.float32)} for _ in range(8)]
    q = quantize(encoder(), calib, fmt=fmt, act=act, per_channel=False)
    prog = intsim.load(q, target="ort")
    assert any(n.op == "softmax" for n in prog.graph.nodes)
    for _ in range(3):
        f = {"x": r.normal(0, 1, (1, T, D)).astype(np.float32)}
        want = run_ort(q, f)["y"]
        np.testing.assert_array_equal(prog.run(f)["y"], want)
        outs, taps = prog.run(f, taps=True)      # taps fill the islands' inner tensors too
        np.testing.assert_array_equal(outs["y"], want)
        assert all(o in t["outputs"] for t in taps.values() for o in t["outputs"])


def test_dynamic_quantized_encoder_equals_onnxruntime(tmp_path):
    """quantize_dynamic: MatMulInteger -> Cast -> Mul [-> Add bias], which onnxruntime fuses
    into MatMulIntegerToFloat / DynamicQuantizeMatMul; its float graph (Gelu, SkipLayerNormalization,
    FusedMatMul) starts after them, and so do intsim's onnxruntime islands."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    onnx.save(encoder(), tmp_path / "f.onnx")
    quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=QuantType.QInt8)
    q = onnx.load(tmp_path / "q.onnx")
    prog = intsim.load(q, target="ort")
    r = np.random.default_rng(2)
    for _ in range(3):
        f = {"x": r.normal(0, 1, (1, T, D)).astype(np.float32)}
        np.testing.assert_array_equal(prog.run(f)["y"], run_ort(q, f)["y"])
