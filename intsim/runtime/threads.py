"""One thread budget for a run: while a Program runs, the BLAS library NumPy calls (float
islands run through the ONNX reference evaluator, whose MatMul/Gemm/Conv call it) uses 1 thread,
so it does not start its own team beside intsim's kernels (Numba's OpenMP team and the
fast_gemm pool, sized by kernels.fast_gemm.set_num_threads). Measured on a 2-core host: one
64x256x128 float matmul took 16-24 ms in half the tries with OpenBLAS's 2 threads beside Numba's
team, 0.05 ms with 1 (benchmarks/blas_threads.py).

How (the choice, measured on that host):
- threadpoolctl finds the BLAS libraries (building a ThreadpoolController costs ~0.2 ms; its
  `threadpool_limits` context ~0.24 ms a call, `controller.limit` ~10 us), once, and again only
  after an import added modules;
- a run then calls the libraries' own get/set_num_threads directly: ~2.5 us for the
  limit and the restore together, and only for Programs that hold a float-island step
  (a step function marked `uses_blas = True`).
- The limit is scoped to runs and restored after, not set once for good at load: NumPy's BLAS
  belongs to the caller's whole process, and a user's own float matmuls between intsim runs
  keep their threads. INTSIM_LIMIT_BLAS=0 turns the limit off (benchmarks/blas_threads.py
  times both). Runs that overlap (several Python threads running Programs) share one
  limit: the first to enter sets it, the last to leave restores it.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

LIMIT_BLAS = os.environ.get("INTSIM_LIMIT_BLAS", "1") != "0"   # 0: leave BLAS's threads alone (to compare)

_lock = threading.Lock()
_state = {"libs": None, "modules": -1, "depth": 0, "before": []}


def blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process ([] when
    threadpoolctl is missing or finds none). Found again only when Python modules were imported
    since the last look (a BLAS arrives with an import: the reference evaluator imports SciPy,
    and its own OpenBLAS, during a first run)."""
    if _state["libs"] is None or len(sys.modules) != _state["modules"]:
        _state["modules"] = len(sys.modules)
        try:
            from threadpoolctl import ThreadpoolController
            _state["libs"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # noqa: BLE001 - no limit is better than no run
            _state["libs"] = []
    return _state["libs"]


@contextmanager
def one_blas_thread():
    """Within the block (and any block overlapping it in another thread), BLAS uses 1 thread."""
    with _lock:
        if _state["depth"] == 0:
            libs = blas_libraries()
            _state["libs_in_use"] = libs
            _state["before"] = [lib.get_num_threads() for lib in libs]
            for lib, n in zip(libs, _state["before"]):
                if n != 1:
                    lib.set_num_threads(1)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for lib, n in zip(_state["libs_in_use"], _state["before"]):
                    if n != 1:
                        lib.set_num_threads(n)


__all__ = ["LIMIT_BLAS", "blas_libraries", "one_blas_thread"]
