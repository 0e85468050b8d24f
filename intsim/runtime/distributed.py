"""Samples over Dask distributed: `intsim verify` and `intsim overflow` on a dataset past one
process (issue 19). Optional: `pip install intsim[dask]` (dask[distributed]).

The caller splits its samples into chunks and gives two top-level (picklable) functions:
`factory(*args)` builds what a chunk needs (a model loaded once: Programs, reference sessions),
`chunk_fn(session, feeds)` returns the chunk's partial result. Each worker keeps the last
session it built, keyed by a hash of the model bytes and the options, so a model is loaded once
per worker, not once per chunk. The partial results come back in chunk order, for the caller to
merge exactly as it merges its own chunks.

- `--jobs N`: a local cluster, `LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`;
- `--scheduler ADDRESS`: an existing scheduler (`dask scheduler` + `dask worker ADDRESS` on each
  machine, each with intsim installed), whatever its workers.
"""
from __future__ import annotations

import hashlib
import logging
import math

from kernels.threads import set_num_threads

from ..errors import IntsimError

def _module():
    """dask's `distributed` module, imported on first use (~0.2-0.4 s that `intsim run` never
    needs), or None when the optional extra is not installed; kept as the module global `_dd`
    (which reading `distributed._dd` from outside also fills, see __getattr__)."""
    g = globals()
    if "_dd" not in g:
        try:
            import distributed as mod
        except ImportError:         # the optional extra is not installed
            mod = None
        g["_dd"] = mod
    return g["_dd"]


def __getattr__(name: str):
    if name == "_dd":
        return _module()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


MISSING = ("needs the Python package 'distributed' (dask's scheduler), which is not installed: "
           "pip install 'dask[distributed]' (or intsim[dask])")

_SESSIONS: dict = {}        # worker-local: key -> session (the last one built)


def available() -> bool:
    """True when dask distributed can be imported."""
    return _module() is not None


def require(flag: str = "--scheduler") -> None:
    """Refuse `flag` in one line when dask distributed is missing."""
    if _module() is None:
        raise IntsimError(f"{flag} {MISSING}")


LOCAL = "local"
"""The scheduler 'address' that asks for a new local cluster of `jobs` worker processes."""


def scheduler_for(jobs: int, scheduler=None):
    """What the command line runs on: `scheduler` when given (refused in one line without
    dask), else LOCAL for several jobs when dask is installed, else None (one process, or the
    process pool of several jobs without dask)."""
    if scheduler:
        require("--scheduler")
        return scheduler
    return LOCAL if jobs > 1 and _module() is not None else None


def session_key(model_bytes: bytes, *options) -> str:
    """The worker cache key of a model and the options its session was built with."""
    h = hashlib.sha256(model_bytes)
    h.update(repr(options).encode())
    return h.hexdigest()


def _cached(key: str, factory, args):
    s = _SESSIONS.get(key)
    if s is None:
        _SESSIONS.clear()      # one model at a time per worker
        s = _SESSIONS[key] = factory(*args)
    return s


def _task(key, factory, args, chunk_fn, feeds):
    return chunk_fn(_cached(key, factory, args), feeds)


def client(jobs: int, scheduler=LOCAL):
    """A dask Client: on a new local cluster of `jobs` worker processes (one thread each, for
    Dask's tasks and intsim's kernels alike; closed with the client) for LOCAL, else on the scheduler at that address. Worker processes are
    spawned: a script that starts a local cluster needs the `if __name__ == "__main__":` guard."""
    require("--scheduler" if scheduler != LOCAL else "--jobs")
    if scheduler != LOCAL:
        try:
            return _module().Client(scheduler, timeout="20s")
        except OSError as e:
            raise IntsimError(f"--scheduler {scheduler}: cannot connect: {' '.join(str(e).split())}") from None
    cluster = _module().LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    c = _module().Client(cluster)
    c.run(set_num_threads, 1)       # a worker a core: one kernel thread each, no oversubscription
    c._intsim_cluster = cluster     # closed by close()
    return c


def close(c) -> None:
    cluster = getattr(c, "_intsim_cluster", None)
    c.close()
    if cluster is not None:
        cluster.close()


def workers(c) -> int:
    """The number of workers the client's scheduler has now (at least 1)."""
    return max(1, len(c.scheduler_info().get("workers", {})))


def chunk_size(samples: int, n_workers: int, chunk: int, progress: bool) -> int:
    """Chunks of at most `chunk` samples, at least one per worker (four with a progress bar, so
    it moves more often than once a worker)."""
    per = 4 * n_workers if progress else n_workers
    return max(1, min(chunk, math.ceil(samples / per)))


def map_chunks(c, factory, args: tuple, key: str, chunk_fn, parts: list, sizes: list, step=None) -> list:
    """chunk_fn(session, part) of every part on the client's workers, in the parts' order; step(n)
    after each chunk that completes (n: its sample count, from `sizes`)."""
    [shared] = c.scatter([args], broadcast=True, hash=False)
    futures = [c.submit(_task, key, factory, shared, chunk_fn, p, pure=False) for p in parts]
    index = {f.key: i for i, f in enumerate(futures)}
    results = [None] * len(parts)
    try:
        for f in _module().as_completed(futures):
            i = index[f.key]
            results[i] = f.result()
            if step is not None:
                step(sizes[i])
    finally:
        for f in futures:
            f.release()
    return results
