"""`intsim bench --profile MODEL`: where a run's time goes, per node, beside onnxruntime's own
profile of the same model (so the next gap is visible).

intsim: each prepared step timed over N whole-batch runs (`Program.timed_steps`: the ordinary,
unfrozen execution; feed checks and the run's bookkeeping are not in any step), median per node.
onnxruntime: a session with `enable_profiling` (same thread count, `allow_spinning=0`, all graph
optimizations, as intsim.bench times it), N runs after a warm-up, its JSON trace parsed: the
`<node>_kernel_time` events (cat "Node"), median per node. onnxruntime fuses QDQ groups into
QLinear nodes named after the node they replace (or `<name>_quant`, and its layout pass adds
`_token_N`), so nodes are paired by name, else by name without those suffixes; an onnxruntime
node with no intsim partner gets a row of its own.
ratio = onnxruntime ms / intsim ms (> 1: intsim faster), as in the suites.

    profile_model(path, runs=20, threads=2, batch=1) -> {"rows": [...], "intsim_total_ms", ...}
"""
from __future__ import annotations

import json
import os
import re
import statistics
import tempfile

import numpy as np
import onnx

from .bench import WARMUP, median_times, ort_session, set_threads
from .pipeline import load
from .runtime import tune


def model_feeds(prog, batch: int, seed: int = 0) -> dict:
    """Random inputs of the model's declared shape (dynamic dimensions: `batch` for the first,
    1 after); floats standard normal, integers over their type's range."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in prog.input_names:
        t = prog.graph.tensors[name]
        shape = [d if isinstance(d, int) and d > 0 else (batch if i == 0 else 1)
                 for i, d in enumerate(t.shape or [batch])]
        dtype = np.dtype(t.dtype.storage)
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[name] = rng.integers(t.dtype.qmin, t.dtype.qmax + 1, shape).astype(dtype)
    return feeds


def ort_node_times(model, feeds: dict, runs: int, threads: int) -> dict:
    """onnxruntime's per-node kernel times over `runs` runs after one warm-up (each node's first
    event dropped): node name -> (median ms, op type)."""
    with tempfile.TemporaryDirectory() as d:
        sess = ort_session(model, threads, profile_prefix=os.path.join(d, "ort"))
        for _ in range(runs + 1):
            sess.run(None, feeds)
        events = _node_events(sess.end_profiling())
    times, ops = {}, {}
    for e in events:
        name = e["name"][: -len("_kernel_time")]
        times.setdefault(name, []).append(e["dur"] / 1e3)
        ops[name] = e.get("args", {}).get("op_name", "?")
    return {k: (statistics.median(v[1:] or v), ops[k]) for k, v in times.items()}


def _node_events(path: str) -> list:
    with open(path) as f:
        trace = json.load(f)
    return [e for e in trace if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]


def _base(name: str) -> str:
    """A node name without onnxruntime's suffixes: `_token_N` (layout transformer), `_quant`."""
    name = re.sub(r"(_token_\d+)+$", "", name)
    return name[: -len("_quant")] if name.endswith("_quant") else name


def _pair(intsim_names: list, ort: dict) -> dict:
    """intsim node name -> onnxruntime node name: the same name, else the same name once
    onnxruntime's suffixes are dropped on both sides (first such node)."""
    pairs, used = {}, set()
    for n in intsim_names:
        if n in ort:
            pairs[n] = n
            used.add(n)
    for n in intsim_names:
        if n in pairs:
            continue
        cand = next((o for o in ort if o not in used and _base(o) == _base(n)), None)
        if cand is not None:
            pairs[n] = cand
            used.add(cand)
    return pairs


def profile_model(path: str, runs: int = 20, threads: int = 2, batch: int = 1) -> dict:
    """Per-node medians of intsim and onnxruntime on `path` (see the module doc)."""
    if runs < 1:
        raise ValueError(f"profile: runs must be >= 1, got {runs}")
    set_threads(threads)
    prog = load(path)
    model = onnx.load(path)
    feeds = model_feeds(prog, batch)
    prog.timed_steps(feeds)             # warm-up (compiles on a cold cache)
    per = {}
    for _ in range(runs):
        _, steps = prog.timed_steps(feeds)
        for node, sec in steps:
            per.setdefault(node.name, (node, []))[1].append(sec * 1e3)
    ort = ort_node_times(model, feeds, runs, threads)
    pairs = _pair(list(per), ort)
    rows = []
    for name, (node, ms) in per.items():
        o = pairs.get(name)
        row = {"node": name, "op": node.op, "origin": node.origin, "intsim_ms": statistics.median(ms),
               "ort_node": o, "ort_op": ort[o][1] if o else None, "ort_ms": ort[o][0] if o else None}
        row["ratio"] = row["ort_ms"] / row["intsim_ms"] if o and row["intsim_ms"] > 0 else None
        rows.append(row)
    for o, (ms, op) in ort.items():
        if o not in pairs.values():
            rows.append({"node": o, "op": None, "origin": None, "intsim_ms": None, "ort_node": o,
                         "ort_op": op, "ort_ms": ms, "ratio": None})
    rows.sort(key=lambda r: (r["intsim_ms"] is None, -(r["intsim_ms"] or 0), -(r["ort_ms"] or 0)))
    sess = ort_session(model, threads)
    # warmed up as the zoo suite is (its frozen run recorded and its thread choices made): with one
    # warm-up run the timed runs included the frozen run's recording (a whole run twice the steps' sum)
    whole = median_times({"intsim": lambda: prog.run(feeds), "ort": lambda: sess.run(None, feeds)}, max(runs, 1),
                         warmup=WARMUP + tune.settle_runs(split=True))
    return {"model": os.path.basename(path), "batch": batch, "threads": threads, "runs": runs, "rows": rows,
            "intsim_steps_ms": sum(r["intsim_ms"] or 0 for r in rows),
            "ort_nodes_ms": sum(r["ort_ms"] or 0 for r in rows),
            "intsim_run_ms": whole["intsim"][0] * 1e3, "ort_run_ms": whole["ort"][0] * 1e3}


def format_profile(p: dict) -> str:
    """The profile as a table, slowest intsim step first."""
    def ms(v):
        return f"{v:9.3f}" if v is not None else f"{'-':>9}"
    w = max([len(r["node"]) for r in p["rows"]] + [4])
    wi = max([len(r["op"] or "-") for r in p["rows"]] + [9])
    wo = max([len(r["ort_op"] or "-") for r in p["rows"]] + [6])
    head = f"{'node':{w}}  {'intsim op':{wi}} {'intsim ms':>9} {'ort op':{wo}} {'ort ms':>9} {'ratio':>6}"
    lines = [f"{p['model']}: batch {p['batch']}, {p['threads']} threads, medians of {p['runs']} runs "
             f"(ratio = ort ms / intsim ms, > 1: intsim faster)", head, "-" * len(head)]
    for r in p["rows"]:
        ratio = f"{r['ratio']:6.2f}" if r["ratio"] is not None else f"{'-':>6}"
        lines.append(f"{r['node']:{w}}  {r['op'] or '-':{wi}} {ms(r['intsim_ms'])} {r['ort_op'] or '-':{wo}} "
                     f"{ms(r['ort_ms'])} {ratio}")
    lines.append(f"sum of steps: intsim {p['intsim_steps_ms']:.3f} ms, onnxruntime nodes {p['ort_nodes_ms']:.3f} ms; "
                 f"whole run: intsim {p['intsim_run_ms']:.3f} ms, onnxruntime {p['ort_run_ms']:.3f} ms")
    return "\n".join(lines)
