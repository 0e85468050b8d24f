"""One thread budget for a run: while a Program runs, the BLAS library NumPy calls (float
islands run through the ONNX reference evaluator, whose MatMul/Gemm/Conv call it) uses 1 thread,
so it does not start its own team beside intsim's kernels (Numba's OpenMP team and the
kernels.threads pool, sized by kernels.threads.set_num_threads). Measured on the 2-core host
(benchmarks/blas_threads.py, a 64x256x256 QLinearMatMul then a 64x256x128 float MatMul island,
2 kernel threads, medians of 21-41 alternating runs): 23-40 ms a run with OpenBLAS's own 2
threads in 5 of 6 passes (0.45 in the other), 0.52-0.64 ms with 1.

How (the choice, measured on that host):
- threadpoolctl finds the BLAS libraries (building a ThreadpoolController costs ~0.2 ms; its
  `threadpool_limits` context ~0.24 ms a call, `controller.limit` ~10 us), once, and again only
  after an import added modules (Numba's compiler imports SciPy, with its own OpenBLAS, during a
  first run);
- a run then calls the libraries' own get/set_num_threads directly: ~11 us for the limit and
  the restore together with NumPy's and SciPy's OpenBLAS loaded (~5 us each), and only for
  Programs that hold a float-island step (a step function marked `uses_blas = True`), whose
  evaluator calls cost more than that each.
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

LIMIT_BLAS = os.environ.get("INTSIM_LIMIT_BLAS", "1") != "0"   # 0: leave BLAS's threads alone (to compare)

_lock = threading.Lock()
_state = {"libs": None, "modules": -1, "depth": 0, "libs_in_use": [], "before": []}


def blas_libraries() -> list:
    """threadpoolctl's controllers of the BLAS libraries loaded in this process ([] when
    threadpoolctl is missing or finds none). Found again only when Python modules were imported
    since the last look (a BLAS arrives with an import)."""
    if _state["libs"] is None or len(sys.modules) != _state["modules"]:
        _state["modules"] = len(sys.modules)
        try:
            from threadpoolctl import ThreadpoolController
            _state["libs"] = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:  # noqa: BLE001 - no limit is better than no run
            _state["libs"] = []
    return _state["libs"]


class _OneBlasThread:
    """Within the block (and any block overlapping it in another thread), BLAS uses 1 thread."""

    __slots__ = ()

    def __enter__(self):
        with _lock:
            if _state["depth"] == 0:
                libs = _state["libs_in_use"] = blas_libraries()
                _state["before"] = before = [lib.get_num_threads() for lib in libs]
                for lib, n in zip(libs, before):
                    if n != 1:
                        lib.set_num_threads(1)
            _state["depth"] += 1
        return self

    def __exit__(self, *exc):
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for lib, n in zip(_state["libs_in_use"], _state["before"]):
                    if n != 1:
                        lib.set_num_threads(n)
        return False


_ONE = _OneBlasThread()


def one_blas_thread() -> _OneBlasThread:
    """A context: within it (and any block overlapping it in another thread), BLAS uses 1 thread."""
    return _ONE


__all__ = ["LIMIT_BLAS", "blas_libraries", "one_blas_thread"]
