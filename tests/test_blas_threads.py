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
