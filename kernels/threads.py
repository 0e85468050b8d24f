"""The kernels' thread runtime: the thread count, the persistent pool behind parallel_items, and
Numba parallel regions (native_split, native_call, bind_items). Every threaded kernel in this
package shares it; it imports nothing from the kernels.

Nothing here touches the environment at import. configure() sets the OpenMP spin count
(GOMP_SPINCOUNT, see SPINCOUNT) once, and must run before libgomp is loaded (by the first Numba
parallel region, or numba.set_num_threads): the intsim side calls it when it builds a Program,
set_num_threads() calls it, and this module calls it before it first loads a threading layer
itself (a kernels-only caller gets the same behaviour); a value set by the user wins. Code that
starts Numba's threads on its own before any of these calls configure() first.
"""
from __future__ import annotations

import functools
import importlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

NATIVE_THREADS = os.environ.get("INTSIM_NATIVE_THREADS", "1") != "0"
# Numba's OpenMP threads spin this many polls after a region before sleeping (libgomp reads it when
# Numba first loads it; a value set by the user wins). libgomp's own default was too short to bridge
# the gaps between a network's layers on this VM (a region of 2 x 9 us took 24 us, 13 us spinning);
# 1e6 bridged them too but kept a core busy for ~25 ms after each run, which slowed whatever ran
# next (onnxruntime timed alternately: 2.6 -> 4.3 ms on MobileNetV2-style at batch 8). 1e4 spins
# ~0.3 ms: the same model time as 1e6 here (3.1-3.4 ms), a region after a 300 us gap +8 us.
SPINCOUNT = "10000"
_configured = [False]


def configure() -> None:
    """Set GOMP_SPINCOUNT to SPINCOUNT unless the user set it: call once before the first parallel
    region (libgomp reads it when Numba loads it). Idempotent; later calls do nothing."""
    if not _configured[0]:
        os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
        _configured[0] = True


def _no_native_in_child() -> None:
    """A forked child must not launch OpenMP regions (GNU OpenMP aborts a child of a process
    that used it): there new bindings use the pool, and calls bound before the fork (a prepared
    Program's lanes) run serially (native_call returns False)."""
    global NATIVE_THREADS
    NATIVE_THREADS = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_no_native_in_child)


def native_split(threads: int) -> bool:
    """Whether a driver runs its work on `threads` threads as one Numba parallel region (prange
    over equal ranges of items) rather than through parallel_items' Python pool. On this kind of
    VM a sleeping pool thread takes 50-300 us to wake and then waits for the GIL: a job of two
    9 us chunks took 57 us through the pool against 18 us on one thread, and 13 us as a region
    (Numba's OpenMP threads spin between regions). The price: a region ends at a barrier, so a
    thread descheduled by another process delays the call. INTSIM_NATIVE_THREADS=0 keeps the pool."""
    return NATIVE_THREADS and threads > 1 and numba.config.NUMBA_NUM_THREADS > 1 and threadsafe_layer()


@functools.lru_cache(maxsize=None)
def threadsafe_layer() -> bool:
    """Whether Numba's parallel regions will run on a layer that several Python threads may
    launch at once (TBB or OpenMP). The fallback `workqueue` layer aborts the process on
    concurrent launches, so without TBB/OpenMP (or with it chosen explicitly) the pool is used."""
    configure()                              # before the import below loads libgomp
    layer = str(numba.config.THREADING_LAYER).lower()
    candidates = {"default": ("tbbpool", "omppool"), "threadsafe": ("tbbpool", "omppool"),
                  "safe": ("tbbpool",), "tbb": ("tbbpool",), "omp": ("omppool",)}.get(layer, ())
    for mod in candidates:
        try:
            importlib.import_module(f"numba.np.ufunc.{mod}")
            return True
        except ImportError:
            continue
    return False


# Work sharing for the nogil drivers: chunks of items are claimed dynamically by the calling
# thread and a small persistent pool, so a call never waits for a worker that has not started.
# (Not Numba's prange: with the OpenMP layer a parallel region ends at a barrier every team
# thread must reach; on a loaded machine a sleeping worker takes milliseconds to wake and the
# caller waits for it even when it could have done all the work itself.)
_state = {"threads": min(2, os.cpu_count() or 1), "pool": None, "size": 0}
_lock = threading.Lock()


_local = threading.local()     # .threads: this thread's override of _state["threads"] (serial_here)


def set_num_threads(n: int) -> None:
    """Threads used by the fast kernels (the caller counts as one). Configures the runtime first
    (configure()): a caller that sets the count may start Numba's threads next."""
    if int(n) < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    configure()
    _state["threads"] = int(n)


def get_num_threads() -> int:
    """The threads a kernel called from this thread may use: set_num_threads(), or 1 inside
    serial_here()."""
    return getattr(_local, "threads", None) or _state["threads"]


class _SerialHere:
    """serial_here()'s context: a plain class (a generator-based context manager costs ~2 us a
    block, and frozen replays enter one per serial step)."""

    __slots__ = ("before",)

    def __enter__(self):
        self.before = getattr(_local, "threads", None)
        _local.threads = 1
        return self

    def __exit__(self, *exc):
        _local.threads = self.before
        return False


def serial_here() -> _SerialHere:
    """Within the block, kernels called from this thread run on it alone (no pool hand-off):
    for callers that already run several independent kernels side by side (a batch split over
    threads)."""
    return _SerialHere()


def _pool(workers):
    with _lock:
        if _state["pool"] is None or _state["size"] < workers:
            _state["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intsim")
            _state["size"] = workers
        return _state["pool"]


def parallel_items(fn, n_items: int, threads: int | None = None, per_thread: int = 4) -> None:
    """Call fn(i0, i1) over disjoint chunks covering range(n_items); returns when all are done.
    fn must release the GIL (nogil kernels) and chunks must write disjoint outputs."""
    threads = get_num_threads() if threads is None else int(threads)
    if threads <= 1 or n_items <= 1:
        fn(0, n_items)
        return
    chunk = max(1, n_items // (per_thread * threads))
    n_chunks = -(-n_items // chunk)
    counter, done, errors = itertools.count(), [0], []
    finished, lock = threading.Event(), threading.Lock()

    def work():
        while True:
            c = next(counter)
            if c >= n_chunks:
                return
            try:
                fn(c * chunk, min((c + 1) * chunk, n_items))
            except BaseException as e:      # reported by the caller
                errors.append(e)
            with lock:
                done[0] += 1
                if done[0] == n_chunks:
                    finished.set()

    pool = _pool(threads - 1)
    for _ in range(threads - 1):
        pool.submit(work)
    work()
    finished.wait()
    if errors:
        raise errors[0]


def native_call(par, threads, *args) -> bool:
    """par(*args) (a parallel=True kernel) with Numba's thread count for this thread set to
    `threads` (capped at NUMBA_NUM_THREADS) for the call; True when it ran. False, running
    nothing, when this process may not start regions (a forked child: callers bound before the
    fork then run their serial path, see _no_native_in_child)."""
    if not NATIVE_THREADS:
        return False
    want = min(int(threads), numba.config.NUMBA_NUM_THREADS)
    before = _numba_threads()()
    if before != want:
        numba.set_num_threads(want)
    try:
        par(*args)
    finally:
        if before != want:
            numba.set_num_threads(before)
    return True


@functools.lru_cache(maxsize=None)
def _numba_threads():
    """This thread's Numba thread count getter: the threading layer's own C getter once the
    layer is up (numba.get_num_threads checks the layer's launch first on every call, about
    four times the cost), else numba.get_num_threads."""
    from numba.np.ufunc import parallel
    configure()
    numba.get_num_threads()                  # launches the layer
    getter = getattr(parallel, "_get_num_threads", None)
    if callable(getter) and isinstance(getter(), int) and getter() == numba.get_num_threads():
        return getter
    return numba.get_num_threads


def bind_items(drive, par, head, tail, items, threads):
    """call(src, dst) running drive(src, *head, dst, *tail, i0, i1) over items 0..items-1: on the
    calling thread when `threads` <= 1, else as one Numba parallel region par(src, *head, dst,
    *tail, items, parts) (native_split) or through parallel_items' pool."""
    if threads <= 1 or items <= 1:
        return lambda src, dst: drive(src, *head, dst, *tail, 0, items)
    if native_split(threads):
        parts = np.int64(min(threads, items))
        # (a forked child runs the items serially: no regions there)
        return lambda src, dst: native_call(par, threads, src, *head, dst, *tail, items, parts) or \
            drive(src, *head, dst, *tail, 0, items)
    return lambda src, dst: parallel_items(lambda i0, i1: drive(src, *head, dst, *tail, i0, i1), items, threads)
