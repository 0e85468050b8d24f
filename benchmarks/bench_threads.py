"""2 kernel threads against 1 on whole models (issue 19: "2 threads never slower than 1 on the zoo").

    PYTHONPATH=. python benchmarks/bench_threads.py [--runs 15] [--batch 1 8] [--model NAME.FORM ...]
        [--out benchmarks/results/bench_threads.json]

For each model (the committed MobileNetV2-style models and the zoo's r64 builds in
models/cache/arch/, built by models.zoo), three Programs of the same file run in one process,
warmed up (tune.settle_runs(split=True) + 2 runs each, so every choice is made), then timed in two passes
that alternate run by run, t1 with t2 and t1 with t2_par (a t2_par run's spinning OpenMP team
would slow the run after it):
  t1        1 kernel thread;
  t2        2 kernel threads, as a user gets them (per-step and whole-run choices, intsim.runtime.tune);
  t2_par    2 kernel threads with the whole-run choice held on the first parallel side (the
            per-step choices only: what 2 threads did before tune.WholeRun; the split run when
            the batch splits).
whole_choices: t2's picks per feed key (sides: [split, whole batch,] serial; the last index is
the serial side); side_medians_ms: each pick's per-side medians.
Medians (ms) and ratios t2/t1 and t2_par/t1 (<= 1: 2 threads not slower); the host's load
average is recorded before and after (a shared 2-core host: ratios, not times, carry over).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intsim import load  # noqa: E402
from intsim.bench import set_threads  # noqa: E402
from intsim.runtime import tune  # noqa: E402

COMMITTED = ("mobilenetv2_s.qdq_s8_pt", "mobilenetv2_s.qop_u8")
ZOO = tuple(f"{m}.r64.{f}" for m in ("mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_b0",
                                      "regnet_x_400mf", "audio_conv1d", "tiny_encoder", "resnet50")
            for f in ("qdq_u8", "qop_u8"))


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


def bench_model(name: str, batch: int, runs: int) -> dict:
    path = str(model_path(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        progs = {k: load(path, target="ort") for k in ("t1", "t2", "t2_par")}
    progs["t2_par"]._choices = _ParallelOnly()
    threads = {"t1": 1, "t2": 2, "t2_par": 2}
    feeds = feeds_for(progs["t1"], batch)
    outs = {}
    for k, p in progs.items():
        set_threads(threads[k])
        for _ in range(tune.settle_runs(split=True) + 2):
            outs[k] = p.run(feeds)
    med = {}
    for pair in (("t1", "t2"), ("t1", "t2_par")):    # two passes: a t2_par run's spinning team would
        times = {k: [] for k in pair}                # slow whichever run follows it
        for i in range(runs):
            for k in (pair if i % 2 == 0 else pair[::-1]):
                set_threads(threads[k])
                t = time.perf_counter()
                progs[k].run(feeds)
                times[k].append(time.perf_counter() - t)
        med.update({k + ("" if k != "t1" else "_" + pair[1]): statistics.median(v) * 1e3 for k, v in times.items()})
    exact = all(np.array_equal(outs["t1"][o], outs[k][o]) for k in progs for o in outs["t1"])
    choices = [w.choices for w in progs["t2"]._choices.values()]
    side_ms = [[[round(m * 1e3, 3) for m in ms] for ms in w.medians] for w in progs["t2"]._choices.values()]
    return {"model": name, "batch": batch, "t1_ms": round(med["t1_t2"], 3), "t2_ms": round(med["t2"], 3),
            "t2_over_t1": round(med["t2"] / med["t1_t2"], 3), "t2_par_ms": round(med["t2_par"], 3),
            "t2_par_over_t1": round(med["t2_par"] / med["t1_t2_par"], 3), "whole_choices": choices,
            "side_medians_ms": side_ms,
            "outputs_equal": exact, "runs": runs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--batch", type=int, nargs="*", default=[1, 8])
    p.add_argument("--model", nargs="*", default=list(COMMITTED + ZOO))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_threads.json"))
    a = p.parse_args(argv)
    res = {"load_before": os.getloadavg(), "rows": []}
    for name in a.model:
        for b in a.batch:
            try:
                row = bench_model(name, b, a.runs)
            except Exception as e:  # noqa: BLE001 - reported, the rest still run
                row = {"model": name, "batch": b, "error": f"{type(e).__name__}: {e}"}
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    res["load_after"] = os.getloadavg()
    ok = [r for r in res["rows"] if "error" not in r]
    if ok:
        res["summary"] = {"t2_over_t1_max": max(r["t2_over_t1"] for r in ok),
                          "t2_over_t1_median": statistics.median(r["t2_over_t1"] for r in ok),
                          "t2_par_over_t1_max": max(r["t2_par_over_t1"] for r in ok),
                          "t2_par_over_t1_median": statistics.median(r["t2_par_over_t1"] for r in ok)}
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res.get("summary"), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
