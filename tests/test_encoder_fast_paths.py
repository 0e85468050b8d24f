"""The encoder's fast paths through Program.run, against onnxruntime and the engine path (a run
with taps takes the int64 engine + requantizer path, which the lanes skip):
- QLinearMatMul of two activations (batched q x k^T / softmax x v: kernels.qmatmul_act), uint8
  and int8, zero points at the ends, extreme codes, odd shapes, rank 2 to 4;
- QLinearAdd of a (B, S, D) activation and a broadcast constant (a bias (D,), a per-row
  (S, 1)) or activation, both operand orders (the step plans it once per shape pair);
- the shape-arithmetic memo of evaluator nodes (same values across batches, read-only copies)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from intsim.steps import compute
from tests.ortutil import const, session

pytest.importorskip("onnxruntime")

T = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


def act_matmul(a_shape, b_shape, dt, zps, scales):
    za, zb, zy = zps
    sa, sb, sy = scales
    g = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")],
        "g", [helper.make_tensor_value_info("a", T[np.dtype(dt)], list(a_shape)),
              helper.make_tensor_value_info("b", T[np.dtype(dt)], list(b_shape))],
        [helper.make_tensor_value_info("y", T[np.dtype(dt)], list(a_shape[:-1]) + [b_shape[-1]])],
        [const("as", np.float32(sa)), const("az", np.asarray(za, dt)), const("bs", np.float32(sb)),
         const("bz", np.asarray(zb, dt)), const("ys", np.float32(sy)), const("yz", np.asarray(zy, dt))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _codes(rng, shape, dt, ends):
    info = np.iinfo(dt)
    x = rng.integers(info.min, info.max + 1, shape).astype(dt)
    if ends:
        x.reshape(-1)[::3] = info.max
        x.reshape(-1)[1::5] = info.min
    return x


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dt=st.sampled_from([np.uint8, np.int8]),
       lead=st.sampled_from([(), (3,), (2, 4), (1, 1)]), m=st.sampled_from([1, 5, 32]),
       k=st.sampled_from([1, 7, 32, 65]), n=st.sampled_from([1, 3, 32, 33]), ends=st.booleans())
def test_activation_matmul_equals_onnxruntime(seed, dt, lead, m, k, n, ends):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dt)
    pick = lambda: int(rng.choice([info.min, info.max, 0])) if ends else int(rng.integers(info.min, info.max + 1))  # noqa: E731
    a_shape, b_shape = lead + (m, k), lead + (k, n)
    scales = (float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.01, 0.2)), float(rng.uniform(0.05, 4)))
    model = act_matmul(a_shape, b_shape, dt, (pick(), pick(), pick()), scales)
    a, b = _codes(rng, a_shape, dt, ends), _codes(rng, b_shape, dt, ends)
    want = session(model).run(None, {"a": a, "b": b})[0]
    prog = intsim.load(model.SerializeToString())
    got = prog.run({"a": a, "b": b})["y"]
    np.testing.assert_array_equal(got, want)
    tapped, _ = prog.run({"a": a, "b": b}, taps=True)      # the engine path
    np.testing.assert_array_equal(tapped["y"], got)


def test_activation_matmul_takes_the_lane(monkeypatch):
    """The lane is bound once (per dtypes and N), not per run, and computes the output."""
    bound = []
    real = compute._act_call
    monkeypatch.setattr(compute, "_act_call", lambda *a: bound.append(1) or real(*a))
    model = act_matmul((2, 4, 8, 16), (2, 4, 16, 8), np.uint8, (128, 3, 0), (0.05, 0.07, 0.5))
    prog = intsim.load(model.SerializeToString())
    rng = np.random.default_rng(0)
    for _ in range(3):
        a, b = _codes(rng, (2, 4, 8, 16), np.uint8, False), _codes(rng, (2, 4, 16, 8), np.uint8, False)
        np.testing.assert_array_equal(prog.run({"a": a, "b": b})["y"], session(model).run(None, {"a": a, "b": b})[0])
    assert bound == [1]


def test_activation_matmul_long_k_takes_the_engine():
    """A K whose worst-case sum leaves int32 runs the int64 engine path (still onnxruntime's)."""
    k = 40000
    model = act_matmul((1, k), (k, 2), np.uint8, (0, 255, 0), (0.01, 0.01, 500.0))
    rng = np.random.default_rng(1)
    a, b = _codes(rng, (1, k), np.uint8, True), _codes(rng, (k, 2), np.uint8, True)
    got = intsim.load(model.SerializeToString()).run({"a": a, "b": b})["y"]
    np.testing.assert_array_equal(got, session(model).run(None, {"a": a, "b": b})[0])


def qlinear_add(a_shape, b_shape, b_const, dt, zps, scales, swap):
    za, zb, zy = zps
    sa, sb, sy = scales
    ins = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    if swap:
        ins = ins[3:6] + ins[0:3] + ins[6:]
    n = helper.make_node("QLinearAdd", ins, ["y"], domain="com.microsoft", name="qadd")
    inputs = [helper.make_tensor_value_info("a", T[np.dtype(dt)], list(a_shape))]
    inits = [const("as", np.float32(sa)), const("az", np.asarray(za, dt)), const("bs", np.float32(sb)),
             const("bz", np.asarray(zb, dt)), const("ys", np.float32(sy)), const("yz", np.asarray(zy, dt))]
    if isinstance(b_const, np.ndarray):
        inits.append(const("b", b_const))
    else:
        inputs.append(helper.make_tensor_value_info("b", T[np.dtype(dt)], list(b_shape)))
    y_shape = list(np.broadcast_shapes(a_shape, b_shape))
    g = helper.make_graph([n], "g", inputs, [helper.make_tensor_value_info("y", T[np.dtype(dt)], y_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dt=st.sampled_from([np.uint8, np.int8]),
       b_shape=st.sampled_from([(16,), (1, 16), (5, 1), (2, 1, 16), (1,), (2, 5, 1)]),
       constant=st.booleans(), swap=st.booleans(), ends=st.booleans())
def test_broadcast_add_equals_onnxruntime(seed, dt, b_shape, constant, swap, ends):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dt)
    pick = lambda: int(rng.choice([info.min, info.max, 0])) if ends else int(rng.integers(info.min, info.max + 1))  # noqa: E731
    a_shape = (2, 5, 16)
    b = _codes(rng, b_shape, dt, ends)
    scales = tuple(float(rng.uniform(0.005, 0.3)) for _ in range(3))
    model = qlinear_add(a_shape, b_shape, b if constant else None, dt, (pick(), pick(), pick()), scales, swap)
    prog = intsim.load(model.SerializeToString())
    sess = session(model)
    for _ in range(2):      # the second run reuses the plan and the spread constant
        a = _codes(rng, a_shape, dt, ends)
        feeds = {"a": a} if constant else {"a": a, "b": _codes(rng, b_shape, dt, ends)}
        np.testing.assert_array_equal(prog.run(feeds)["y"], sess.run(None, feeds)[0])
        tapped, _ = prog.run(feeds, taps=True)
        np.testing.assert_array_equal(tapped["y"], prog.run(feeds)["y"])


def test_shape_arithmetic_memo_follows_the_batch():
    """A dynamic-batch reshape (Shape -> Gather -> Unsqueeze -> Concat -> Reshape): the memoized
    evaluator results change with the batch, and the kept arrays are read-only copies."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("Div", ["n", "one"], ["n1"]),
             helper.make_node("Unsqueeze", ["n1", "ax"], ["nu"]),
             helper.make_node("Concat", ["nu", "rest"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, 4, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [None, 2, 12])],
                          [const("i0", np.array(0, np.int64)), const("one", np.array(1, np.int64)),
                           const("ax", np.array([0], np.int64)), const("rest", np.array([2, 12], np.int64))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    prog = intsim.load(m.SerializeToString())
    for n in (1, 3, 1, 2, 3):
        x = np.arange(n * 24, dtype=np.uint8).reshape(n, 4, 6)
        outs, taps = prog.run({"x": x}, taps=True)
        np.testing.assert_array_equal(outs["y"], x.reshape(n, 2, 12))
        np.testing.assert_array_equal(prog.run({"x": x})["y"], x.reshape(n, 2, 12))
    shape = taps[next(k for k in taps if taps[k]["op"] == "onnx" and "shape" in taps[k]["outputs"])]["outputs"]["shape"]
    assert not shape.flags.writeable


@pytest.mark.parametrize("form", ["qop_u8", "qdq_s8"])
def test_encoder_frozen_replay_equals_onnxruntime(form):
    """The encoder's float islands (one onnxruntime session per run of float nodes; the first
    node's step stores the island's outputs, not its inner tensors) no longer stop a frozen
    run: the third run of a feed shape replays, and every run equals onnxruntime."""
    from intsim.runtime import frozen
    from models import zoo
    from tests.ortutil import run_ort
    try:
        path = zoo.arch_quantized_model("tiny_encoder", form, 64)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    prog = intsim.load(str(path), target="ort")
    for seed in range(4):
        feeds = {zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", 2, 200 + seed, 64)}
        np.testing.assert_array_equal(prog.run(feeds)[zoo.OUTPUT_NAME], run_ort(str(path), feeds)[zoo.OUTPUT_NAME])
    assert any(type(v) is frozen.FrozenRun for v in prog._frozen.values())



@pytest.mark.parametrize("form", ["dynamic", "dynamic_opt"])
def test_encoder_token_mean_batches_equal_onnxruntime(form):
    """The dynamic forms' tail, the mean over the tokens after the last (Skip)LayerNormalization,
    runs on kernels.ort_mean's column orders (no session): one block at batch 1, blocks of 4 rows
    at batch 8 (a plain sum there differs: tests/kernels/test_ort_mean.py); the float logits
    equal onnxruntime's bit for bit, recorded and replayed."""
    from intsim.runtime import frozen
    from models import zoo
    from tests.ortutil import run_ort
    try:
        path = zoo.arch_quantized_model("tiny_encoder", form, 64)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    prog = intsim.load(str(path), target="ort")
    assert any(fn.__module__ == "intsim.steps.float_mean" for _, fn in prog._steps)
    for b in (1, 8):
        for seed in range(3):
            feeds = {zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", b, 300 + seed, 64)}
            got = prog.run(feeds)[zoo.OUTPUT_NAME]
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, run_ort(str(path), feeds)[zoo.OUTPUT_NAME])
    recs = [v for v in prog._frozen.values() if type(v) is frozen.FrozenRun]
    assert recs and all(not rec.ordinary for rec in recs)

def matmul_integer(w):
    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "w"], ["y"], name="mmi")], "g",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, w.shape[0]])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [None, w.shape[1]])],
                          [const("w", w)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_matmul_integer_skips_the_check_only_when_sums_provably_fit():
    """MatMulInteger's int32 output: with small weights every sum provably fits int32 (the
    accumulator check is skipped, the output still equals onnxruntime's); with K * 255 * 127
    past int32 the check runs and a sum that leaves int32 is an AccumulatorOverflow."""
    from intsim.errors import AccumulatorOverflow
    rng = np.random.default_rng(3)
    small = rng.integers(-128, 128, (64, 9)).astype(np.int8)
    a = rng.integers(0, 256, (5, 64)).astype(np.uint8)
    model = matmul_integer(small)
    got = intsim.load(model.SerializeToString()).run({"a": a})["y"]
    np.testing.assert_array_equal(got, session(model).run(None, {"a": a})[0])
    k = 70000
    big = np.full((k, 2), 127, np.int8)
    prog = intsim.load(matmul_integer(big).SerializeToString())
    ones = np.ones((1, k), np.uint8)
    np.testing.assert_array_equal(prog.run({"a": ones})["y"], np.full((1, 2), 127 * k, np.int32))
    with pytest.raises(AccumulatorOverflow):
        prog.run({"a": np.full((1, k), 255, np.uint8)})


@pytest.mark.parametrize("special", [None, np.nan, np.inf])
def test_dynamic_quantize_step_equals_onnxruntime_and_reference(special):
    """DynamicQuantizeLinear through its jitted code pass equals onnxruntime (finite inputs) and
    the NumPy reference kernels (any input: a NaN sends the step to the NumPy path)."""
    g = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"], name="dq")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 37])],
                          [helper.make_tensor_value_info("q", TensorProto.UINT8, [None, 37]),
                           helper.make_tensor_value_info("qs", TensorProto.FLOAT, []),
                           helper.make_tensor_value_info("qz", TensorProto.UINT8, [])], [])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    x = (np.random.default_rng(5).standard_normal((4, 37)) * 3).astype(np.float32)
    x[1, ::4] = 0.5 * np.round(x[1, ::4] * 2)
    if special is not None:
        x[2, 3] = special
    fast = intsim.load(model.SerializeToString()).run({"x": x})
    ref = intsim.load(model.SerializeToString(), kernels="reference").run({"x": x})
    for k in ("q", "qs", "qz"):
        np.testing.assert_array_equal(fast[k], ref[k])
    if special is None:
        want = session(model).run(None, {"x": x})
        for k, w in zip(("q", "qs", "qz"), want):
            np.testing.assert_array_equal(fast[k], w)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dt=st.sampled_from([np.uint8, np.int8]), ends=st.booleans(),
       shape=st.sampled_from([(2, 5, 16), (1, 7), (3, 1, 4, 9)]))
def test_same_shape_mul_equals_onnxruntime(seed, dt, ends, shape):
    """QLinearMul of two activations of one shape (the encoder's GELU x * (1 + erf)) through the
    planned path equals onnxruntime, and the taps (general) path."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dt)
    pick = lambda: int(rng.choice([info.min, info.max, 0])) if ends else int(rng.integers(info.min, info.max + 1))  # noqa: E731
    ins = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    n = helper.make_node("QLinearMul", ins, ["y"], domain="com.microsoft", name="qmul")
    inits = [const("as", np.float32(rng.uniform(0.005, 0.3))), const("az", np.asarray(pick(), dt)),
             const("bs", np.float32(rng.uniform(0.005, 0.3))), const("bz", np.asarray(pick(), dt)),
             const("ys", np.float32(rng.uniform(0.001, 0.2))), const("yz", np.asarray(pick(), dt))]
    g = helper.make_graph([n], "g", [helper.make_tensor_value_info(k, T[np.dtype(dt)], list(shape)) for k in "ab"],
                          [helper.make_tensor_value_info("y", T[np.dtype(dt)], list(shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    prog, sess = intsim.load(m.SerializeToString()), session(m)
    for _ in range(3):      # the third run replays frozen (the bound planned call)
        feeds = {"a": _codes(rng, shape, dt, ends), "b": _codes(rng, shape, dt, ends)}
        got = prog.run(feeds)["y"]
        np.testing.assert_array_equal(got, sess.run(None, feeds)[0])
        np.testing.assert_array_equal(prog.run(feeds, taps=True)[0]["y"], got)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dt=st.sampled_from([np.uint8, np.int8]), ends=st.booleans(),
       b_shape=st.sampled_from([(), (1,), (1, 1)]), constant=st.booleans(), swap=st.booleans())
def test_scalar_mul_equals_onnxruntime(seed, dt, ends, b_shape, constant, swap):
    """QLinearMul by a single value (the encoder's GELU * 0.5), constant or fed, either operand
    order, through the planned path (the value spread once when constant) equals onnxruntime."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dt)
    pick = lambda: int(rng.choice([info.min, info.max, 0])) if ends else int(rng.integers(info.min, info.max + 1))  # noqa: E731
    shape = (2, 5, 16)
    ins = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    if swap:
        ins = ins[3:6] + ins[0:3] + ins[6:]
    n = helper.make_node("QLinearMul", ins, ["y"], domain="com.microsoft", name="qmul")
    b = _codes(rng, b_shape, dt, ends)
    inits = [const("as", np.float32(rng.uniform(0.005, 0.3))), const("az", np.asarray(pick(), dt)),
             const("bs", np.float32(rng.uniform(0.005, 0.3))), const("bz", np.asarray(pick(), dt)),
             const("ys", np.float32(rng.uniform(0.001, 0.2))), const("yz", np.asarray(pick(), dt))]
    inputs = [helper.make_tensor_value_info("a", T[np.dtype(dt)], list(shape))]
    if constant:
        inits.append(const("b", b))
    else:
        inputs.append(helper.make_tensor_value_info("b", T[np.dtype(dt)], list(b_shape)))
    g = helper.make_graph([n], "g", inputs, [helper.make_tensor_value_info("y", T[np.dtype(dt)], list(shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    prog, sess = intsim.load(m.SerializeToString()), session(m)
    for _ in range(3):
        feeds = {"a": _codes(rng, shape, dt, ends)}
        if not constant:
            feeds["b"] = _codes(rng, b_shape, dt, ends)
        got = prog.run(feeds)["y"]
        np.testing.assert_array_equal(got, sess.run(None, feeds)[0])
        np.testing.assert_array_equal(prog.run(feeds, taps=True)[0]["y"], got)
