"""Float islands under the `ort` target are computed by onnxruntime's own kernels (one session
per island), so a QDQ graph with float LayerNormalization / Softmax / Erf (Gelu) islands between
quantized MatMuls equals onnxruntime's optimized session bit for bit; the ONNX reference
evaluator (the other targets' float engine) does not."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper

import intsim
from intsim.targets.ort import OrtTarget
from tests.ortutil import _Reader, const, float_model, run_ort

pytest.importorskip("onnxruntime")

D, H, T = 32, 48, 16


def encoder_block(seed: int = 0) -> onnx.ModelProto:
    """MatMul -> LayerNorm -> MatMul -> Gelu (Erf form) -> MatMul -> Softmax."""
    r = np.random.default_rng(seed)
    inits = {"W1": r.normal(0, 0.3, (D, D)).astype(np.float32), "W2": r.normal(0, 0.3, (D, H)).astype(np.float32),
             "W3": r.normal(0, 0.3, (H, D)).astype(np.float32), "g": r.uniform(0.5, 1.5, D).astype(np.float32),
             "b": r.normal(0, 0.1, D).astype(np.float32), "s2": np.float32(np.sqrt(2.0)),
             "one": np.float32(1.0), "half": np.float32(0.5)}
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"]),
             helper.make_node("LayerNormalization", ["m1", "g", "b"], ["ln"], axis=-1, epsilon=1e-5),
             helper.make_node("MatMul", ["ln", "W2"], ["m2"]),
             helper.make_node("Div", ["m2", "s2"], ["g1"]), helper.make_node("Erf", ["g1"], ["g2"]),
             helper.make_node("Add", ["g2", "one"], ["g3"]), helper.make_node("Mul", ["m2", "g3"], ["g4"]),
             helper.make_node("Mul", ["g4", "half"], ["gelu"]),
             helper.make_node("MatMul", ["gelu", "W3"], ["m3"]),
             helper.make_node("Softmax", ["m3"], ["y"], axis=-1)]
    return float_model(nodes, [("x", [1, T, D])], [("y", [1, T, D])], inits, opset=17)


def quantize_ops(model, calib, ops, act="u8", weight="s8"):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    qt = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "f.onnx"), os.path.join(d, "q.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, _Reader(calib), quant_format=QuantFormat.QDQ, activation_type=qt[act],
                        weight_type=qt[weight], per_channel=False, op_types_to_quantize=list(ops))
        return onnx.load(dst)


def feeds(n, seed=1):
    r = np.random.default_rng(seed)
    return [{"x": r.normal(0, 1, (1, T, D)).astype(np.float32)} for _ in range(n)]


def equal_share(model, engine, inputs) -> float:
    """Share of output elements equal to onnxruntime's optimized session with `engine`."""
    saved = OrtTarget.float_engine
    OrtTarget.float_engine = engine
    try:
        prog = intsim.load(model, target="ort")
        eq = n = 0
        for f in inputs:
            got = prog.run(f)["y"]
            want = run_ort(model, f)["y"]
            eq += int(np.sum(got == want))
            n += want.size
        return eq / n
    finally:
        OrtTarget.float_engine = saved


@pytest.mark.parametrize("act,weight", [("u8", "s8"), ("s8", "s8")])
def test_float_islands_equal_onnxruntime(act, weight):
    q = quantize_ops(encoder_block(), feeds(8, seed=7), ["MatMul"], act, weight)
    inputs = feeds(4)
    assert equal_share(q, "onnxruntime", inputs) == 1.0


def test_islands_are_sessions_of_consecutive_float_nodes():
    q = quantize_ops(encoder_block(), feeds(8, seed=7), ["MatMul"])
    prog = intsim.load(q, target="ort")
    from intsim.steps.ort_island import islands_of
    islands = {id(i): i for i in islands_of(prog._ctx).values()}
    ops = sorted(tuple(n.attrs["op_type"] for n in i.nodes) for i in islands.values())
    assert ("LayerNormalization",) in ops
    assert any("Erf" in o for o in ops) and any("Softmax" in o for o in ops)


def test_reference_engine_stays_for_other_targets():
    from intsim.targets.registry import get_target
    assert get_target("ort").float_engine == "onnxruntime"
    assert get_target("tflite").float_engine == "reference"
