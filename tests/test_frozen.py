"""Frozen runs (intsim.frozen): replays on fixed buffers give exactly the ordinary runs' outputs
(and onnxruntime's), run after run on different data, and fall back to the ordinary path
whenever a replay cannot reproduce it."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto, helper

import intsim
from intsim.runtime import frozen
from intsim.runtime import program as executor
from kernels import threads as kernel_threads
from tests.ortutil import run_ort

zoo = pytest.importorskip("models.zoo")

SMALL = [m for m in zoo.MODELS if m != "resnet18_s"]


def _kept(prog) -> list:
    return [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]


@pytest.fixture
def replays(monkeypatch):
    """Counts FrozenRun.replay calls."""
    count = [0]
    real = frozen.FrozenRun.replay

    def spy(self, feeds):
        count[0] += 1
        return real(self, feeds)
    monkeypatch.setattr(frozen.FrozenRun, "replay", spy)
    return count


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", zoo.FORMS)
@pytest.mark.parametrize("name", SMALL)
def test_replays_equal_onnxruntime_run_after_run(name, form, threads, replays):
    path = zoo.quantized_model(name, form)
    batches = [zoo.sample_inputs(name, 4, seed=s) for s in (1, 2, 3)]
    want = [run_ort(str(path), f, optimized=True) for f in batches]
    prog = intsim.load(path)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        for i in (0, 1, 2, 0, 2, 1, 1):     # first sight, recording, then replays on changing data
            got = prog.run(batches[i])
            for k, v in want[i].items():
                np.testing.assert_array_equal(got[k], v, err_msg=f"{name}/{form} batch {i}")
    finally:
        kernel_threads.set_num_threads(old)
    assert len(_kept(prog)) == 1 and replays[0] == 5


def test_mobilenet_convs_adds_and_matmul_replay_as_bound_kernel_calls():
    """Only the steps without a freeze hook (or whose last run took a general path) run their
    ordinary Python path in a replay: in MobileNetV2-style u8 on a SIMD host, none (quantize,
    even of the graph input, and dequantize replay into their recorded outputs; the flatten
    step's output is a view of its recorded input, intsim.steps.onnx_op._movement)."""
    from kernels.cpu import best_isa
    if best_isa() == "portable":
        pytest.skip("no fused lanes on the portable kernels")
    prog = intsim.load(zoo.quantized_model("mobilenetv2_s", "qdq_u8_pc"))
    feeds = zoo.sample_inputs("mobilenetv2_s", 2, seed=1)
    prog.run(feeds)
    prog.run(feeds)
    (rec,) = _kept(prog)
    ops = {node.name: node.op for node, _ in prog._steps}
    assert sorted({ops[n] for n in rec.ordinary}) == []
    assert "onnx" in ops.values()       # the flatten step is there, replayed by its hook
    assert len(rec.calls) == len(prog._steps)


def test_outputs_are_copies_not_the_buffers():
    prog = intsim.load(zoo.quantized_model("digits_cnn", "qdq_u8_pc"))
    feeds = zoo.sample_inputs("digits_cnn", 3, seed=4)
    first = prog.run(feeds)
    outs = [prog.run(feeds) for _ in range(3)]      # recording, replay, replay
    for o in outs:
        for k in o:
            np.testing.assert_array_equal(o[k], first[k])
            o[k][...] = 0
    again = prog.run(feeds)
    for k in again:
        np.testing.assert_array_equal(again[k], first[k])
        assert not np.shares_memory(again[k], outs[-1][k])


def _reshape_model():
    """y = relu(reshape(x, s)): the output shape depends on the values of input s."""
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("Relu", ["r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6]),
         helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_a_data_dependent_shape_falls_back_to_the_ordinary_run(tmp_path):
    path = tmp_path / "reshape.onnx"
    path.write_bytes(_reshape_model().SerializeToString())
    prog = intsim.load(path)
    x = np.arange(-6, 6, dtype=np.float32).reshape(2, 6)
    for shape in ([3, 4], [3, 4], [3, 4], [4, 3], [6, 2], [3, 4]):
        got = prog.run({"x": x, "s": np.array(shape, np.int64)})["y"]
        np.testing.assert_array_equal(got, np.maximum(x.reshape(shape), 0))
    assert list(prog._frozen.values()) == [None]        # the replay of [4, 3] dropped the frozen run


def test_concurrent_runs_of_one_program(replays):
    """Threads sharing a Program: one replays, the others take the ordinary path meanwhile."""
    prog = intsim.load(zoo.quantized_model("mobilenetv2_s", "qdq_u8_pc"))
    batches = [zoo.sample_inputs("mobilenetv2_s", 2, seed=s) for s in range(4)]
    executor_free = intsim.load(zoo.quantized_model("mobilenetv2_s", "qdq_u8_pc"))
    want = []
    for f in batches:
        want.append(executor_free._execute(executor_free._check_feeds(f), False))
    prog.run(batches[0])
    prog.run(batches[0])
    errors = []

    def worker(t):
        try:
            for r in range(12):
                i = (t + r) % len(batches)
                got = prog.run(batches[i])
                for k, v in want[i].items():
                    np.testing.assert_array_equal(got[k], v)
        except Exception as e:      # reported below, in the main thread
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert replays[0] > 0


def test_buffer_budget_and_switch(monkeypatch):
    feeds = zoo.sample_inputs("digits_cnn", 2, seed=1)
    path = zoo.quantized_model("digits_cnn", "qdq_u8_pc")
    monkeypatch.setattr(executor, "FREEZE_MAX_BYTES", 1)
    prog = intsim.load(path)
    outs = [prog.run(feeds) for _ in range(3)]
    assert list(prog._frozen.values()) == [None]
    monkeypatch.setattr(executor, "FREEZE_MAX_BYTES", 64 << 20)
    monkeypatch.setattr(executor, "FREEZE_KEYS", 2)
    prog = intsim.load(path)
    for n in (1, 2, 3, 1, 2, 3):        # batch sizes: two keys kept, the third runs ordinarily
        prog.run(zoo.sample_inputs("digits_cnn", n, seed=1))
    assert len(_kept(prog)) == 2 and None in prog._frozen.values()
    monkeypatch.setattr(executor, "FREEZE", False)
    prog = intsim.load(path)
    for _ in range(3):
        for k, v in prog.run(feeds).items():
            np.testing.assert_array_equal(v, outs[0][k])
    assert not prog._frozen


def test_taps_runs_are_never_frozen():
    prog = intsim.load(zoo.quantized_model("digits_cnn", "qdq_u8_pc"))
    feeds = zoo.sample_inputs("digits_cnn", 2, seed=1)
    for _ in range(3):
        prog.run(feeds, taps=True)
    assert not prog._frozen


def test_an_error_in_a_replay_is_the_ordinary_runs_and_the_next_replay_is_clean():
    """A data-dependent error (a 16-bit exact accumulator overflowing) raised mid-replay is the
    ordinary run's error; later replays of good data still give the ordinary results."""
    from intsim.accumulator import Accumulator
    from intsim.errors import AccumulatorOverflow
    path = zoo.quantized_model("digits_cnn", "qdq_u8_pc")
    prog = intsim.load(path, accumulator=Accumulator(bits=16))
    ordinary = intsim.load(path, accumulator=Accumulator(bits=16))
    rng = np.random.default_rng(1)
    small = {"input": np.zeros((2, 1, 8, 8), np.float32)}
    other = {"input": (rng.standard_normal((2, 1, 8, 8)) * 1e-3).astype(np.float32)}
    big = {"input": (rng.standard_normal((2, 1, 8, 8)) * 3).astype(np.float32)}
    with pytest.raises(AccumulatorOverflow) as want:
        ordinary._execute(ordinary._check_feeds(big), False)
    prog.run(small)
    prog.run(small)
    assert len(_kept(prog)) == 1
    with pytest.raises(AccumulatorOverflow) as got:
        prog.run(big)
    assert str(got.value) == str(want.value)
    exps = [ordinary._execute(ordinary._check_feeds(f), False) for f in (other, small)]
    assert any(not np.array_equal(exps[0][k], exps[1][k]) for k in exps[0])     # stale buffers would show
    for feeds, exp in zip((other, small), exps):
        for k, v in prog.run(feeds).items():
            np.testing.assert_array_equal(v, exp[k])
    assert len(_kept(prog)) == 1


def test_one_off_shapes_are_forgotten_and_a_refusing_hook_keeps_its_step_ordinary(monkeypatch):
    prog = intsim.load(zoo.quantized_model("digits_cnn", "qdq_u8_pc"))
    monkeypatch.setattr(executor, "FREEZE_SEEN", 5)
    for n in range(1, 12):                      # every batch size once
        prog.run(zoo.sample_inputs("digits_cnn", n, seed=1))
    assert len(prog._frozen) <= 5
    # a freeze hook that refuses (ValueError) leaves that step on its ordinary path, the rest frozen
    node, fn = next((n, f) for n, f in prog._steps if n.op == "conv")

    def refuse(env, fixed):
        raise ValueError("no")
    monkeypatch.setattr(fn, "freeze", refuse)
    feeds = [zoo.sample_inputs("digits_cnn", 3, seed=s) for s in (1, 2)]
    want = [run_ort(str(zoo.quantized_model("digits_cnn", "qdq_u8_pc")), f, optimized=True) for f in feeds]
    for i in (0, 0, 1, 0):
        got = prog.run(feeds[i])
        for k, v in want[i].items():
            np.testing.assert_array_equal(got[k], v)
    rec = next(v for k, v in prog._frozen.items() if isinstance(v, frozen.FrozenRun) and k[0][0][0][0] == 3)
    assert node.name in rec.ordinary


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", ["qdq_u8", "qop_u8", "qdq_s8", "dynamic", "dynamic_opt"])
def test_encoder_replays_equal_onnxruntime_run_after_run(form, threads, replays):
    """The transformer encoder of the architecture zoo: its broadcast adds and muls, attention
    MatMuls, QLinearSoftmax, movement ops and float islands (onnxruntime IOBinding) replay as
    bound calls, bit for bit onnxruntime's outputs on changing data and batch sizes; in the
    static forms and `dynamic` (its MatMulIntegers bound per input zero point, its dynamic
    quantizations and casts in place) no step is left on its ordinary path."""
    try:
        path = zoo.arch_quantized_model("tiny_encoder", form, 64)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    feeds = [{zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", n, s, 64)} for n, s in ((1, 1), (1, 2), (2, 3))]
    want = [run_ort(str(path), f, optimized=True)[zoo.OUTPUT_NAME] for f in feeds]
    prog = intsim.load(path, target="ort")
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        for i in (0, 1, 0, 1, 2, 2, 2, 1, 0, 2):
            np.testing.assert_array_equal(prog.run(feeds[i])[zoo.OUTPUT_NAME], want[i], err_msg=f"{form} input {i}")
    finally:
        kernel_threads.set_num_threads(old)
    kept = _kept(prog)
    assert len(kept) == 2 and replays[0] >= 5
    if form in ("qdq_u8", "qop_u8", "qdq_s8", "dynamic"):
        assert all(rec.ordinary == [] for rec in kept), [rec.ordinary for rec in kept]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["gemm", "conv"])
def test_single_op_on_graph_input_replays_its_bound_kernel_into_new_outputs(kind, threads):
    """A QLinearMatMul / QLinearConv reading the graph input and writing the graph output (intsim
    bench --suite ops): its fused lane replays bound (the input read from the feeds at each
    replay, no ordinary path, no copy into a buffer), and each replay returns a new output array
    (an earlier result is never overwritten): bit for bit onnxruntime's outputs on changing data,
    also for feeds laid out otherwise (a transposed view, channels-last memory)."""
    import onnxruntime as ort

    from intsim import bench_ops
    from kernels.cpu import best_isa
    if best_isa() == "portable":
        pytest.skip("no fused lanes on the portable kernels")
    rng = np.random.default_rng(3)
    if kind == "gemm":
        model, _, _ = bench_ops._gemm_case(37, 70, 45, rng)
        feeds = [{"a": rng.integers(0, 256, (37, 70)).astype(np.uint8)} for _ in range(3)]
        feeds.append({"a": np.ascontiguousarray(feeds[0]["a"].T).T})           # Fortran order
    else:
        model, _, _ = bench_ops._conv_case(5, 9, 11, 7, 3, 3, 1, 1, 1, rng)
        feeds = [{"x": rng.integers(0, 256, (1, 5, 9, 11)).astype(np.uint8)} for _ in range(3)]
        feeds.append({"x": np.ascontiguousarray(feeds[0]["x"].transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)})
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = [sess.run(None, f)[0] for f in feeds]
    prog = intsim.load(model)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        kept = []
        for i in (0, 1, 2, 0, 2, 1, 3, 0, 3, 2):
            got = prog.run(feeds[i])["y"]
            np.testing.assert_array_equal(got, want[i], err_msg=f"{kind} feed {i}")
            kept.append((i, got))
        for i, got in kept:                       # no later replay wrote into an earlier result
            np.testing.assert_array_equal(got, want[i])
    finally:
        kernel_threads.set_num_threads(old)
    (rec,) = _kept(prog)
    assert rec.ordinary == [] and list(rec.fresh) == ["y"]


def test_float_island_on_a_graph_input_rebinds_only_a_new_array():
    """A float island reading the graph input (onnxruntime IOBinding, steps.ort_island.Island.bind)
    binds the feed once per new array: the same array fed again, changed in place, is read anew
    (its memory is the bound one), and a feed laid out otherwise (a transposed view) is copied
    at each run; bit for bit onnxruntime's outputs."""
    import onnxruntime as ort
    g = helper.make_graph([helper.make_node("Erf", ["x"], ["e"], name="erf"),
                           helper.make_node("Softmax", ["e"], ["y"], axis=-1, name="sm")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 5])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    prog = intsim.load(model.SerializeToString(), target="ort")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = np.asfortranarray(rng.standard_normal((6, 5)).astype(np.float32))
    for i, feed in enumerate([x] * 6 + [t, x, x, t, t, x] * 3):    # recorded on x (C order): bound
        feed[...] = rng.standard_normal((6, 5)).astype(np.float32)     # the same arrays, new values
        np.testing.assert_array_equal(prog.run({"x": feed})["y"], sess.run(None, {"x": feed})[0],
                                      err_msg=f"run {i}")
    assert all(rec.ordinary == [] for rec in _kept(prog))
