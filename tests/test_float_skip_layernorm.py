"""Float islands of one com.microsoft Skip(Simplified)LayerNormalization (intsim.steps.
float_skip_layernorm, kernels.ort_skip_layernorm), and of SkipLayerNormalization -> ReduceMean
(ort_island.by_node), between DequantizeLinear and QuantizeLinear: bit for bit onnxruntime's
session on the whole model, over hidden sizes off every vector width, skip of the input's shape
or repeated over the batch, with and without beta and bias, all four outputs fetched or only y,
epsilon 0, frozen replays on new data; variants it does not run stay on onnxruntime."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from tests.ortutil import run_ort

STEP = "intsim.steps.float_skip_layernorm"


def _model(shape, skip_shape, n, simplified, beta, bias, outs, tail_mean, eps, scale, rng, mean_axis=-1):
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
             helper.make_tensor("z", TensorProto.UINT8, [], [128]),
             helper.make_tensor("gamma", TensorProto.FLOAT, [n], rng.uniform(-2, 2, n).astype(np.float32))]
    names = ["xf", "kf", "gamma"]
    if not simplified:
        names.append("beta" if beta else "")
        if beta:
            inits.append(helper.make_tensor("beta", TensorProto.FLOAT, [n], rng.uniform(-1, 1, n).astype(np.float32)))
    if bias:
        names.append("bias")
        inits.append(helper.make_tensor("bias", TensorProto.FLOAT, [n], rng.uniform(-1, 1, n).astype(np.float32)))
    while not names[-1]:
        names.pop()
    op = "SkipSimplifiedLayerNormalization" if simplified else "SkipLayerNormalization"
    produced = ["yf", "mf", "vf", "tf"][:outs]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dqx"),
             helper.make_node("DequantizeLinear", ["k", "s", "z"], ["kf"], name="dqk"),
             helper.make_node(op, names, produced, name="sln", domain="com.microsoft", epsilon=eps)]
    last = "yf"
    if tail_mean:
        nodes.append(helper.make_node("ReduceMean", ["yf"], ["mean_y"], name="mean", axes=[mean_axis], keepdims=0))
        last = "mean_y"
    outputs = []
    stat = list(shape[:-1]) + [1]
    pooled = [d for i, d in enumerate(shape) if i != mean_axis % len(shape)]
    for i, (f, dims) in enumerate(zip([last] + produced[1:], [pooled if tail_mean else list(shape),
                                                             stat, stat, list(shape)])):
        nodes.append(helper.make_node("QuantizeLinear", [f, "s", "z"], [f"q{i}"], name=f"q{i}"))
        outputs.append(helper.make_tensor_value_info(f"q{i}", TensorProto.UINT8, dims))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(shape)),
                                       helper.make_tensor_value_info("k", TensorProto.UINT8, list(skip_shape))],
                          outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


def _modules(prog):
    return {fn.__module__ for _, fn in prog._steps}


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_dq_skip_layernorm_q_equals_onnxruntime(data):
    b, s, n = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 40))
    shape = (b, s, n)
    skip_shape = data.draw(st.sampled_from([shape, (s, n), (1, s, n)]))
    simplified = data.draw(st.booleans())
    tail_mean = not simplified and data.draw(st.booleans())
    outs = 1 if tail_mean else data.draw(st.integers(1, 4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    eps = float(data.draw(st.sampled_from([1e-5, 1e-12, 0.0])))
    scale = float(np.float32(data.draw(st.floats(1e-3, 0.5))))
    model = _model(shape, skip_shape, n, simplified, data.draw(st.booleans()), data.draw(st.booleans()), outs,
                   tail_mean, eps, scale, rng)
    prog = intsim.load(model, target="ort")
    assert STEP in _modules(prog)
    for _ in range(3):      # the first run records, the others replay frozen
        feeds = {"x": rng.integers(0, 256, shape).astype(np.uint8),
                 "k": rng.integers(0, 256, skip_shape).astype(np.uint8)}
        if data.draw(st.booleans()):
            feeds["x"][...] = data.draw(st.sampled_from([0, 128, 255]))    # equal rows: variance 0
        got, want = prog.run(feeds), run_ort(model, feeds)
        for k, v in want.items():
            assert got[k].shape == v.shape and got[k].dtype == v.dtype
            np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_tail_mean_and_replays_bind_the_kernels():
    """SkipLayerNormalization -> ReduceMean over the hidden axis runs node by node on the two
    kernels, and a frozen replay binds both (no ordinary step, no session); over the tokens (the
    encoder's tail) too, the mean in onnxruntime's column orders (kernels.ort_mean_cols)."""
    from intsim.runtime import frozen
    rng = np.random.default_rng(4)
    model = _model((2, 3, 24), (2, 3, 24), 24, False, True, True, 1, True, 1e-5, 0.05, rng)
    prog = intsim.load(model, target="ort")
    assert {STEP, "intsim.steps.float_mean"} <= _modules(prog)
    for _ in range(4):
        feeds = {"x": rng.integers(0, 256, (2, 3, 24)).astype(np.uint8),
                 "k": rng.integers(0, 256, (2, 3, 24)).astype(np.uint8)}
        np.testing.assert_array_equal(prog.run(feeds)["q0"], run_ort(model, feeds)["q0"])
    recs = [v for v in prog._frozen.values() if type(v) is frozen.FrozenRun]
    assert recs and all("sln" not in rec.ordinary and "mean" not in rec.ordinary for rec in recs)
    for shape in ((2, 3, 24), (1, 6, 24), (3, 9, 24)):     # KRK blocks, RK (one block), 4 + 4 + 1 rows
        model = _model(shape, shape, 24, False, True, True, 1, True, 1e-5, 0.05, rng, mean_axis=1)
        prog = intsim.load(model, target="ort")
        assert {STEP, "intsim.steps.float_mean"} <= _modules(prog)
        for _ in range(4):
            feeds = {k: rng.integers(0, 256, shape).astype(np.uint8) for k in "xk"}
            np.testing.assert_array_equal(prog.run(feeds)["q0"], run_ort(model, feeds)["q0"])
        recs = [v for v in prog._frozen.values() if type(v) is frozen.FrozenRun]
        assert recs and all("sln" not in rec.ordinary and "mean" not in rec.ordinary for rec in recs)


def test_other_dtypes_stay_on_onnxruntime():
    """A float16 SkipLayerNormalization is not the kernel's: its island runs onnxruntime."""
    n = 8
    rng = np.random.default_rng(5)
    g = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
         helper.make_node("Cast", ["xf"], ["xh"], to=TensorProto.FLOAT16),
         helper.make_node("SkipLayerNormalization", ["xh", "xh", "gamma"], ["yh"], domain="com.microsoft",
                          epsilon=1e-5),
         helper.make_node("Cast", ["yh"], ["yf"], to=TensorProto.FLOAT),
         helper.make_node("QuantizeLinear", ["yf", "s", "z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 3, n])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [2, 3, n])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("z", TensorProto.UINT8, [], [128]),
         helper.make_tensor("gamma", TensorProto.FLOAT16, [n], rng.uniform(-2, 2, n).astype(np.float16))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    prog = intsim.load(model, target="ort")
    assert STEP not in _modules(prog)
    x = rng.integers(0, 256, (2, 3, n)).astype(np.uint8)
    np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"])


def _add_ln(shape, n, beta, eps, axis, scale, rng):
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
             helper.make_tensor("z", TensorProto.UINT8, [], [128]),
             helper.make_tensor("gamma", TensorProto.FLOAT, [n], rng.uniform(-2, 2, n).astype(np.float32)),
             helper.make_tensor("beta", TensorProto.FLOAT, [n], rng.uniform(-1, 1, n).astype(np.float32))]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dqx"),
             helper.make_node("DequantizeLinear", ["k", "s", "z"], ["kf"], name="dqk"),
             helper.make_node("Add", ["xf", "kf"], ["sum"], name="add"),
             helper.make_node("LayerNormalization", ["sum", "gamma"] + (["beta"] if beta else []), ["yf"],
                              name="ln", axis=axis, epsilon=eps),
             helper.make_node("QuantizeLinear", ["yf", "s", "z"], ["y"], name="q")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(i, TensorProto.UINT8, list(shape)) for i in "xk"],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, list(shape))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_add_layernorm_fused_by_onnxruntime_equals_it(data):
    """Add -> LayerNormalization, which onnxruntime fuses into SkipLayerNormalization (the
    encoder's `dynamic` form): run on the kernel when onnxruntime fuses the island, bit for bit
    its outputs (LayerNormalization over the last axis given as -1 or as rank - 1, with and
    without its bias; over two axes it stays on onnxruntime), replays included."""
    b, s, n = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 20)), data.draw(st.integers(1, 40))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    axis = data.draw(st.sampled_from([-1, 2, 1]))
    gamma_n = n if axis != 1 else s * n
    model = _add_ln((b, s, n), n, data.draw(st.booleans()), float(data.draw(st.sampled_from([1e-5, 0.0]))),
                    axis, float(np.float32(data.draw(st.floats(1e-3, 0.5)))), rng)
    if axis == 1:       # LayerNormalization over (s, n): scale and bias of that shape
        for t in model.graph.initializer:
            if t.name in ("gamma", "beta"):
                t.CopyFrom(helper.make_tensor(t.name, TensorProto.FLOAT, [s, n],
                                              rng.uniform(-1, 1, gamma_n).astype(np.float32)))
    prog = intsim.load(model, target="ort")
    assert (STEP in _modules(prog)) == (axis == -1)
    for _ in range(3):
        feeds = {k: rng.integers(0, 256, (b, s, n)).astype(np.uint8) for k in "xk"}
        np.testing.assert_array_equal(prog.run(feeds)["y"], run_ort(model, feeds)["y"])
