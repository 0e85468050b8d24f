"""QLinearSoftmax against onnxruntime live, on drawn rows: the com.microsoft node and the
DQ -> Softmax -> Q it fuses into, uint8 and int8, drawn scales, zero points and row lengths
(1 to 1000), rows of few distinct codes (ties: sums of equal exponentials, exact halves), and
scales whose reciprocal overflows float32. The regression row is the zoo encoder's
/layers/layers.1/Softmax row [0, 0, 7] on rng(2) input 1, where a float32 quotient gave code 6
and onnxruntime, computing in double, gives 7."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from tests.clients.test_qlinear_softmax import qlinear_softmax_model
from tests.ortutil import run_ort

pytest.importorskip("onnxruntime")


def dq_softmax_q_model(shape, dt, xs, xz, ys, yz):
    """DequantizeLinear -> Softmax(axis -1) -> QuantizeLinear on codes (onnxruntime fuses it)."""
    et = TensorProto.UINT8 if dt == np.uint8 else TensorProto.INT8
    inits = [helper.make_tensor("xs", TensorProto.FLOAT, [], [xs]), helper.make_tensor("xz", et, [], [xz]),
             helper.make_tensor("ys", TensorProto.FLOAT, [], [ys]), helper.make_tensor("yz", et, [], [yz])]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("Softmax", ["xf"], ["yf"], axis=-1),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", et, list(shape))],
                          [helper.make_tensor_value_info("y", et, list(shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def check(model, x):
    got = intsim.load(model, target="ort").run({"x": x})["y"]
    np.testing.assert_array_equal(got, run_ort(model, {"x": x})["y"])


@st.composite
def rows(draw):
    dt = draw(st.sampled_from([np.uint8, np.int8]))
    info = np.iinfo(dt)
    d = draw(st.sampled_from([1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 300, 1000]) | st.integers(1, 64))
    r = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):     # few distinct codes: ties, sums of equal exponentials
        pool = rng.integers(info.min, info.max + 1, draw(st.integers(1, 4)))
        x = rng.choice(pool, (r, d)).astype(dt)
    else:
        x = rng.integers(info.min, info.max + 1, (r, d)).astype(dt)
    xs = draw(st.sampled_from([0.0127019333, 0.05, 0.4, 2.83]) | st.floats(2.0**-10, 4.0, width=32))
    ys = draw(st.sampled_from([1 / 256, 1 / 255, 1 / 300, 1 / 127, 0.30303031, 1.0, 2.0**-70, 1.1e-44])
              | st.floats(2.0**-12, 1.0, width=32))
    yz = draw(st.sampled_from([int(info.min), 0, int(info.max)]) | st.integers(int(info.min), int(info.max)))
    return dt, x, float(xs), float(ys), yz


@settings(max_examples=60, deadline=None)
@given(rows())
def test_qlinear_softmax_node_equals_onnxruntime(case):
    dt, x, xs, ys, yz = case
    check(qlinear_softmax_model(list(x.shape), dt, xs, ys, yz, -1, 13), x)


@settings(max_examples=40, deadline=None)
@given(rows(), st.integers(0, 255))
def test_fused_dq_softmax_q_equals_onnxruntime(case, xz):
    dt, x, xs, ys, yz = case
    xz = xz if dt == np.uint8 else xz - 128
    check(dq_softmax_q_model(x.shape, dt, xs, xz, ys, yz), x)


ENCODER_ROW = [54, 112, 108, 125, 126, 62, 66, 86, 135, 123, 182, 140, 98, 70, 136, 103, 140, 96, 150, 64, 118,
               132, 120, 107, 122, 115, 173, 155, 158, 150, 82, 116]


@pytest.mark.parametrize("fused", [False, True])
def test_encoder_softmax_row(fused):
    """Element 23 of this row: e * Y / sum is 6.5 in float32 (code 6); onnxruntime gives 7."""
    x = np.array([ENCODER_ROW], np.uint8)
    xs, ys = 0.012701933272182941, 0.003921568859368563
    m = dq_softmax_q_model(x.shape, np.uint8, xs, 122, ys, 0) if fused else \
        qlinear_softmax_model([1, 32], np.uint8, xs, ys, 0, -1, 13)
    got = intsim.load(m, target="ort").run({"x": x})["y"]
    want = run_ort(m, {"x": x})["y"]
    assert want[0, 23] == 7
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("form", ["qdq_u8", "qdq_s8"])
def test_zoo_encoder_input_equals_onnxruntime(form):
    """The zoo encoder on rng(2) input 1 (batch of 8 sliced [1:2]): two logits differed."""
    from models import zoo
    try:
        path = zoo.arch_quantized_model("tiny_encoder", form, 64)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    x = np.random.default_rng(2).standard_normal((8,) + tuple(zoo.arch_input_shape("tiny_encoder", 64)),
                                                np.float32)[1:2]
    feeds = {zoo.INPUT_NAME: x}
    got = intsim.load(str(path), target="ort").run(feeds)[zoo.OUTPUT_NAME]
    np.testing.assert_array_equal(got, run_ort(str(path), feeds)[zoo.OUTPUT_NAME])
