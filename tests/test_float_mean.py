"""Float islands of one ReduceMean over trailing axes (intsim.steps.float_mean, kernels.ort_mean)
inside a quantized DQ -> ReduceMean -> Q tail: bit for bit onnxruntime's session on the whole
model (its own buffers, its optimizer), over shapes whose rows cross 16-byte alignments, axes
given as attribute (opset 13) or input (opset 18), keepdims, contiguous axes not trailing (the
column orders), other axes (still on onnxruntime), and frozen replays on new data."""
from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from tests.ortutil import run_ort


def _model(shape, axes, keepdims, opset, x_scale, x_zp, y_scale, y_zp):
    ins = ["xf"]
    inits = [helper.make_tensor("xs", TensorProto.FLOAT, [], [x_scale]),
             helper.make_tensor("xz", TensorProto.UINT8, [], [x_zp]),
             helper.make_tensor("ys", TensorProto.FLOAT, [], [y_scale]),
             helper.make_tensor("yz", TensorProto.UINT8, [], [y_zp])]
    attrs = {"keepdims": keepdims}
    if opset >= 18:
        inits.append(helper.make_tensor("axes", TensorProto.INT64, [len(axes)], list(axes)))
        ins.append("axes")
    else:
        attrs["axes"] = list(axes)
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"], name="dq"),
             helper.make_node("ReduceMean", ins, ["m"], name="mean", **attrs),
             helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"], name="q")]
    red = {a % len(shape) for a in axes}
    out = [1 if i in red else d for i, d in enumerate(shape) if keepdims or i not in red]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, out)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _load(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return intsim.load(model, target="ort")


@settings(max_examples=40, deadline=None)
@given(data=st.data(), opset=st.sampled_from([13, 18]), keepdims=st.integers(0, 1))
def test_dq_mean_q_tail_equals_onnxruntime(data, opset, keepdims):
    shape = tuple(data.draw(st.lists(st.integers(1, 19), min_size=2, max_size=4)))
    r = len(shape)
    k = data.draw(st.integers(1, r))
    trailing = data.draw(st.booleans())
    axes = list(range(r - k, r)) if trailing else sorted(data.draw(st.sets(st.integers(0, r - 1), min_size=1)))
    axes = [a - r if data.draw(st.booleans()) else a for a in axes]
    x_scale = float(np.float32(data.draw(st.floats(1e-3, 1.0))))
    y_scale = float(np.float32(x_scale * data.draw(st.floats(0.05, 2.0))))
    x_zp, y_zp = data.draw(st.integers(0, 255)), data.draw(st.integers(0, 255))
    model = _model(shape, axes, keepdims, opset, x_scale, x_zp, y_scale, y_zp)
    prog = _load(model)
    norm = sorted(a % r for a in axes)
    if norm == list(range(norm[0], norm[-1] + 1)):      # contiguous: trailing or not
        assert any(fn.__module__ == "intsim.steps.float_mean" for _, fn in prog._steps)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(3):      # the first run records, the others replay frozen
        x = rng.integers(0, 256, shape).astype(np.uint8)
        if data.draw(st.booleans()):
            x[..., 0] = data.draw(st.sampled_from([0, 255]))
        got = prog.run({"x": x})["y"]
        want = run_ort(model, {"x": x})["y"]
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_audio_tail_shape_equals_onnxruntime():
    """The audio net's tail: (8, 64, 14) rows of 14 (rows start on every 8-byte phase)."""
    model = _model((8, 64, 14), [-1], 0, 13, 0.0473, 3, 0.0291, 0)
    prog = _load(model)
    assert any(fn.__module__ == "intsim.steps.float_mean" for _, fn in prog._steps)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.integers(0, 256, (8, 64, 14)).astype(np.uint8)
        np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"])


def test_mean_of_everything_stays_0d():
    """Regression: ReduceMean of all axes without keepdims gives a 0-d tensor, and the
    QuantizeLinear after it kept it 0-d only once intsim.numerics.quantize_planned stopped
    letting np.ascontiguousarray turn it 1-d (it returned shape (1,), onnxruntime ())."""
    model = _model((3, 5), [0, 1], 0, 13, 0.02, 7, 0.01, 100)
    prog = _load(model)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(0, 256, (3, 5)).astype(np.uint8)
        got, want = prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"]
        assert got.shape == want.shape == ()
        np.testing.assert_array_equal(got, want)


def test_token_mean_shapes_equal_onnxruntime():
    """The encoder's tail over the tokens, (B, 32, 128) axis 1: one block (B = 1, rows in order)
    and 8 blocks (rows 4 at a time); keepdims both ways; frozen replays on new data."""
    rng = np.random.default_rng(11)
    for b, keep in ((1, 0), (8, 0), (8, 1), (3, 1)):
        model = _model((b, 32, 128), [1], keep, 13, 0.0473, 3, 0.0291, 0)
        prog = _load(model)
        assert any(fn.__module__ == "intsim.steps.float_mean" for _, fn in prog._steps)
        for _ in range(3):
            x = rng.integers(0, 256, (b, 32, 128)).astype(np.uint8)
            np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"])
