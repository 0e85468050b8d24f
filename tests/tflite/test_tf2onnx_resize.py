"""The two Resize forms tf2onnx writes for TFLite's RESIZE_* that the ONNX reference evaluator
runs otherwise than onnxruntime (importer.generic): coordinate_transformation_mode
tf_half_pixel_for_nn at opset 13+ and float `scales` that stand for sizes. intsim equals
onnxruntime on hypothesis-drawn shapes and sizes, on float and on QDQ int8 graphs."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _resize_model(shape, out_hw, mode, ctm, nearest, qdq: bool) -> bytes:
    scales = np.asarray([1, 1, out_hw[0] / shape[2], out_hw[1] / shape[3]], np.float32)   # tf2onnx's form
    inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi"), numpy_helper.from_array(scales, "scales")]
    nodes = [helper.make_node("Resize", ["r_in", "roi", "scales"], ["r_out"], mode=mode,
                              coordinate_transformation_mode=ctm, nearest_mode=nearest)]
    elem = TensorProto.FLOAT
    if qdq:
        elem = TensorProto.INT8
        inits += [numpy_helper.from_array(np.asarray(0.05, np.float32), "s"),
                  numpy_helper.from_array(np.asarray(3, np.int8), "z")]
        nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["r_in"]), *nodes,
                 helper.make_node("QuantizeLinear", ["r_out", "s", "z"], ["y"])]
    else:
        nodes[0].input[0], nodes[0].output[0] = "x", "y"
    g = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("x", elem, list(shape))],
                          [helper.make_tensor_value_info("y", elem, ["n", "c", "h", "w"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]).SerializeToString()


def _compare(data, x):
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = intsim.load(data, target="ort").run({"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


dims = st.integers(1, 7)


@SETTINGS
@given(c=st.integers(1, 3), h=dims, w=dims, oh=st.integers(1, 15), ow=st.integers(1, 15), qdq=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_tf_half_pixel_for_nn_equals_onnxruntime(c, h, w, oh, ow, qdq, seed):
    """Away from exact ties: where (x + 0.5) * in / out is an integer, onnxruntime's float32
    quotient and the reference evaluator's double one can floor to neighbours (6 -> 1:
    0.5 / 0.16666667f is 3.0 in float32, 2.99999985 in double), a coordinate-precision
    difference of every Resize, not of this rewrite; drawn shapes with such a tie are skipped."""
    assume(all((2 * x + 1) * n % (2 * o) for n, o in ((h, oh), (w, ow)) for x in range(o)))
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8) if qdq else \
        rng.normal(0, 1, (1, c, h, w)).astype(np.float32)
    _compare(_resize_model((1, c, h, w), (oh, ow), "nearest", "tf_half_pixel_for_nn", "floor", qdq), x)


@SETTINGS
@given(c=st.integers(1, 3), h=dims, w=dims, oh=st.integers(1, 15), ow=st.integers(1, 15),
       seed=st.integers(0, 2**31 - 1))
def test_scales_for_sizes_give_onnxruntimes_shape(c, h, w, oh, ow, seed):
    """Resize with scales out/in in float32 (9/5 -> 1.79999995: 9 rows in onnxruntime, 8 in
    double): intsim's output has onnxruntime's shape, nearest and linear, float and QDQ int8.
    Values are not compared here: onnxruntime computes source coordinates in float32, the
    reference evaluator in double (asymmetric 1 / 0.33333334f is 3 in float32, 2.9999999 in
    double), and its integer bilinear rounds otherwise; a Resize difference apart from the sizes."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
    floats = rng.normal(0, 1, (1, c, h, w)).astype(np.float32)
    for mode, qdq in (("linear", False), ("linear", True), ("nearest", False), ("nearest", True)):
        x = codes if qdq else floats
        data = _resize_model((1, c, h, w), (oh, ow), mode, "half_pixel", "round_prefer_floor", qdq)
        want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert intsim.load(data, target="ort").run({"x": x})["y"].shape == want.shape, (mode, qdq)


def test_known_case_warns():
    data = _resize_model((1, 2, 5, 5), (9, 11), "linear", "half_pixel", "floor", False)
    x = np.random.default_rng(0).normal(0, 1, (1, 2, 5, 5)).astype(np.float32)
    import pytest

    with pytest.warns(UserWarning, match=r"give \[2, 9, 11\] after the batch in onnxruntime"):
        prog = intsim.load(data, target="ort")
    assert prog.run({"x": x})["y"].shape == (1, 2, 9, 11)
    assert onnx.load_from_string(data).opset_import[0].version == 15
