"""Whole-model ratio onnxruntime / intsim of one zoo model in thread CPU time beside wall time,
for hosts shared with other work: a run that is preempted waits in wall time but not in its
thread's CPU time (time.thread_time), so on a loaded host the CPU-time ratio is the steadier
figure. Both sides run on the calling thread (1 thread: onnxruntime with intra_op_num_threads=1
and allow_spinning=0, intsim's kernels at 1 thread), alternating, medians of 15 runs after 12
warm-up runs (intsim's frozen replay), on the `ort` target.

    python -m benchmarks.zoo_cpu_ratio models/cache/arch/regnet_x_400mf.r224.qdq_u8.onnx [threads] [batch]
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import onnx

from intsim.bench import ort_session, set_threads
from intsim.pipeline import load


def _clock(fn, clock) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def cpu_ratio(path: str, threads: int = 1, batch: int = 1, runs: int = 15) -> dict:
    """Medians (ms) of intsim and onnxruntime runs in wall and thread CPU time, and the ratios."""
    from models import zoo
    set_threads(threads)
    prog = load(path, target="ort")
    base = os.path.basename(path).split(".")
    feeds = {zoo.INPUT_NAME: zoo.arch_inputs(base[0], batch, 1, int(base[1][1:]))}
    sess = ort_session(onnx.load(path), threads)
    for _ in range(12):
        prog.run(feeds)
        sess.run(None, feeds)
    t = {k: [] for k in ("intsim_wall", "ort_wall", "intsim_cpu", "ort_cpu")}
    for _ in range(runs):
        t["intsim_wall"].append(_clock(lambda: prog.run(feeds), time.perf_counter))
        t["ort_wall"].append(_clock(lambda: sess.run(None, feeds), time.perf_counter))
        t["intsim_cpu"].append(_clock(lambda: prog.run(feeds), time.thread_time))
        t["ort_cpu"].append(_clock(lambda: sess.run(None, feeds), time.thread_time))
    out = {k + "_ms": float(np.median(v) * 1e3) for k, v in t.items()}
    out["ratio_wall"] = out["ort_wall_ms"] / out["intsim_wall_ms"]
    out["ratio_cpu"] = out["ort_cpu_ms"] / out["intsim_cpu_ms"]
    return out


if __name__ == "__main__":
    a = sys.argv[1:]
    print(cpu_ratio(a[0], int(a[1]) if len(a) > 1 else 1, int(a[2]) if len(a) > 2 else 1))
