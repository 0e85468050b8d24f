"""The executor's fused MatMul (static B, 8-bit output, ORT float requantization: one SIMD pass
through a 1x1 conv plan) against onnxruntime's QLinearMatMul on random shapes and values
(K not a multiple of 4, N not a multiple of 16, one row or one column, extreme values and
zero points at the ends), against the executor's own accumulator path (a run with taps), and
proof that the fused lane runs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper

import intsim
from intsim.steps import compute
from tests.ortutil import const, session

T = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}


def qlinear_matmul(b, a_dtype, a_zp, b_zp, y_zp, scales, y_dtype):
    a_scale, b_scale, y_scale = scales
    g = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")],
        "g", [helper.make_tensor_value_info("a", T[np.dtype(a_dtype)], [None, b.shape[0]])],
        [helper.make_tensor_value_info("y", T[np.dtype(y_dtype)], [None, b.shape[1]])],
        [const("as", np.float32(a_scale)), const("az", np.asarray(a_zp, a_dtype)), const("b", b),
         const("bs", np.asarray(b_scale, np.float32)), const("bz", np.asarray(b_zp, np.int8)),
         const("ys", np.float32(y_scale)), const("yz", np.asarray(y_zp, y_dtype))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _counted(monkeypatch):
    built = []
    real = compute._matmul_lane
    monkeypatch.setattr(compute, "_matmul_lane", lambda *a: built.append(real(*a)) or built[-1])
    return built


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.sampled_from([1, 3, 8, 37]), k=st.sampled_from([1, 3, 5, 64, 130, 299]),
       n=st.sampled_from([1, 2, 10, 17, 70]), a_dtype=st.sampled_from([np.uint8, np.int8]), ends=st.booleans())
def test_fused_matmul_equals_onnxruntime(seed, m, k, n, a_dtype, ends):
    y_dtype = a_dtype                       # onnxruntime's QLinearMatMul writes A's type
    rng = np.random.default_rng(seed)
    ai, yi = np.iinfo(a_dtype), np.iinfo(y_dtype)
    a = rng.integers(ai.min, ai.max + 1, (m, k)).astype(a_dtype)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    if ends:
        a[:, ::2], b[::3] = ai.max, -128
        a[0] = ai.min
    a_zp = int(rng.choice([ai.min, ai.max, 0, 7])) if ends else int(rng.integers(ai.min, ai.max + 1))
    y_zp = int(rng.integers(yi.min, yi.max + 1))
    b_scale = (rng.uniform(0.5, 1, n) * 0.01).astype(np.float32) if rng.random() < 0.5 else np.float32(0.01)
    model = qlinear_matmul(b, a_dtype, a_zp, 0, y_zp, (0.05, b_scale, float(rng.uniform(0.5, 8))), y_dtype)
    want = session(model).run(None, {"a": a})[0]
    prog = intsim.load(model.SerializeToString())
    got = prog.run({"a": a})["y"]
    assert np.array_equal(got, want)
    tapped, _ = prog.run({"a": a}, taps=True)
    assert np.array_equal(tapped["y"], got)


def test_the_fused_lane_runs_and_is_kept_per_shape(monkeypatch):
    built = _counted(monkeypatch)
    rng = np.random.default_rng(1)
    b = rng.integers(-128, 128, (70, 10)).astype(np.int8)
    model = qlinear_matmul(b, np.uint8, 128, 0, 3, (0.05, 0.01, 0.5), np.uint8)
    prog = intsim.load(model.SerializeToString())
    for rows in (8, 8, 3):
        prog.run({"a": rng.integers(0, 256, (rows, 70)).astype(np.uint8)})
    assert len(built) == 2 and all(lane is not None for lane in built)
    prog.run({"a": np.zeros((2, 70), np.uint8)}, taps=True)      # taps: the accumulator path
    assert len(built) == 2


def test_wrong_inner_dimension_is_a_shape_error():
    b = np.ones((6, 3), np.int8)
    model = qlinear_matmul(b, np.uint8, 0, 0, 0, (0.05, 0.01, 0.5), np.uint8)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "k"     # not checked at the feed
    prog = intsim.load(model.SerializeToString())
    prog.run({"a": np.zeros((2, 6), np.uint8)})
    with pytest.raises(intsim.errors.ShapeError, match="do not multiply"):
        prog.run({"a": np.zeros((2, 5), np.uint8)})


@pytest.mark.parametrize("lead", [(2,), (1, 3), (2, 1, 2)])
def test_rank3_and_higher_a_takes_the_fused_lane(lead, monkeypatch):
    """A (..., M, K) x a 2-D B is one GEMM over A's rows: the fused lane, bit-exact with
    onnxruntime and with the accumulator path, in ordinary runs and frozen replays."""
    built = _counted(monkeypatch)
    rng = np.random.default_rng(len(lead))
    k, n = 37, 19
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    model = qlinear_matmul(b, np.uint8, 131, 0, 7, (0.05, 0.01, 2.5), np.uint8)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("a", TensorProto.UINT8, [None] * len(lead) + [5, k]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, [None] * len(lead) + [5, n]))
    prog = intsim.load(model.SerializeToString())
    for i in range(4):                  # first sight, recording, replays on changing data
        a = rng.integers(0, 256, lead + (5, k)).astype(np.uint8)
        a.reshape(-1, k)[0] = 255
        want = session(model).run(None, {"a": a})[0]
        got = prog.run({"a": a})["y"]
        assert got.shape == lead + (5, n) and np.array_equal(got, want), f"run {i}"
        tapped, _ = prog.run({"a": a}, taps=True)
        assert np.array_equal(tapped["y"], got)
    assert built and all(lane is not None for lane in built)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.sampled_from([1, 7, 33, 65]), k=st.sampled_from([3, 5, 64, 130, 193]),
       n=st.sampled_from([1, 17, 33]), a_dtype=st.sampled_from([np.uint8, np.int8]), lead=st.sampled_from([(), (2,)]),
       threads=st.sampled_from([1, 2]), ends=st.booleans())
def test_frozen_fed_lane_equals_the_int64_reference(seed, m, k, n, a_dtype, lead, threads, ends):
    """A frozen run's lane on the graph input A (`fed`: BoundPlan.gemm_rows, A's rows read as
    they are) equals the Program of NumPy int64 reference kernels, replay after replay on new
    data, on 1 and 2 kernel threads: odd M, K % 4 != 0, per-channel scales, -128/127 weights,
    A and zero points at the ends; a non-contiguous A takes the checked 4-D path, same bytes."""
    from kernels import threads as kernel_threads
    from kernels.conv_plan import BoundPlan
    rng = np.random.default_rng(seed)
    ai = np.iinfo(a_dtype)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    if ends:
        b[::2] = 127
        b[1::3] = -128
    a_zp = int(rng.choice([ai.min, ai.max])) if ends else int(rng.integers(ai.min, ai.max + 1))
    y_zp = int(rng.choice([ai.min, ai.max])) if ends else int(rng.integers(ai.min, ai.max + 1))
    b_scale = (rng.uniform(0.5, 1, n) * 0.01).astype(np.float32)
    model = qlinear_matmul(b, a_dtype, a_zp, 0, y_zp, (0.05, b_scale, float(rng.uniform(0.5, 8))), a_dtype)
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("a", T[np.dtype(a_dtype)], [None] * len(lead) + [m, k]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", T[np.dtype(a_dtype)], [None] * len(lead) + [m, n]))
    calls = []
    real = BoundPlan.gemm_rows
    before = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(BoundPlan, "gemm_rows", lambda self, a, y: calls.append(a.flags.c_contiguous) or real(self, a, y))
            prog = intsim.load(model.SerializeToString())
            ref = intsim.load(model.SerializeToString(), kernels="reference")
            for i in range(6):      # first sight, recording, replays (the last on a non-contiguous A)
                a = rng.integers(ai.min, ai.max + 1, lead + (m, k)).astype(a_dtype)
                if ends:
                    a.reshape(-1, k)[0] = ai.max
                    a.reshape(-1, k)[-1] = ai.min
                if i == 5:
                    a = np.asfortranarray(a) if a.ndim == 2 and min(m, k) > 1 else a
                got = prog.run({"a": a})["y"]
                assert np.array_equal(got, ref.run({"a": a})["y"]), f"run {i}"
    finally:
        kernel_threads.set_num_threads(before)
    assert True in calls        # the replays took gemm_rows' direct call


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_activation_times_activation_batched_equals_onnxruntime(dtype):
    """QLinearMatMul of two activations (batched, B fed at run time): each batch entry's B packed
    and multiplied by the SIMD engine (intsim.steps.engines), the exact sums, bit-exact with
    onnxruntime (edge codes, zero points at the ends) in ordinary runs and replays."""
    info = np.iinfo(dtype)
    t = T[np.dtype(dtype)]
    g = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")],
        "g", [helper.make_tensor_value_info("a", t, [2, 3, 5, 33]), helper.make_tensor_value_info("b", t, [2, 3, 33, 18])],
        [helper.make_tensor_value_info("y", t, [2, 3, 5, 18])],
        [const("as", np.float32(0.02)), const("az", np.asarray(info.max, dtype)), const("bs", np.float32(0.03)),
         const("bz", np.asarray(info.min, dtype)), const("ys", np.float32(3.0)), const("yz", np.asarray(5, dtype))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    prog = intsim.load(model.SerializeToString())
    rng = np.random.default_rng(5)
    for i in range(4):
        feeds = {"a": rng.integers(info.min, info.max + 1, (2, 3, 5, 33)).astype(dtype),
                 "b": rng.integers(info.min, info.max + 1, (2, 3, 33, 18)).astype(dtype)}
        feeds["a"][0, 0, 0], feeds["b"][1, 2, :, 0] = info.min, info.max
        want = session(model).run(None, feeds)[0]
        assert np.array_equal(prog.run(feeds)["y"], want), f"run {i}"
