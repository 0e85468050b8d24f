"""The zoo's transformer encoder (issue 19) timed by CPU time as well as wall time: on a shared
host whose load exceeds its cores, a run longer than the scheduler's slice is preempted and
its wall time grows with the load, while a shorter one (onnxruntime's 0.3-2.5 ms) often is
not, so the wall-clock ratio of `intsim bench --suite zoo` mostly measures the load there.
The process's CPU time (time.process_time: all its threads) of each run is not stretched by
waiting; with 1 thread on both sides (and onnxruntime's allow_spinning=0) it is the work done.

For each encoder form and batch: intsim.load(path, target="ort").run against onnxruntime's
session on the same file (intsim.bench.ort_session), alternating run by run after a warm-up,
medians of wall and CPU time, ratio = onnxruntime / intsim (> 1: intsim faster), and whether
the outputs are equal.

    python -m benchmarks.encoder_cpu [--forms qdq_u8,qop_u8,dynamic,dynamic_opt] [--batches 1,8]
                                     [--threads 1] [--runs 41] [--res 64] [--json F]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import onnx


def time_pair(prog_run, ort_run, runs: int) -> dict:
    """Medians (ms) of wall and CPU time of each callable, alternating run by run."""
    for _ in range(3):
        prog_run()
        ort_run()
    t = {k: {"wall": [], "cpu": []} for k in ("intsim", "ort")}
    for i in range(runs):
        order = (("intsim", prog_run), ("ort", ort_run)) if i % 2 == 0 else (("ort", ort_run), ("intsim", prog_run))
        for k, fn in order:
            w, c = time.perf_counter(), time.process_time()
            fn()
            t[k]["cpu"].append(time.process_time() - c)
            t[k]["wall"].append(time.perf_counter() - w)
    return {f"{k}_{m}_ms": statistics.median(v[m]) * 1e3 for k, v in t.items() for m in ("wall", "cpu")}


def main(argv=None) -> int:
    from intsim.bench import ort_session, set_threads
    from intsim.bench_zoo import equal_pct
    from intsim.pipeline import load
    from models import zoo

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--forms", default="qdq_u8,qop_u8,dynamic,dynamic_opt")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=41)
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    set_threads(a.threads)
    rows = []
    for form in a.forms.split(","):
        path = zoo.arch_quantized_model("tiny_encoder", form, a.res)
        prog, sess = load(str(path), target="ort"), ort_session(onnx.load(str(path)), a.threads)
        for b in (int(v) for v in a.batches.split(",")):
            feeds = {zoo.INPUT_NAME: zoo.arch_inputs("tiny_encoder", b, 1, a.res)}
            row = {"model": "tiny_encoder", "form": form, "batch": b, "threads": a.threads}
            row.update(time_pair(lambda: prog.run(feeds), lambda: sess.run(None, feeds), a.runs))
            row["ratio_wall"] = row["ort_wall_ms"] / row["intsim_wall_ms"]
            row["ratio_cpu"] = row["ort_cpu_ms"] / row["intsim_cpu_ms"]
            row["equal_pct"] = equal_pct(prog.run(feeds)[zoo.OUTPUT_NAME], sess.run([zoo.OUTPUT_NAME], feeds)[0])
            rows.append(row)
            print(f"{form:12s} b{b} t{a.threads}  wall ms intsim {row['intsim_wall_ms']:7.3f} ort {row['ort_wall_ms']:7.3f} "
                  f"ratio {row['ratio_wall']:5.2f} | CPU ms intsim {row['intsim_cpu_ms']:7.3f} ort "
                  f"{row['ort_cpu_ms']:7.3f} ratio {row['ratio_cpu']:5.2f} | equal {row['equal_pct']:.1f} %", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"benchmark": "encoder_cpu", "runs": a.runs, "res": a.res, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
