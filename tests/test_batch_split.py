"""Batch-parallel runs (intsim.batch_split): the graph on slices of the batch, one per thread,
gives the arrays of the whole-batch run; graphs that mix samples are reported with the node at
fault and run unsplit; errors and memory limits behave as in a whole-batch run."""
from __future__ import annotations

import glob
import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import intsim
from intsim import errors, limits
from intsim.runtime.batch_split import MIN_SLICE_ELEMENTS, auto_parts, bounds, part_limits, splittable

from .ortutil import const, session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sorted(p for p in glob.glob(os.path.join(ROOT, "models", "*.onnx")) if ".q" in os.path.basename(p))


def _feeds(path, batch, seed=5):
    side, ch = (96, 3) if "mobilenet" in path else (8, 1)
    return {"input": np.random.default_rng(seed).standard_normal((batch, ch, side, side)).astype(np.float32)}


@pytest.fixture(scope="module")
def programs():
    return {p: intsim.load(p) for p in MODELS}


def _assert_same(got: dict, want: dict, what: str):
    assert list(got) == list(want), what
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, f"{what}: {k}"
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"{what}: {k}")


def test_bounds_cover_the_batch_evenly():
    for n in range(1, 12):
        for parts in range(1, n + 1):
            b = bounds(n, parts)
            sizes = [stop - start for start, stop in b]
            assert b[0][0] == 0 and b[-1][1] == n and all(b[i][1] == b[i + 1][0] for i in range(parts - 1))
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_part_limits_scale_with_the_slice():
    lim = limits.Limits(max_elements=1000, max_bytes=8001)
    assert part_limits(lim, 3, 8) == limits.Limits(375, 3000)
    assert part_limits(lim, 8, 8) == lim
    assert part_limits(limits.Limits(3, 100), 1, 5) is None     # 3 // 5 elements: no split


def test_default_split_only_for_big_enough_slices():
    per_sample = MIN_SLICE_ELEMENTS // 4
    assert auto_parts(2, 8, 8 * per_sample, 1) == 2
    assert auto_parts(3, 8, 8 * per_sample, 1) == 2        # a third of the batch is below the minimum
    assert auto_parts(2, 8, 7 * per_sample, 1) == 1
    assert auto_parts(2, 8, 8 * 64, 1) == 1                # the digits models (8x8 inputs) run whole
    assert auto_parts(4, 5, 5 * MIN_SLICE_ELEMENTS, 2) == 2  # slices of >= 2 samples
    assert auto_parts(1, 8, 8 * MIN_SLICE_ELEMENTS, 1) == 1


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_models_split_equal_whole_and_ort(programs, path, monkeypatch):
    prog = programs[path]
    assert splittable(prog.graph) == (True, "") and prog.batch_split is None
    sess = session(onnx.load(path), threads=1)
    for batch, threads in ((4, 2), (5, 3)):
        feeds = _feeds(path, batch)
        whole = prog.run(feeds, threads=1)
        split = prog.run(feeds, threads=threads)
        _assert_same(split, whole, f"{os.path.basename(path)} batch {batch}, {threads} threads")
        monkeypatch.setenv("INTSIM_BATCH_SPLIT", "0")
        _assert_same(prog.run(feeds, threads=threads), whole, "INTSIM_BATCH_SPLIT=0")
        monkeypatch.delenv("INTSIM_BATCH_SPLIT")
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        _assert_same(split, want, f"{os.path.basename(path)} vs onnxruntime")


def test_split_runs_in_several_threads(programs, monkeypatch):
    path = next(p for p in MODELS if "digits_cnn.qdq_u8" in p)
    prog, seen = programs[path], set()
    node, fn = prog._steps[0]
    # each part waits (at most 60 s) for a second thread to enter: the caller would run a part no
    # pool thread has started yet (batch_split.run_parts), so without it one thread may run all
    two = threading.Event()

    def spy(env, tap):
        seen.add((threading.get_ident(), env[node.inputs[0]].shape[0]))
        if len({t for t, _ in seen}) >= 2:
            two.set()
        two.wait(60)
        fn(env, tap)
    assert prog._tap_steps[0][0] is node       # runs with taps have their own step list (island tables)
    monkeypatch.setattr(prog, "_steps", [(node, spy)] + prog._steps[1:])
    monkeypatch.setattr(prog, "_tap_steps", [(node, spy)] + prog._tap_steps[1:])
    prog.run(_feeds(path, 5), threads=3)
    assert sorted(n for _, n in seen) == [1, 2, 2]
    assert len({t for t, _ in seen}) >= 2 and (threading.get_ident(), 2) in seen   # the caller runs the first
    seen.clear()
    prog.run(_feeds(path, 5), taps=True, threads=3)     # taps: one whole-batch run
    assert [n for _, n in seen] == [5]


# ------------------------------------------------------------------------ graphs that mix samples
def _q(x, y):
    return helper.make_node("QuantizeLinear", [x, "s", "z"], [y])


def _dq(x, y):
    return helper.make_node("DequantizeLinear", [x, "s", "z"], [y])


def _model(nodes, in_shape, out_shape, inits=None, opset=17, ms_domain=False):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          [const("s", np.float32(0.05)), const("z", np.uint8(128))] +
                          [const(k, v) for k, v in (inits or {}).items()])
    domains = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms_domain else [])
    m = helper.make_model(g, opset_imports=domains)
    m.ir_version = 8
    return m


def _movement(op, in_shape, out_shape, inputs=(), **attrs):
    """Q -> op on the integers -> DQ."""
    names = ["q"] + [n for n, _ in inputs]
    return _model([_q("x", "q"), helper.make_node(op, names, ["m"], name="mover", **attrs), _dq("m", "y")],
                  in_shape, out_shape, dict(inputs))


BROKEN = {
    "reshape_1_minus1": (_movement("Reshape", [None, 2, 3], [1, None], [("shape", np.array([1, -1]))]), "Reshape"),
    "reshape_fixed_batch": (_movement("Reshape", [None, 2, 3], [None, 6], [("shape", np.array([4, 6]))]),
                            "Reshape"),
    "transpose_1_0_2": (_movement("Transpose", [None, 2, 3], [2, None, 3], perm=[1, 0, 2]), "Transpose"),
    "flatten_axis0": (_movement("Flatten", [None, 2, 3], [1, None], axis=0), "Flatten"),
    "squeeze_no_axes": (_movement("Squeeze", [None, 1, 3], [None, 3]), "Squeeze"),
    "slice_axis0": (_movement("Slice", [None, 2, 3], [None, 2, 3],
                              [("st", np.array([1])), ("en", np.array([9])), ("ax", np.array([0]))]), "Slice"),
    "gather_axis0": (_movement("Gather", [None, 2, 3], [2, 2, 3], [("idx", np.array([0, 1]))], axis=0), "Gather"),
    "concat_axis0": (_movement("Concat", [None, 2, 3], [None, 2, 3], [("q2", np.full((1, 2, 3), 7, np.uint8))],
                               axis=0), "Concat"),
    "qlinearconcat_axis0": (_model([_q("x", "q"), helper.make_node("QuantizeLinear", ["x", "s2", "z"], ["q2"]),
                                    helper.make_node("QLinearConcat", ["s", "z", "q", "s", "z", "q2", "s2", "z"],
                                                     ["m"], name="mover", axis=0, domain="com.microsoft"),
                                    _dq("m", "y")], [None, 2, 3], [None, 2, 3], {"s2": np.float32(0.07)},
                                   ms_domain=True), "concat"),
    "dynamic_quantize": (_model([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"], name="mover"),
                                 helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["y"])],
                                [None, 2, 3], [None, 2, 3]), "dynamic_quantize"),
    "reduce_mean_axis0": (_model([helper.make_node("ReduceMean", ["x"], ["y"], name="mover", axes=[0])],
                                 [None, 2, 3], [1, 2, 3]), "ReduceMean"),
    "softmax_axis0": (_model([helper.make_node("Softmax", ["x"], ["y"], name="mover", axis=0)],
                             [None, 2, 3], [None, 2, 3]), "Softmax"),
    "add_full_constant": (_model([helper.make_node("Add", ["x", "c"], ["y"], name="mover")], [None, 2, 3],
                                 [None, 2, 3], {"c": np.arange(24, dtype=np.float32).reshape(4, 2, 3)}), "Add"),
}

KEPT = {
    "reshape_0_minus1": _movement("Reshape", [None, 2, 3], [None, 6], [("shape", np.array([0, -1]))]),
    "reshape_minus1_6": _movement("Reshape", [None, 2, 3], [None, 6], [("shape", np.array([-1, 6]))]),
    "transpose_0_2_1": _movement("Transpose", [None, 2, 3], [None, 3, 2], perm=[0, 2, 1]),
    "softmax_last": _model([helper.make_node("Softmax", ["x"], ["y"], name="mover", axis=-1)],
                           [None, 2, 3], [None, 2, 3]),
    "add_leading_1": _model([helper.make_node("Add", ["x", "c"], ["y"], name="mover")], [None, 2, 3], [None, 2, 3],
                            {"c": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}),
}


def _run_both(prog, model, batch=4):
    shape = (batch,) + tuple(prog.graph.tensors["x"].shape[1:])
    feeds = {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}
    whole = prog.run(feeds, threads=1)
    _assert_same(prog.run(feeds, threads=2), whole, "threads=2")
    if not any(n.op == "quantize" for n in prog.graph.nodes):
        return      # a float graph: onnxruntime's float kernels are not the reference's bit for bit
    try:
        want = session(model).run(None, feeds)
    except Exception:   # noqa: BLE001 - onnxruntime refuses some of these graphs (e.g. a fixed batch)
        return
    for got, w in zip(whole.values(), want):
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_graphs_that_mix_samples_are_reported_and_run_whole(name):
    model, op = BROKEN[name]
    try:
        prog = intsim.load(model)
    except errors.UnsupportedOpError:
        pytest.skip(f"intsim does not import {name}")
    ok, why = splittable(prog.graph)
    assert not ok and why.startswith(f"{op} node ") and prog.batch_split == why
    mover = next(n.name for n in prog.graph.nodes if n.name == "mover" or "mover" in n.origin or n.op == op)
    assert f"'{mover}'" in why
    if name != "reshape_fixed_batch":
        _run_both(prog, model)


@pytest.mark.parametrize("name", sorted(KEPT))
def test_graphs_that_keep_samples_apart_split(name):
    prog = intsim.load(KEPT[name])
    assert splittable(prog.graph) == (True, ""), prog.batch_split
    _run_both(prog, KEPT[name])


def test_constant_output_is_not_splittable():
    model = _model([helper.make_node("Identity", ["c"], ["y"], name="mover"),
                    helper.make_node("Relu", ["x"], ["unused"])], [None, 2], [2], {"c": np.ones(2, np.float32)})
    prog = intsim.load(model)
    assert prog.batch_split is not None and "'y'" in prog.batch_split


# ------------------------------------------------------------------------ errors and limits
def _digits(programs):
    path = next(p for p in MODELS if "digits_cnn.qdq_u8" in p)
    return path, programs[path]


def _failing_step(prog, monkeypatch, exc, only_workers: bool):
    node, fn = prog._steps[1]
    main = threading.get_ident()

    def boom(env, tap):
        if not only_workers or threading.get_ident() != main:
            raise exc(f"node '{node.name}': rows {env[node.inputs[0]].shape[0]}")
        fn(env, tap)
    monkeypatch.setattr(prog, "_steps", [prog._steps[0], (node, boom)] + prog._steps[2:])


def test_error_in_every_part_is_the_whole_batch_error(programs, monkeypatch):
    path, prog = _digits(programs)
    _failing_step(prog, monkeypatch, errors.ShapeError, only_workers=False)
    with pytest.raises(errors.ShapeError) as whole:
        prog.run(_feeds(path, 6), threads=1)
    with pytest.raises(errors.ShapeError) as split:
        prog.run(_feeds(path, 6), threads=3)
    assert str(split.value) == str(whole.value) and "rows 6" in str(split.value)


def test_other_error_in_a_worker_reaches_the_caller(programs, monkeypatch):
    path, prog = _digits(programs)
    _failing_step(prog, monkeypatch, KeyError, only_workers=True)
    with pytest.raises(KeyError, match="rows 3"):
        prog.run(_feeds(path, 6), threads=2)
    assert prog.run(_feeds(path, 6), threads=1)        # the calling thread alone: no error


def test_intsim_error_in_one_part_only_gives_the_whole_batch_result(programs, monkeypatch):
    path, prog = _digits(programs)
    want = prog.run(_feeds(path, 6), threads=1)
    _failing_step(prog, monkeypatch, errors.ResourceLimitError, only_workers=True)
    _assert_same(prog.run(_feeds(path, 6), threads=2), want, "fallback")


def test_memory_limit_refuses_as_the_whole_batch_would(programs):
    path, _ = _digits(programs)
    # the second conv's accumulator is (N, 32, 8, 8): 2048 elements per sample
    with limits.limited(max_elements=10_000):
        prog = intsim.load(path)
    want = prog.run(_feeds(path, 4), threads=1)
    _assert_same(prog.run(_feeds(path, 4), threads=2), want, "under the limit")
    messages = set()
    for threads in (1, 2, 3):
        with pytest.raises(errors.ResourceLimitError) as e:
            prog.run(_feeds(path, 6), threads=threads)      # 12288 > 10000; a slice of 3 alone: 6144
        messages.add(str(e.value))
    assert len(messages) == 1 and "[6, 32, 8, 8]" in messages.pop()


class _LatePool:
    """An executor whose threads have not started yet: submitted work waits in `queued`."""

    def __init__(self):
        self.queued = []

    def submit(self, fn, *args):
        self.queued.append((fn, args))


def test_run_parts_never_waits_for_a_pool_thread_that_has_not_started(monkeypatch):
    """The caller claims every part no pool thread has started: with the pool's threads not yet
    running, all parts run on the calling thread, in order, each under its limits and serial
    kernels; a pool thread that starts later finds nothing left to run."""
    from intsim.limits import Limits, current
    from intsim.runtime import batch_split
    from kernels import threads as kernel_threads
    pool = _LatePool()
    monkeypatch.setattr(batch_split, "_executor", lambda workers: pool)
    seen = []

    def fn(i, env):
        seen.append((i, threading.get_ident(), current().max_bytes, kernel_threads.get_num_threads()))
        return env["x"] * 2
    limits = [Limits(10, 100 + i) for i in range(3)]
    out = batch_split.run_parts(fn, [{"x": i} for i in range(3)], limits)
    assert out == [0, 2, 4]
    assert seen == [(i, threading.get_ident(), 100 + i, 1) for i in range(3)]
    assert len(pool.queued) == 2
    for work, args in pool.queued:          # the late threads: nothing left to claim
        work(*args)
    assert len(seen) == 3


def test_run_parts_shares_parts_with_running_pool_threads_and_raises_the_first_error(monkeypatch):
    """Parts run by pool threads and by the caller come back in slice order; when parts fail, the
    first failing part's exception (in slice order) is raised after every part ended."""
    from intsim.limits import Limits
    from intsim.runtime import batch_split
    done = []

    def fn(i, env):
        done.append(i)
        if i in (1, 3):
            raise ValueError(f"part {i}")
        return i
    limits = [Limits(10, 100)] * 4
    with pytest.raises(ValueError, match="part 1"):
        batch_split.run_parts(fn, [{}] * 4, limits)
    assert sorted(done) == [0, 1, 2, 3]
    assert batch_split.run_parts(lambda i, env: i * 10, [{}] * 4, limits) == [0, 10, 20, 30]
