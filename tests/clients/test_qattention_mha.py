"""QAttention's float part as Split + MultiHeadAttention (intsim.importer.ms_attention: no mask,
num_heads only): intsim equals onnxruntime's QAttention bit for bit over drawn batch sizes,
sequence lengths, head counts and sizes (odd ones too), weight zero points and input ranges,
and the island that runs it is built with flash attention off while a model's own
MultiHeadAttention keeps onnxruntime's default."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.steps import ort_island
from tests.ortutil import run_ort

pytest.importorskip("onnxruntime")
MS = "com.microsoft"


def _model(seq: int, heads: int, head: int, w_zp: int, seed: int) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    d = heads * head
    w = r.integers(-128, 128, (d, 3 * d)).astype(np.int8)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r.normal(0, .5, 3 * d).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(r.uniform(0.002, 0.02), np.float32), "ws"),
             numpy_helper.from_array(np.array(w_zp, np.int8), "wz")]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"]),
             helper.make_node("QAttention", ["xq", "w", "b", "xs", "ws", "", "xz", "wz"], ["y"], domain=MS,
                              name="qatt", num_heads=heads)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", seq, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", seq, d])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 3), seq=st.sampled_from([1, 2, 7, 16, 33]), heads=st.sampled_from([1, 2, 4, 8]),
       head=st.sampled_from([1, 3, 8, 16]), w_zp=st.sampled_from([-128, 0, 5, 127]),
       spread=st.sampled_from([0.1, 1.0, 8.0]), seed=st.integers(0, 2**16))
def test_split_mha_equals_qattention(batch, seq, heads, head, w_zp, spread, seed):
    m = _model(seq, heads, head, w_zp, seed)
    prog = intsim.load(m, target="ort")
    assert any(ort_island.projection_mha(n) for n in prog.graph.nodes)     # the MultiHeadAttention form
    x = (np.random.default_rng(seed + 1).standard_normal((batch, seq, heads * head)) * spread).astype(np.float32)
    want = run_ort(m, {"x": x})["y"]
    for _ in range(3):          # ordinary, recorded and replayed runs
        got = prog.run({"x": x})["y"]
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    assert os.environ.get(ort_island.NO_FLASH) is None      # set only while the session was built


def test_model_multiheadattention_keeps_flash_default(monkeypatch):
    """A MultiHeadAttention of the model itself is no projection: its island's session is built
    without touching the environment."""
    seen = []
    real = ort_island._no_flash
    monkeypatch.setattr(ort_island, "_no_flash", lambda on: seen.append(on) or real(on))
    d, heads = 8, 2
    nodes = [helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain=MS, num_heads=heads)]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5, d]) for n in ("q", "k", "v")]
    g = helper.make_graph(nodes, "g", vi, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, d])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    feeds = {n: np.random.default_rng(i).standard_normal((1, 5, d)).astype(np.float32) for i, n in enumerate("qkv")}
    with pytest.warns(UserWarning):
        prog = intsim.load(m, target="ort")
    got = prog.run(feeds)["y"]
    np.testing.assert_array_equal(got, run_ort(m, feeds)["y"])
    assert seen and not any(seen)
