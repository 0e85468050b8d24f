"""The `onnx` step's NumPy Slice (intsim.steps.onnx_op) against onnxruntime's (which clamps
as the ONNX spec says; the reference evaluator does not: a start below -dim with a negative
step gave it an empty slice where the spec and onnxruntime give index 0): random shapes,
starts/ends in and far out of range, negative axes and steps, opsets 10 and 13, through a
Program on an integer (QDQ movement) graph."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from tests.ortutil import run_ort

import intsim

BIG = 2 ** 62


@st.composite
def case(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(rank))
    n = draw(st.integers(1, rank))
    axes = draw(st.permutations(range(rank)))[:n]
    axes = [a - rank if draw(st.booleans()) else a for a in axes]
    bound = st.one_of(st.integers(-8, 8), st.sampled_from([-BIG, BIG]))
    starts = [draw(bound) for _ in axes]
    ends = [draw(bound) for _ in axes]
    steps = [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in axes]
    return shape, starts, ends, axes, steps


def _model(shape, starts, ends, axes, steps, opset):
    ins = ["q"]
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "s"), numpy_helper.from_array(np.array(3, np.int8), "z")]
    for name, v in (("st", starts), ("en", ends), ("ax", axes), ("sp", steps)):
        inits.append(numpy_helper.from_array(np.array(v, np.int64), name))
    sl = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])
    nodes = [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["x"]), sl,
             helper.make_node("QuantizeLinear", ["y", "s", "z"], ["out"])]
    g = helper.make_graph(nodes, "slice", [helper.make_tensor_value_info("q", TensorProto.INT8, list(shape))],
                          [helper.make_tensor_value_info("out", TensorProto.INT8, [f"d{i}" for i in range(len(shape))])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@settings(max_examples=120, deadline=None)
@given(c=case(), opset=st.sampled_from([10, 13]), seed=st.integers(0, 2 ** 31 - 1))
def test_slice_equals_onnxruntime(c, opset, seed):
    shape, starts, ends, axes, steps = c
    x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    inits = [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
             (("st", starts), ("en", ends), ("ax", axes), ("sp", steps))]
    plain = helper.make_graph([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.INT8, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)], inits)
    want = run_ort(helper.make_model(plain, opset_imports=[helper.make_opsetid("", opset)]), {"x": x})["y"]
    prog = intsim.load(_model(shape, starts, ends, axes, steps, opset), target="ort")
    assert [n.attrs.get("op_type") for n in prog.graph.nodes] == ["Slice"]     # the integer movement step
    got = prog.run({"q": x})["out"]
    assert got.shape == want.shape and np.array_equal(got, want)


def test_movement_steps_replay_on_new_data():
    """Frozen runs of Quantize -> Reshape -> Transpose -> Slice -> Squeeze -> Dequantize (the
    movement steps bound to their recorded buffers: views, or copies of views) equal runs with
    taps (each step's own path) on new data every run."""
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(2, np.int8), "z"),
             numpy_helper.from_array(np.array([0, 3, 2, 4], np.int64), "shape"),
             numpy_helper.from_array(np.array([1, 5], np.int64), "st"), numpy_helper.from_array(np.array([3, -9], np.int64), "en"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "ax"), numpy_helper.from_array(np.array([1, -2], np.int64), "sp"),
             numpy_helper.from_array(np.array([1], np.int64), "sq")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("Reshape", ["q", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Slice", ["t", "st", "en", "ax", "sp"], ["c"]),
             helper.make_node("Squeeze", ["c", "sq"], ["u"]),
             helper.make_node("DequantizeLinear", ["u", "s", "z"], ["y"])]
    g = helper.make_graph(nodes, "moves", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "a", "b"])], inits)
    prog = intsim.load(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), target="ort")
    rng = np.random.default_rng(3)
    for _ in range(6):
        x = rng.standard_normal((2, 24)).astype(np.float32) * 4
        want, _ = prog.run({"x": x}, taps=True)
        got = prog.run({"x": x})
        assert np.array_equal(got["y"], want["y"]) and got["y"].shape == want["y"].shape
