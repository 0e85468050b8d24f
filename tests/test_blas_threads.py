"""One thread budget (intsim.runtime.threads): while a Program with a float island runs, NumPy's
BLAS uses 1 thread, and its count is restored after the run (timings: benchmarks/blas_threads.py)."""
from __future__ import annotations

import numpy as np
import threadpoolctl
from onnx.reference import ReferenceEvaluator

import intsim
from benchmarks.blas_threads import island_model


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def test_blas_runs_on_one_thread_inside_a_run(monkeypatch):
    # a target whose float islands run on the ONNX reference evaluator (NumPy's BLAS); under
    # `ort` they run in onnxruntime sessions of one intra-op thread (steps/ort_island.py)
    prog = intsim.load(island_model(), target="tflite")
    assert prog.target.float_engine == "reference"
    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    # the first run compiles kernels, and Numba's compiler imports SciPy and its own OpenBLAS (which
    # NumPy's matmul does not call): from the next run on, every BLAS loaded is held to 1 thread
    prog.run({"x": x})
    seen = []
    run = ReferenceEvaluator.run

    def spy(self, *a, **k):
        seen.append(_blas_threads())
        return run(self, *a, **k)

    monkeypatch.setattr(ReferenceEvaluator, "run", spy)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        outside = _blas_threads()
        for _ in range(3):          # the plain, recording and frozen runs
            prog.run({"x": x})
            assert _blas_threads() == outside       # restored after each run
    assert len(seen) == 3 and outside and all(n == 2 for n in outside)
    assert all(s and all(n == 1 for n in s) for s in seen), seen


def test_integer_only_programs_leave_blas_alone():
    from pathlib import Path
    prog = intsim.load(str(Path(__file__).resolve().parent.parent / "models" / "digits_cnn.qop_u8.onnx"))
    assert prog._uses_blas is False


def _shape_arith_model():
    """y = Reshape(x, [N, -1]) with N taken from Shape(x) through Gather/Unsqueeze/Concat: the
    only evaluator steps (marked uses_blas) are shape arithmetic."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("zero1", TensorProto.INT64, [1], [0]),
             helper.make_tensor("minus1", TensorProto.INT64, [1], [-1])]
    g = helper.make_graph(nodes, "shape_arith", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m.SerializeToString()


def test_frozen_replays_of_shape_arithmetic_skip_the_blas_limit(monkeypatch):
    from intsim.runtime import threads as blas_budget
    prog = intsim.load(_shape_arith_model(), target="ort")
    assert prog._uses_blas      # Shape, Gather, Unsqueeze, Concat run on the evaluator
    entered = []
    real = blas_budget.one_blas_thread
    monkeypatch.setattr(blas_budget, "one_blas_thread", lambda: entered.append(1) or real())
    x = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    from intsim.runtime import tune
    for i in range(2 * tune.settle_runs() + 4):     # plain, recording (T threads and 1), replays
        y = prog.run({"x": x + i})["y"]
        np.testing.assert_array_equal(y, (x + i).reshape(3, -1))
    assert entered          # the first runs (nothing frozen yet) are limited
    frozen_runs = [v for v in prog._frozen.values() if v]
    assert frozen_runs and not any(v.uses_blas for v in frozen_runs)
    entered.clear()
    for i in range(3):      # replays: the shape arithmetic is kept as recorded, nothing calls BLAS
        y = prog.run({"x": x - i})["y"]
        np.testing.assert_array_equal(y, (x - i).reshape(3, -1))
    assert not entered
    prog.run({"x": x}, taps=True)       # a run with taps takes the limit as before
    assert len(entered) == 1
    y = prog.run({"x": np.ones((5, 4, 2), np.float32)})["y"]    # a new key: no frozen run yet, limited
    assert y.shape == (5, 8) and len(entered) == 2
