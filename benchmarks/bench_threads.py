"""2 kernel threads against 1 on whole models (issue 19: "2 threads never slower than 1 on the zoo").

    PYTHONPATH=. python benchmarks/bench_threads.py [--runs 15] [--batch 1 8] [--model NAME.FORM ...]
        [--out benchmarks/results/bench_threads.json]

For each model (the committed MobileNetV2-style models and the zoo's r64 builds in
models/cache/arch/, built by models.zoo, with the encoder's dynamic forms), three Programs of the
same file and two onnxruntime sessions (intra_op_num_threads 1 and 2, intsim.bench.ort_session)
run in one process, warmed up (tune.settle_runs(split=True) + 2 runs each, so every choice is
made, the sides alternating as in the timed runs), then timed in two passes that alternate run
by run, t1, t2, ort_t1 and ort_t2 each once a round in a random order (_alternate), then t1 with t2_par
(a t2_par run's spinning OpenMP team would slow the run after it):
  t1        1 kernel thread;
  t2        2 kernel threads, as a user gets them (per-step and whole-run choices, intsim.runtime.tune);
  t2_par    2 kernel threads with the whole-run choice held on the first parallel side (the
            per-step choices only: what 2 threads did before tune.WholeRun; the split run when
            the batch splits);
  ort_t1, ort_t2  onnxruntime on 1 and 2 threads (ort_t2/ort_t1: what 2 threads do for it now).
whole_choices: t2's picks per feed key (sides: [split, whole batch,] serial; the last index is
the serial side); side_medians_ms: each pick's per-side medians.
Medians (ms) and ratios t2/t1 and t2_par/t1 (<= 1: 2 threads not slower); the host's load
average is recorded before and after (a shared 2-core host: ratios, not times, carry over).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intsim import load  # noqa: E402
from intsim.bench import ort_session, set_threads  # noqa: E402
from intsim.runtime import tune  # noqa: E402

COMMITTED = ("mobilenetv2_s.qdq_s8_pt", "mobilenetv2_s.qop_u8")
ZOO = tuple(f"{m}.r64.{f}" for m in ("mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_b0",
                                      "regnet_x_400mf", "audio_conv1d", "tiny_encoder", "resnet50")
            for f in ("qdq_u8", "qop_u8")) + ("tiny_encoder.r64.dynamic", "tiny_encoder.r64.dynamic_opt")


def model_path(name: str) -> Path:
    p = ROOT / "models" / f"{name}.onnx"
    if p.exists():
        return p
    p = ROOT / "models" / "cache" / "arch" / f"{name}.onnx"
    if not p.exists():          # built on demand (the models extra)
        from models import zoo
        arch, res_tag, form = name.split(".")
        p = Path(zoo.arch_quantized_model(arch, form, res=int(res_tag[1:])))
    return p


def feeds_for(prog, batch: int) -> dict:
    rng = np.random.default_rng(0)
    feeds = {}
    for name in prog.input_names:
        t = prog.graph.tensors[name]
        shape = [batch] + [d if isinstance(d, int) and d > 0 else 1 for d in (t.shape or [1])[1:]]
        storage = np.dtype(t.dtype.storage)
        feeds[name] = rng.integers(0, 100, shape).astype(storage) if storage.kind in "iu" else \
            rng.random(shape).astype(storage)
    return feeds


class _ParallelOnly(dict):
    """A Program's whole-run choices held on the parallel run (t2_par)."""

    def get(self, key, default=None):
        w = super().get(key)
        if w is None:
            w = self[key] = tune.WholeRun()
            w.untimed[0] = 10 ** 9   # never settles: every run is the first parallel side
        return w


def _alternate(fns: dict, runs: int, threads: dict, seed: int = 0) -> dict:
    """Median ms of each callable, each run after set_threads(threads[k]), every callable once a
    round in a random order (seeded) whose first is not the previous round's last: no callable
    runs twice in a row (it would find the caches as it left them) and none always follows the
    same other one. (A fixed order is biased: reversed every other round, the two ends ran back
    to back and ~10% faster; rotated, a side following an intsim run ran ~10% faster than one
    following an onnxruntime run, at r64, batch 1.)"""
    rng = random.Random(seed)
    times = {k: [] for k in fns}
    last = None
    for _ in range(runs):
        order = list(fns)
        while True:
            rng.shuffle(order)
            if order[0] != last or len(order) == 1:
                break
        last = order[-1]
        for k in order:
            set_threads(threads[k])
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def bench_model(name: str, batch: int, runs: int, par: bool = True) -> dict:
    path = str(model_path(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        progs = {k: load(path, target="ort") for k in (("t1", "t2", "t2_par") if par else ("t1", "t2"))}
    if par:
        progs["t2_par"]._choices = _ParallelOnly()
    model = onnx.load(path)
    sessions = {"ort_t1": ort_session(model, 1), "ort_t2": ort_session(model, 2)}
    threads = {"t1": 1, "t2": 2, "t2_par": 2, "ort_t1": 1, "ort_t2": 2}
    feeds = feeds_for(progs["t1"], batch)
    outs = {}
    fns = {k: (lambda p=p, k=k: outs.__setitem__(k, p.run(feeds))) for k, p in progs.items()}
    fns.update({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()})
    main = ("t1", "t2", "ort_t1", "ort_t2")
    _alternate({k: fns[k] for k in main}, tune.settle_runs(split=True) + 2, threads)     # warm-up
    med = _alternate({k: fns[k] for k in main}, runs, threads)
    row = {"model": name, "batch": batch, "t1_ms": round(med["t1"], 3), "t2_ms": round(med["t2"], 3),
           "t2_over_t1": round(med["t2"] / med["t1"], 3), "ort_t1_ms": round(med["ort_t1"], 3),
           "ort_t2_ms": round(med["ort_t2"], 3), "ort_t2_over_t1": round(med["ort_t2"] / med["ort_t1"], 3),
           "ratio_t1": round(med["ort_t1"] / med["t1"], 3), "ratio_t2": round(med["ort_t2"] / med["t2"], 3)}
    if par:
        pair = {k: fns[k] for k in ("t1", "t2_par")}
        _alternate(pair, tune.settle_runs(split=True) + 2, threads)
        pm = _alternate(pair, runs, threads)
        row.update(t2_par_ms=round(pm["t2_par"], 3), t2_par_over_t1=round(pm["t2_par"] / pm["t1"], 3))
    exact = all(np.array_equal(outs["t1"][o], outs[k][o]) for k in progs for o in outs["t1"])
    row["whole_choices"] = [w.choices for w in progs["t2"]._choices.values()]
    row["side_medians_ms"] = [[[round(m * 1e3, 3) for m in ms] for ms in w.medians]
                              for w in progs["t2"]._choices.values()]
    row.update(outputs_equal=exact, runs=runs)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--batch", type=int, nargs="*", default=[1, 8])
    p.add_argument("--model", nargs="*", default=list(COMMITTED + ZOO))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_threads.json"))
    p.add_argument("--no-par", action="store_true", help="skip the t2_par pass")
    a = p.parse_args(argv)
    res = {"load_before": os.getloadavg(), "rows": []}
    for name in a.model:
        for b in a.batch:
            try:
                row = bench_model(name, b, a.runs, not a.no_par)
            except Exception as e:  # noqa: BLE001 - reported, the rest still run
                row = {"model": name, "batch": b, "error": f"{type(e).__name__}: {e}"}
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    res["load_after"] = os.getloadavg()
    ok = [r for r in res["rows"] if "error" not in r]
    if ok:
        res["summary"] = {f"{k}_{f.__name__}": f(r[k] for r in ok if k in r)
                          for k in ("t2_over_t1", "ort_t2_over_t1", "t2_par_over_t1") if any(k in r for r in ok)
                          for f in (max, statistics.median)}
        res["summary"]["t2_over_t1_above_1.05"] = sum(r["t2_over_t1"] > 1.05 for r in ok)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res.get("summary"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
