"""intsim.runtime.tune: a frozen conv/matmul step recorded on 2 threads alternates its parallel
and serial calls, keeps the faster, re-measures later, and every replay (either call) is
bit-exact with onnxruntime."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import intsim
from intsim.bench import qlinear_conv_model
from intsim.runtime import frozen, tune, work
from kernels import threads as kernel_threads

from .ortutil import run_ort


def test_tuned_keeps_the_faster_call_and_measures_again(monkeypatch):
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "RETUNE", 4)
    ran = []
    slow = {"parallel": 0.004, "serial": 0.0}

    def make(name):
        def call(env):
            ran.append(name)
            time.sleep(slow[name])
        return call
    t = tune.Tuned(make("parallel"), make("serial"))
    for _ in range(6):                      # 3 probes of each, alternating
        t(None)
    assert ran == ["parallel", "serial"] * 3 and t.choices == [1]
    ran.clear()
    for _ in range(4):
        t(None)
    assert ran == ["serial"] * 4            # RETUNE runs of the choice
    slow.update(parallel=0.0, serial=0.004)
    ran.clear()
    for _ in range(6):
        t(None)
    assert ran == ["parallel", "serial"] * 3 and t.choices == [1, 0]


def _conv_model(rng):
    w = rng.integers(-128, 128, (32, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 32).astype(np.int64)
    model = qlinear_conv_model(w, bias, (1, 16, 20, 20), 1, 1, 1, (0.02, 0.004, 0.3), (128, 100))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 32, 20, 20]))
    return model


def _runs_equal_ort(prog, model, rng, runs):
    """`runs` runs of prog on 2 kernel threads, each on new data, each equal to onnxruntime."""
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        for i in range(runs):
            x = rng.integers(0, 256, (1, 16, 20, 20)).astype(np.uint8)
            x[0, 0, 0, :3] = (0, 255, 128)
            np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"], err_msg=f"run {i}")
    finally:
        kernel_threads.set_num_threads(old)


def test_conv_replays_through_both_calls_are_exact(monkeypatch):
    monkeypatch.setattr(work, "SERIAL_US", 0.0)     # the conv keeps 2 threads when recorded
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "RETUNE", 2)
    monkeypatch.setattr(tune, "SETTLE", 1000)       # every run is the 2-thread run (no whole-run choice yet)
    rng = np.random.default_rng(0)
    model = _conv_model(rng)
    prog = intsim.load(model)
    _runs_equal_ort(prog, model, rng, 16)
    (rec,) = [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]
    (t,) = [c for c in rec.calls if isinstance(c, tune.Tuned)]
    assert len(t.choices) >= 2                      # measured, kept a call, measured again


@pytest.mark.parametrize("threads", [1])
def test_one_thread_records_plain_calls(threads):
    prog = intsim.load(_conv_model(np.random.default_rng(1)))
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    try:
        x = np.zeros((1, 16, 20, 20), np.uint8)
        for _ in range(3):
            prog.run({"x": x})
    finally:
        kernel_threads.set_num_threads(old)
    (rec,) = [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]
    assert not [c for c in rec.calls if isinstance(c, tune.Tuned)]


def test_a_parallel_call_only_slightly_faster_is_not_kept(monkeypatch):
    """The parallel call must beat PARALLEL_GAIN x the serial median to be kept."""
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "PARALLEL_GAIN", 0.5)
    t = tune.Tuned(lambda env: time.sleep(0.006), lambda env: time.sleep(0.008))
    for _ in range(6):
        t(None)
    assert t.choices == [1]


def _fake_whole(monkeypatch, cost):
    """A WholeRun on a fake clock: each side's call advances it by cost[side] and logs the side."""
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "SETTLE", 4)
    monkeypatch.setattr(tune, "RETUNE", 5)
    clock, (par, ser), ran = _fake_sides(cost, ("par", "ser"))
    return tune.WholeRun(clock=clock), par, ser, ran


def _fake_sides(cost, names):
    """(clock, sides, log): side i's call logs names[i] and advances the fake clock by cost[names[i]]."""
    now, ran = [0.0], []

    def side(name):
        def call():
            ran.append(name)
            now[0] += cost[name]
            return name
        return call
    return (lambda: now[0]), [side(n) for n in names], ran


def test_whole_run_settles_then_measures_both_sides_and_keeps_the_faster(monkeypatch):
    cost = {"par": 2.0, "ser": 1.0}
    w, par, ser, ran = _fake_whole(monkeypatch, cost)
    outs = [w(par, ser) for _ in range(4 + 2 + 6)]
    # SETTLE parallel runs, the serial side's 2 recording runs, then PROBES timed runs of each, alternating
    assert ran == ["par"] * 4 + ["ser"] * 2 + ["ser", "par"] * 3
    assert outs == ran                                  # each call returns what its side returned
    assert w.choices == [1]
    ran.clear()
    for _ in range(5):
        w(par, ser)
    assert ran == ["ser"] * 5                           # RETUNE runs of the choice
    cost.update(par=0.5)                                # the host got quieter: measured again
    ran.clear()
    for _ in range(6):
        w(par, ser)
    assert ran == ["ser", "par"] * 3 and w.choices == [1]   # a parallel pick waits for a second round
    for _ in range(6):
        w(par, ser)
    assert ran == ["ser", "par"] * 6 and w.choices == [1, 0]


def test_whole_run_choice_is_a_function_of_the_measurements():
    """pick: the parallel run is kept only below WHOLE_GAIN x the serial median; ties go serial."""
    ser = [1.0, 5.0, 1.0]
    assert tune.pick([tune.WHOLE_GAIN * 0.99] * 3, ser) == 0
    assert tune.pick([tune.WHOLE_GAIN] * 3, ser) == 1
    assert tune.pick([0.1, 9.0, 9.0], ser) == 1          # medians, not minima
    assert tune.pick([9.0, 0.1, 0.2], ser) == 0
    assert tune.settle_runs() == tune.SETTLE + 2 + 2 * 2 * tune.PROBES     # two rounds (a confirmed parallel pick)


def test_two_thread_program_runs_either_side_bit_exact(monkeypatch):
    """A 2-thread Program alternates its parallel run and its 1-thread run for a feed key and
    keeps one; every run (either side, recorded or replayed) equals onnxruntime."""
    monkeypatch.setattr(work, "SERIAL_US", 0.0)
    monkeypatch.setattr(tune, "PROBES", 2)
    monkeypatch.setattr(tune, "SETTLE", 3)
    monkeypatch.setattr(tune, "RETUNE", 2)
    rng = np.random.default_rng(3)
    model = _conv_model(rng)
    prog = intsim.load(model)
    # settling, a measurement (a second round when the first picks parallel), RETUNE runs, a measurement
    for _ in range(3 + 2 + 8 + 2 + 8):
        _runs_equal_ort(prog, model, rng, 1)
        if len(prog._choices) == 1 and len(next(iter(prog._choices.values())).choices) == 2:
            break
    (w,) = prog._choices.values()
    assert len(w.choices) == 2 and set(w.choices) <= {0, 1}
    assert {k[1] for k, v in prog._frozen.items() if isinstance(v, frozen.FrozenRun)} == {1, 2}   # both sides recorded


def test_no_whole_run_choice_on_one_thread_or_when_disabled(monkeypatch):
    prog = intsim.load(_conv_model(np.random.default_rng(4)))
    x = np.zeros((1, 16, 20, 20), np.uint8)
    old = kernel_threads.get_num_threads()
    try:
        kernel_threads.set_num_threads(1)
        for _ in range(3):
            prog.run({"x": x})
        assert not prog._choices
        monkeypatch.setattr(tune, "ENABLED", False)
        kernel_threads.set_num_threads(2)
        for _ in range(3):
            prog.run({"x": x})
        assert not prog._choices
    finally:
        kernel_threads.set_num_threads(old)


def test_whole_run_with_a_split_side_settles_each_side_then_keeps_the_fastest(monkeypatch):
    """Three sides (split, whole-batch parallel, serial): each side's settling runs in turn, then
    PROBES timed runs of each, round robin from the serial side; the fastest parallel side is kept
    when below WHOLE_GAIN x the serial median."""
    monkeypatch.setattr(tune, "PROBES", 2)
    monkeypatch.setattr(tune, "SETTLE", 3)
    monkeypatch.setattr(tune, "RETUNE", 4)
    cost = {"split": 3.0, "whole": 1.0, "ser": 2.0}
    clock, sides, ran = _fake_sides(cost, ("split", "whole", "ser"))
    w = tune.WholeRun(clock=clock, settle=tune.sides_settle(True))
    assert tune.sides_settle(True) == (tune.SPLIT_SETTLE, 3, tune.SERIAL_SETTLE)
    n = tune.settle_runs(split=True)
    assert n == tune.SPLIT_SETTLE + 3 + tune.SERIAL_SETTLE + 2 * 3 * 2
    outs = [w(*sides) for _ in range(n)]
    assert ran == ["split"] * tune.SPLIT_SETTLE + ["whole"] * 3 + ["ser"] * tune.SERIAL_SETTLE + \
        ["ser", "whole", "split"] * 2 * 2                # the second round confirms the parallel pick
    assert outs == ran and w.choices == [1] and w.medians == [[3.0, 1.0, 2.0]] * 2
    ran.clear()
    for _ in range(4):
        w(*sides)
    assert ran == ["whole"] * 4                          # RETUNE runs of the choice
    cost.update(split=1.9, whole=1.85)                   # neither parallel side below 0.9 x serial now
    ran.clear()
    for _ in range(6):
        w(*sides)
    assert w.choices == [1, 2]
    assert tune.pick([1.0], [0.5], [2.0]) == 1 and tune.pick([0.5], [1.0], [2.0]) == 0
    assert tune.pick([1.0], [tune.WHOLE_GAIN], [1.0]) == 2


def _batch_conv_model(rng, n):
    w = rng.integers(-128, 128, (32, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 32).astype(np.int64)
    model = qlinear_conv_model(w, bias, (n, 16, 20, 20), 1, 1, 1, (0.02, 0.004, 0.3), (128, 100))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, [n, 32, 20, 20]))
    return model


def test_split_whole_batch_and_serial_runs_are_bit_exact(monkeypatch):
    """A 2-thread Program whose batch-4 runs split measures the split run, the whole-batch frozen
    run (2-thread kernels, recorded for the 2-thread key) and the 1-thread run, and every run of
    each side, recorded or replayed, equals onnxruntime."""
    from intsim.runtime import batch_split
    monkeypatch.setattr(batch_split, "MIN_SLICE_ELEMENTS", 1)
    monkeypatch.setattr(work, "SERIAL_US", 0.0)
    monkeypatch.setattr(tune, "PROBES", 2)
    monkeypatch.setattr(tune, "SETTLE", 3)
    monkeypatch.setattr(tune, "RETUNE", 2)
    rng = np.random.default_rng(5)
    model = _batch_conv_model(rng, 4)
    prog = intsim.load(model)
    assert prog.batch_split is None
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        for i in range(tune.settle_runs(split=True) + 2 + 2 * 6):     # until 2 measurements (each 1 or 2 rounds)
            x = rng.integers(0, 256, (4, 16, 20, 20)).astype(np.uint8)
            x[:, 0, 0, :3] = (0, 255, 128)
            np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"], err_msg=f"run {i}")
            if len(prog._choices) == 1 and len(next(iter(prog._choices.values())).choices) == 2:
                break
    finally:
        kernel_threads.set_num_threads(old)
    (w,) = prog._choices.values()
    assert len(w.choices) == 2 and set(w.choices) <= {0, 1, 2} and len(w.medians[0]) == 3
    assert {k[1] for k, v in prog._frozen.items() if isinstance(v, frozen.FrozenRun)} == {1, 2}   # whole batch, serial


def test_maxpool_replays_through_both_calls_are_exact(monkeypatch):
    """An integer MaxPool (an `onnx` node) above kernels.pool.SERIAL_BYTES splits its planes over
    threads, so a 2-thread recording tunes it too (tune.TUNED_ONNX); every replay through either
    call, on new data, equals onnxruntime."""
    from kernels import pool
    monkeypatch.setattr(tune, "PROBES", 2)
    monkeypatch.setattr(tune, "RETUNE", 2)
    monkeypatch.setattr(tune, "SETTLE", 1000)       # every run is the 2-thread run
    shape = (1, 8, 33, 31)
    monkeypatch.setattr(pool, "SERIAL_BYTES", 1)    # the planes split at this size too
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1])
    graph = helper.make_graph([node], "mp", [helper.make_tensor_value_info("x", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, (1, 8, 17, 15))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    prog = intsim.load(model)
    rng = np.random.default_rng(6)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        for i in range(12):
            x = rng.integers(0, 256, shape).astype(np.uint8)
            x[0, :, 0, 0] = 255
            np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"], err_msg=f"run {i}")
    finally:
        kernel_threads.set_num_threads(old)
    (rec,) = [v for v in prog._frozen.values() if isinstance(v, frozen.FrozenRun)]
    (t,) = [c for c in rec.calls if isinstance(c, tune.Tuned)]
    assert len(t.choices) >= 2                      # measured, kept a call, measured again


def test_split_side_slices_replay_their_own_frozen_runs(monkeypatch):
    """The split side of a 2-thread batch key runs each slice through its own frozen run (the
    slice's 1-thread key and its index); recorded and replayed slices equal onnxruntime."""
    from intsim.runtime import batch_split
    monkeypatch.setattr(batch_split, "MIN_SLICE_ELEMENTS", 1)
    monkeypatch.setattr(tune, "SPLIT_SETTLE", 1000)     # every run is the split run
    rng = np.random.default_rng(7)
    model = _batch_conv_model(rng, 4)
    prog = intsim.load(model)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        for i in range(5):
            x = rng.integers(0, 256, (4, 16, 20, 20)).astype(np.uint8)
            x[:, 0, 0, :3] = (0, 255, 128)
            np.testing.assert_array_equal(prog.run({"x": x})["y"], run_ort(model, {"x": x})["y"], err_msg=f"run {i}")
    finally:
        kernel_threads.set_num_threads(old)
    lanes = {k for k, v in prog._frozen.items() if isinstance(v, frozen.FrozenRun)}
    assert {(k[0][0][0][0], k[1], k[-1]) for k in lanes} == {(2, 1, 0), (2, 1, 1)}   # 2 samples, 1 thread, slice


def test_a_parallel_pick_needs_a_second_round(monkeypatch):
    """A first round that puts the parallel run below WHOLE_GAIN x the serial one is not enough:
    a second round of PROBES runs a side that does not confirm it keeps the serial run."""
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "SETTLE", 1)
    monkeypatch.setattr(tune, "SERIAL_SETTLE", 1)
    cost = {"par": 1.0, "ser": 2.0}            # (sums of eighths: the fake clock's differences are exact)
    clock, (par, ser), ran = _fake_sides(cost, ("par", "ser"))
    w = tune.WholeRun(clock=clock)
    for _ in range(2 + 6):                      # settling, then a first round: parallel looks faster
        w(par, ser)
    assert w.choices == [] and w.medians == [[1.0, 2.0]]
    cost.update(par=1.875)                      # the second round: not below 0.9 x serial
    ran.clear()
    for _ in range(6):
        w(par, ser)
    assert ran == ["ser", "par"] * 3 and w.choices == [1] and w.medians == [[1.0, 2.0], [1.875, 2.0]]
    ran.clear()
    for _ in range(tune.RETUNE):
        w(par, ser)
    assert ran == ["ser"] * tune.RETUNE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3), min_size=40, max_size=40),
       st.booleans())
def test_whole_run_keeps_a_parallel_side_only_when_two_rounds_measured_it_faster(runs, split):
    """Whatever the timings (injected through a fake clock: run j of side i costs runs[j][i]), a
    measurement keeps a parallel side only when both of its rounds' medians put that side's
    median below WHOLE_GAIN x the serial side's; else the serial side (the 1-thread run)."""
    names = ("split", "whole", "ser") if split else ("whole", "ser")
    now, count = [0.0], [0]

    def side(i):
        def call():
            now[0] += runs[count[0] % len(runs)][i]
            count[0] += 1
            return i
        return call
    sides = [side(i) for i in range(len(names))]
    w = tune.WholeRun(clock=lambda: now[0], settle=tune.sides_settle(split))
    for _ in range(tune.settle_runs(split)):
        w(*sides)
    assert len(w.choices) == 1
    serial = len(names) - 1
    (k,), rounds = w.choices, w.medians
    if k != serial:
        assert len(rounds) == 2
        assert min(rounds[0][:serial]) < tune.WHOLE_GAIN * rounds[0][serial]
        assert rounds[1][k] < tune.WHOLE_GAIN * rounds[1][serial] and rounds[1][k] == min(rounds[1][:serial])
    else:
        assert len(rounds) == 1 or min(rounds[0][:serial]) < tune.WHOLE_GAIN * rounds[0][serial]
        assert min(rounds[-1][:serial]) >= tune.WHOLE_GAIN * rounds[-1][serial]
    assert sides[w.best]() == k                 # the kept side runs from now on


def test_retune_interval_doubles_while_the_pick_holds(monkeypatch):
    monkeypatch.setattr(tune, "RETUNE", 8)
    monkeypatch.setattr(tune, "RETUNE_DOUBLINGS", 2)
    assert tune.retune_after([1]) == 8
    assert tune.retune_after([1, 1]) == 16
    assert tune.retune_after([0, 1, 1, 1]) == 32
    assert tune.retune_after([1, 1, 1, 1, 1]) == 32          # at most RETUNE << RETUNE_DOUBLINGS
    assert tune.retune_after([1, 1, 0]) == 8                 # a changed pick starts again


def test_tuned_on_a_fake_clock_keeps_the_faster_call_and_backs_off(monkeypatch):
    """tune.Tuned with an injected clock: the parallel call is kept only below PARALLEL_GAIN x the
    serial median; a pick that holds waits twice as long before the next measurement."""
    monkeypatch.setattr(tune, "PROBES", 3)
    monkeypatch.setattr(tune, "RETUNE", 4)
    cost = {"par": 0.875, "ser": 1.0}
    clock, (par, ser), ran = _fake_sides(cost, ("par", "ser"))
    t = tune.Tuned(lambda env: par(), lambda env: ser(), clock=clock)
    for _ in range(6):
        t(None)
    assert ran == ["par", "ser"] * 3 and t.choices == [1]      # 0.875 is not below 0.8 x 1.0
    ran.clear()
    for _ in range(4 + 6):
        t(None)
    assert ran == ["ser"] * 4 + ["par", "ser"] * 3 and t.choices == [1, 1]
    ran.clear()
    for _ in range(8):
        t(None)
    assert ran == ["ser"] * 8                                  # RETUNE doubled: the pick held
    cost.update(par=0.625)
    ran.clear()
    for _ in range(6 + 4):
        t(None)
    assert t.choices == [1, 1, 0] and ran == ["par", "ser"] * 3 + ["par"] * 4


def test_a_kept_serial_side_is_exactly_the_one_thread_run(monkeypatch):
    """Once a 2-thread key keeps its serial side, each run is one replay of the 1-thread key's
    frozen run (what a 1-thread Program runs) and nothing of the 2-thread run: the 2-thread
    Program then costs the 1-thread run plus the choice's dispatch."""
    monkeypatch.setattr(work, "SERIAL_US", 0.0)
    prog = intsim.load(_conv_model(np.random.default_rng(8)))
    x = np.random.default_rng(9).integers(0, 256, (1, 16, 20, 20)).astype(np.uint8)
    old = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        want = [prog.run({"x": x})["y"] for _ in range(tune.settle_runs())][-1]
        (key, w), = prog._choices.items()
        runs = {k: v for k, v in prog._frozen.items() if isinstance(v, frozen.FrozenRun)}
        assert set(runs) == {key, (key[0], 1) + key[2:]}
        serial, replays = runs[(key[0], 1) + key[2:]], []

        def parallel_replay(env):
            raise AssertionError("the 2-thread run ran")

        def serial_replay(env, replay=serial.replay):
            replays.append(kernel_threads.get_num_threads())
            return replay(env)
        monkeypatch.setattr(runs[key], "replay", parallel_replay)
        monkeypatch.setattr(serial, "replay", serial_replay)
        w.best, w.left = 1, 10                  # the serial side kept (as tests above pick it by timings)
        for _ in range(10):
            np.testing.assert_array_equal(prog.run({"x": x})["y"], want)
    finally:
        kernel_threads.set_num_threads(old)
    assert replays == [1] * 10                  # one serial replay a run, on serial kernels
