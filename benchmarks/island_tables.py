"""Before/after of 8-bit float islands run as tables (intsim.runtime.island_tables), for hosts
shared with other work: each zoo model is prepared twice in one process, with
INTSIM_ISLAND_TABLES=0 (the island's steps, as before) and 1 (the tables), and both run
alternating with onnxruntime (1 thread, allow_spinning=0; intsim's kernels at 1 thread) on the
same feeds, after 12 warm-up runs each (frozen replays), each side first, second and third in
turn. Reported: medians of `runs` runs in
wall time and in thread CPU time (time.thread_time: a preempted run waits in wall time, not in
CPU time, so on a loaded host the CPU ratio is the steadier figure), and ratio = onnxruntime
time / intsim time for each. Both programs' outputs are checked equal to onnxruntime's.

    python -m benchmarks.island_tables [--res 64] [--batch 1] [--runs 15] [--json F] MODEL.FORM ...
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import onnx

from intsim.bench import ort_session, set_threads
from intsim.pipeline import load


def _clock(fn, clock) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def ab(spec: str, res: int, batch: int, runs: int) -> dict:
    from models import zoo
    name, form = spec.split(".")
    path = str(zoo.arch_quantized_model(name, form, res))
    set_threads(1)
    progs = {}
    for flag in ("0", "1"):
        os.environ["INTSIM_ISLAND_TABLES"] = flag
        progs[flag] = load(path, target="ort")
    os.environ.pop("INTSIM_ISLAND_TABLES")
    feeds = {zoo.INPUT_NAME: zoo.arch_inputs(name, batch, 1, res)}
    sess = ort_session(onnx.load(path), 1)
    want = sess.run(None, feeds)
    sides = {"before": lambda: progs["0"].run(feeds), "after": lambda: progs["1"].run(feeds),
             "ort": lambda: sess.run(None, feeds)}
    for _ in range(12):
        for fn in sides.values():
            fn()
    for k in ("before", "after"):
        got = list(sides[k]().values())
        assert all(np.array_equal(g, w) for g, w in zip(got, want)), f"{spec}: {k} differs from onnxruntime"
    t = {(k, c): [] for k in sides for c in ("wall", "cpu")}
    order = list(sides)
    for i in range(runs):
        turn = order[i % 3:] + order[:i % 3]    # each side first, second and third in turn
        for clock, c in ((time.perf_counter, "wall"), (time.thread_time, "cpu")):
            for k in turn:
                t[(k, c)].append(_clock(sides[k], clock))
    med = {f"{k}_{c}_ms": float(np.median(v) * 1e3) for (k, c), v in t.items()}
    row = {"model": name, "form": form, "res": res, "batch": batch, "threads": 1, "bit_exact": True, **med}
    for k in ("before", "after"):
        for c in ("wall", "cpu"):
            row[f"ratio_{k}_{c}"] = med[f"ort_{c}_ms"] / med[f"{k}_{c}_ms"]
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = []
    print("| model | form | res | batch | before wall | after wall | before cpu | after cpu |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for spec in a.models:
        r = ab(spec, a.res, a.batch, a.runs)
        rows.append(r)
        print(f"| {r['model']} | {r['form']} | {r['res']} | {r['batch']} | {r['ratio_before_wall']:.2f} | "
              f"{r['ratio_after_wall']:.2f} | {r['ratio_before_cpu']:.2f} | {r['ratio_after_cpu']:.2f} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"suite": "island_tables", "load": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
