"""com.microsoft QAttention (what quantize_dynamic writes after onnxruntime's transformer
optimizer fused the attention) and the optimizer's float ops (SkipLayerNormalization, BiasGelu,
Attention...): under the `ort` target intsim computes QAttention's GEMM in integers and equals
onnxruntime's session bit for bit; a target without onnxruntime float islands refuses the
com.microsoft float ops by name."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.errors import IntsimError
from tests.ortutil import run_ort

pytest.importorskip("onnxruntime")

S, D, HEADS = 16, 32, 4
MS = "com.microsoft"


def qattention_model(unidirectional: int, w_zp: int, seed: int = 0, per_column: bool = False,
                     mask: bool = False) -> onnx.ModelProto:
    """x float (B, S, D) -> DynamicQuantizeLinear -> QAttention(int8 weights (D, 3D), float bias) -> y;
    per_column: a weight scale and zero point per output column; mask: an int32 (B,) mask_index input."""
    r = np.random.default_rng(seed)
    w = r.integers(-128, 128, (D, 3 * D)).astype(np.int8)
    ws = r.uniform(0.002, 0.006, 3 * D) if per_column else np.array(0.004)
    wz = r.integers(-3, 4, 3 * D) if per_column else np.array(w_zp)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r.normal(0, .5, 3 * D).astype(np.float32), "b"),
             numpy_helper.from_array(ws.astype(np.float32), "ws"), numpy_helper.from_array(wz.astype(np.int8), "wz")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("QAttention", ["xq", "w", "b", "xs", "ws", "m" if mask else "", "xz", "wz"], ["y"],
                              domain=MS, name="qatt", num_heads=HEADS, unidirectional=unidirectional)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", S, D])]
    if mask:
        inputs.append(helper.make_tensor_value_info("m", TensorProto.INT32, ["B"]))
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", S, D])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("unidirectional", [0, 1])
@pytest.mark.parametrize("w_zp", [0, -3])
def test_qattention_equals_onnxruntime(unidirectional, w_zp):
    q = qattention_model(unidirectional, w_zp)
    prog = intsim.load(q, target="ort")
    assert any(n.op == "matmul" for n in prog.graph.nodes)      # the GEMM runs in integers
    r = np.random.default_rng(1)
    for batch in (1, 3):
        f = {"x": r.normal(0, 1, (batch, S, D)).astype(np.float32)}
        want = run_ort(q, f)["y"]
        np.testing.assert_array_equal(prog.run(f)["y"], want)
        outs, _ = prog.run(f, taps=True)
        np.testing.assert_array_equal(outs["y"], want)


@pytest.mark.parametrize("mask", [False, True])
def test_qattention_per_column_weights_and_mask_equal_onnxruntime(mask):
    q = qattention_model(0, 0, seed=3, per_column=True, mask=mask)
    prog = intsim.load(q, target="ort")
    r = np.random.default_rng(4)
    f = {"x": r.normal(0, 1, (3, S, D)).astype(np.float32)}
    if mask:
        f["m"] = np.array([S, 9, 3], np.int32)      # valid lengths per sample
    np.testing.assert_array_equal(prog.run(f)["y"], run_ort(q, f)["y"])


def test_qattention_with_past_is_refused_by_name():
    q = qattention_model(0, 0)
    node = q.graph.node[1]
    node.input.append("past")
    q.graph.input.append(helper.make_tensor_value_info("past", TensorProto.FLOAT, [2, "B", HEADS, 1, D // HEADS]))
    with pytest.raises(IntsimError, match="QAttention.*qatt.*past"):
        intsim.load(q, target="ort")


def fast_gelu_model() -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node("FastGelu", ["x"], ["y"], domain=MS, name="fg")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 8])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


def test_ms_float_op_runs_in_ort_island_and_is_refused_elsewhere():
    m = fast_gelu_model()
    f = {"x": np.random.default_rng(0).normal(0, 2, (4, 8)).astype(np.float32)}
    np.testing.assert_array_equal(intsim.load(m, target="ort").run(f)["y"], run_ort(m, f)["y"])
    with pytest.raises(IntsimError, match=r"com\.microsoft\.FastGelu at node 'fg'.*tflite"):
        intsim.load(m, target="tflite").run(f)


def test_optimized_dynamic_encoder_equals_onnxruntime(tmp_path):
    """The architecture zoo's encoder through onnxruntime's transformer optimizer (Attention,
    SkipLayerNormalization, BiasGelu) and quantize_dynamic (QAttention, MatMulInteger chains)."""
    from models import zoo
    try:
        path = zoo.arch_quantized_model("tiny_encoder", "dynamic_opt", 64)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    q = onnx.load(str(path))
    ops = {n.op_type for n in q.graph.node}
    assert {"QAttention", "SkipLayerNormalization"} <= ops
    prog = intsim.load(q, target="ort")
    for seed in range(2):
        f = {zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", 2, seed, 64)}
        np.testing.assert_array_equal(prog.run(f)[zoo.OUTPUT_NAME], run_ort(q, f)[zoo.OUTPUT_NAME])


def test_float_attention_is_reported_qattention_is_not():
    """A com.microsoft Attention with float weights is compute left in float (named in the
    warning); QAttention's Attention, whose projection intsim computes in integers, is not."""
    from intsim.ops import float_compute
    prog = intsim.load(qattention_model(0, 0), target="ort")
    assert float_compute(prog.graph) == []
    r = np.random.default_rng(0)
    inits = [numpy_helper.from_array(r.normal(0, .2, (D, 3 * D)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(3 * D, np.float32), "b")]
    g = helper.make_graph([helper.make_node("Attention", ["x", "w", "b"], ["y"], domain=MS, name="att", num_heads=HEADS)],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", S, D])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", S, D])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    with pytest.warns(UserWarning, match="'att' \\(Attention\\): a com.microsoft float op"):
        prog = intsim.load(m, target="ort")
    f = {"x": r.normal(0, 1, (2, S, D)).astype(np.float32)}
    np.testing.assert_array_equal(prog.run(f)["y"], run_ort(m, f)["y"])
