"""Program.run's per-call path: the quick feed check (exact arrays taken as they are, anything
else checked in full, with the same errors), frozen replays found first, and small conv/matmul
steps on one thread (intsim.runtime.work), all bit-exact with onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import intsim
from intsim import bench_ops
from intsim.bench import qlinear_conv_model
from intsim.errors import IntsimError, ShapeError
from intsim.runtime import frozen, work
from kernels import grouped_nhwc
from kernels import threads as kernel_threads

from .ortutil import run_ort


def _matmul(k=32, n=24, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    return bench_ops.qlinear_matmul_model(b, 0.05, 128)


def _conv(c=8, hw=7, group=8, m=8, seed=0):
    """QLinearConv 3x3, pad 1, batch 1, its output shape (1, m, hw, hw) declared."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (m, c // group, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, m).astype(np.int64)
    model = qlinear_conv_model(w, bias, (1, c, hw, hw), 1, 1, group, (0.02, 0.004, 0.05), (128, 100))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, [1, m, hw, hw]))
    return model


def _ort(model, feeds):
    return run_ort(model, feeds)


def test_exact_feeds_replay_and_equal_onnxruntime():
    model = _matmul()
    prog = intsim.load(model)
    rng = np.random.default_rng(1)
    for i in range(6):      # first sight, recording, replays on changing data
        a = rng.integers(0, 256, (40, 32)).astype(np.uint8)
        a[0, :2] = (0, 255)
        got = prog.run({"a": a})["y"]
        np.testing.assert_array_equal(got, _ort(model, {"a": a})["y"], err_msg=f"run {i}")
    assert any(isinstance(v, frozen.FrozenRun) for v in prog._frozen.values())


def test_other_integer_feeds_are_checked_in_full():
    prog = intsim.load(_matmul())
    a = np.random.default_rng(2).integers(0, 256, (5, 32)).astype(np.uint8)
    want = prog.run({"a": a})["y"]
    np.testing.assert_array_equal(prog.run({"a": a.astype(np.int16)})["y"], want)   # in range: accepted
    bad = a.astype(np.int16)
    bad[1, 3] = 256
    with pytest.raises(ShapeError, match="input 'a' holds values outside uint8"):
        prog.run({"a": bad})
    with pytest.raises(ShapeError, match="input 'a' must be uint8 integers, got float32"):
        prog.run({"a": a.astype(np.float32)})


def test_shape_and_name_errors_are_unchanged():
    prog = intsim.load(_matmul())
    a = np.zeros((3, 32), np.uint8)
    with pytest.raises(ShapeError, match=r"input 'a' has shape \(3, 31\), the model declares"):
        prog.run({"a": a[:, :31]})
    with pytest.raises(ShapeError, match="missing input"):
        prog.run({"b": a})
    with pytest.raises(ShapeError, match="unknown input"):
        prog.run({"a": a, "extra": a})
    np.testing.assert_array_equal(prog.run({"a": a.tolist()})["y"], prog.run({"a": a})["y"])  # a list: full path


def test_estimates_follow_the_formula():
    prog = intsim.load(_conv(c=8, hw=7, group=8, m=8))
    node = prog.graph.nodes[0]
    assert work.us_per_sample(node, prog.graph) == 8 * 7 * 7 * 9 / work.DEPTHWISE_MACS_PER_US
    prog = intsim.load(_matmul(k=32, n=24))
    assert work.us_per_sample(prog.graph.nodes[0], prog.graph) == 24 * 32 / work.DENSE_MACS_PER_US
    # narrow groups (2 x 16 channels) run as dense tiles where kernels.grouped_nhwc can run them
    prog = intsim.load(_conv(c=32, hw=7, group=2, m=32))
    rate = work.DENSE_MACS_PER_US if grouped_nhwc.fits((32, 16, 3, 3), 2, np.uint8) else work.DEPTHWISE_MACS_PER_US
    assert work.us_per_sample(prog.graph.nodes[0], prog.graph) == 32 * 7 * 7 * 16 * 9 / rate


def _threads_seen(prog):
    """Wrap the program's one step: the kernel thread count each call ran under."""
    seen = []
    node, fn = prog._steps[0]

    def spy(env, tap):
        seen.append(kernel_threads.get_num_threads())
        return fn(env, tap)
    spy.freeze = fn.freeze
    prog._steps[0] = (node, spy)
    return seen


@pytest.mark.parametrize("small", [True, False])
def test_small_steps_run_serially_and_stay_exact(small, monkeypatch):
    monkeypatch.setattr(work, "SERIAL_US", 1e12 if small else 0.0)
    model = _conv(c=16, hw=9, group=1, m=16)
    prog = intsim.load(model)
    seen = _threads_seen(prog)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        rng = np.random.default_rng(3)
        for i in range(5):
            x = rng.integers(0, 256, (1, 16, 9, 9)).astype(np.uint8)
            np.testing.assert_array_equal(prog.run({"x": x})["y"], _ort(model, {"x": x})["y"], err_msg=f"run {i}")
    finally:
        kernel_threads.set_num_threads(old)
    assert seen[:2] == ([1, 1] if small else [2, 2])    # the ordinary run and the recording
    assert kernel_threads.get_num_threads() == old


def test_a_small_steps_replays_start_no_parallel_region(monkeypatch):
    """The frozen call of a serial step is bound to serial kernels: its replays never enter a
    Numba parallel region (kernels.threads.native_call), even with 2 threads set."""
    from kernels import threads
    monkeypatch.setattr(work, "SERIAL_US", 1e12)
    calls = []
    real = threads.native_call
    monkeypatch.setattr(threads, "native_call", lambda *a: calls.append(1) or real(*a))
    zoo = pytest.importorskip("models.zoo")
    prog = intsim.load(zoo.quantized_model("mobilenetv2_s", "qdq_u8_pc"))   # convs fed by convs: bound hooks
    feeds = zoo.sample_inputs("mobilenetv2_s", 1, seed=1)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        for _ in range(2):
            prog.run(feeds)
        calls.clear()
        for _ in range(3):
            prog.run(feeds)
    finally:
        kernel_threads.set_num_threads(old)
    assert any(isinstance(v, frozen.FrozenRun) for v in prog._frozen.values()) and calls == []


def test_runs_serial_scales_with_the_batch(monkeypatch):
    monkeypatch.setattr(work, "SERIAL_US", 40.0)
    monkeypatch.delenv("INTSIM_SERIAL_US", raising=False)
    prog = intsim.load(_matmul(k=32, n=24))
    node = prog.graph.nodes[0]
    (share,) = work.serial_steps(prog._steps, prog.graph)
    assert share == work.us_per_sample(node, prog.graph) / 40.0
    rows = int(1 / share)
    assert work.runs_serial(share, {"a": np.zeros((rows, 32), np.uint8)}, node)
    assert not work.runs_serial(share, {"a": np.zeros((rows + 1, 32), np.uint8)}, node)
    assert not work.runs_serial(None, {"a": np.zeros((1, 32), np.uint8)}, node)


def test_serial_threshold_from_the_environment(monkeypatch):
    prog = intsim.load(_matmul(k=32, n=24))
    monkeypatch.setenv("INTSIM_SERIAL_US", "0")
    assert work.serial_steps(prog._steps, prog.graph) == [None]
    monkeypatch.setenv("INTSIM_SERIAL_US", "fast")
    with pytest.raises(IntsimError, match="INTSIM_SERIAL_US='fast' must be a number"):
        intsim.load(_matmul(k=32, n=24))
