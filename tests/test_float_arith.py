"""Float islands of one Add/Sub/Mul/Div (intsim.steps.float_arith) run on NumPy: bit for bit
onnxruntime's session on the same model, over broadcast shapes and float32/float64 values with
zeros of both signs, subnormals, infinities and huge/tiny magnitudes; and in a frozen replay."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from intsim.steps.float_arith import float_arith
from tests.ortutil import run_ort

OPS = ["Add", "Sub", "Mul", "Div"]
TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}


def _model(op, a_shape, b_shape, dtype, const_b=None):
    t = TYPES[dtype]
    inputs = [helper.make_tensor_value_info("a", t, list(a_shape))]
    inits = []
    if const_b is None:
        inputs.append(helper.make_tensor_value_info("b", t, list(b_shape)))
    else:
        inits.append(helper.make_tensor("b", t, list(const_b.shape), const_b.reshape(-1).tolist()))
    g = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"], name="n")], "g", inputs,
                          [helper.make_tensor_value_info("y", t, list(np.broadcast_shapes(
                              a_shape, b_shape if const_b is None else const_b.shape)))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _values(dtype, n):
    info = np.finfo(dtype)
    special = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, float(info.tiny), float(info.tiny) / 8, float(info.max),
               -float(info.max), 3.0, 1e-30, 7.5]
    return st.lists(st.sampled_from(special) | st.floats(-1e6, 1e6, width=32 if dtype == np.float32 else 64),
                    min_size=n, max_size=n).map(lambda v: np.array(v, dtype))


def _load(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return intsim.load(model, target="ort")


@settings(max_examples=60, deadline=None)
@given(data=st.data(), op=st.sampled_from(OPS), dtype=st.sampled_from([np.float32, np.float64]),
       shapes=st.sampled_from([((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 3, 4), ()), ((1, 5), (3, 1)),
                               ((3,), (2, 1, 3)), ((), ())]))
def test_one_node_island_equals_onnxruntime_bits(data, op, dtype, shapes):
    a_shape, b_shape = shapes
    a = data.draw(_values(dtype, int(np.prod(a_shape)))).reshape(a_shape)
    b = data.draw(_values(dtype, int(np.prod(b_shape)))).reshape(b_shape)
    model = _model(op, a_shape, b_shape, dtype)
    prog = _load(model)
    assert any(fn.__module__ == "intsim.steps.float_arith" for _, fn in prog._steps)
    with np.errstate(all="ignore"):
        got = prog.run({"a": a, "b": b})["y"]
    want = run_ort(model, {"a": a, "b": b})["y"]
    assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
    bits = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


def test_replays_write_the_recorded_output_and_match_onnxruntime():
    """A frozen replay (constant divisor, as attention's 1/sqrt(d) Div) binds the ufunc to the
    recorded buffers: run after run on new data, onnxruntime's bits."""
    b = np.array(5.656854, np.float32)
    model = _model("Div", (1, 4, 8, 8), None, np.float32, const_b=b)
    prog = _load(model)
    rng = np.random.default_rng(0)
    for i in range(6):
        a = rng.standard_normal((1, 4, 8, 8)).astype(np.float32) * (10.0 ** (i - 3))
        got = prog.run({"a": a})["y"]
        want = run_ort(model, {"a": a})["y"]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert any(type(v).__name__ == "FrozenRun" for v in prog._frozen.values())


def test_not_taken_for_mixed_types_or_other_ops():
    """Only a two-operand Add/Sub/Mul/Div of one float type: anything else stays on onnxruntime."""
    class Ctx:
        constants = {}

        class graph:
            tensors = {}
    node = type("N", (), {"op": "onnx", "attrs": {"op_type": "Pow"}, "inputs": ["a", "b"], "outputs": ["y"]})()
    assert float_arith(node, Ctx) is None
    node.attrs = {"op_type": "Add"}
    Ctx.constants = {"a": np.zeros(2, np.float32), "b": np.zeros(2, np.float64)}
    assert float_arith(node, Ctx) is None


@pytest.mark.parametrize("op", OPS)
def test_bad_broadcast_is_named(op):
    model = _model(op, (2, 3), (2, 3), np.float32)
    prog = _load(model)
    with pytest.raises(intsim.IntsimError, match="broadcast|shape"):
        prog.run({"a": np.zeros((2, 3), np.float32), "b": np.zeros((4, 3), np.float32)})


def _chain_model(ops, shape, dtype):
    """y = ((a op0 b) op1 c) ... : consecutive float nodes, one island."""
    t = TYPES[dtype]
    names = [chr(ord("b") + i) for i in range(len(ops))]
    inputs = [helper.make_tensor_value_info(n, t, list(shape)) for n in ["a"] + names]
    nodes, prev = [], "a"
    for i, (op, other) in enumerate(zip(ops, names)):
        out = "y" if i == len(ops) - 1 else f"t{i}"
        nodes.append(helper.make_node(op, [prev, other], [out], name=f"n{i}"))
        prev = out
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", t, list(shape))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@settings(max_examples=40, deadline=None)
@given(data=st.data(), ops=st.lists(st.sampled_from(["Add", "Sub", "Mul"]), min_size=2, max_size=4),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_island_of_add_sub_mul_runs_node_by_node_with_onnxruntime_bits(data, ops, dtype):
    """An island of only Add/Sub/Mul (QAttention's scale Mul, Mul and bias Add) runs each node
    on NumPy: every node is one IEEE rounding, so the chain's bits are onnxruntime's session's."""
    shape = (2, 3, 5)
    feeds = {n: data.draw(_values(dtype, 30)).reshape(shape) for n in ["a"] + [chr(ord("b") + i)
                                                                               for i in range(len(ops))]}
    model = _chain_model(ops, shape, dtype)
    prog = _load(model)
    assert all(fn.__module__ == "intsim.steps.float_arith" for _, fn in prog._steps)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    want = run_ort(model, feeds)["y"]
    for _ in range(2):      # the ordinary run, then the frozen replay
        with np.errstate(all="ignore"):
            got = prog.run(feeds)["y"]
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


def test_island_with_div_stays_on_onnxruntime():
    """A Div in the island keeps the whole island on onnxruntime's session (its optimizer
    rewrites 1/x * y as y/x, DivMulFusion: node by node would round twice)."""
    prog = _load(_chain_model(["Mul", "Div", "Add"], (2, 3), np.float32))
    assert not any(fn.__module__ == "intsim.steps.float_arith" for _, fn in prog._steps)
