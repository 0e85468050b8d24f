"""Markdown tables of the speed suites, from the JSON that `intsim bench --suite S --json F` wrote.

    intsim bench --suite gemm --json benchmarks/results/bench_gemm.json   (and conv, models, ops, zoo)
    python -m benchmarks.speed_tables                                      (prints the README tables)

A suite whose JSON is missing is skipped with a note.

ratio = onnxruntime time / intsim time (> 1: intsim is faster), both measured in the same process
with the same thread count, runs alternating. `intsim` is the engine the `ort` target runs on
this host; `exact` is the exact vpmaddwd engine on the same data.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(suite: str) -> dict:
    return json.loads((RESULTS / f"bench_{suite}.json").read_text())


def kernel_table(suite: str) -> str:
    d = _load(suite)
    lines = ["| case | shape | intsim GOP/s | onnxruntime GOP/s | ratio | exact engine ratio | bit-exact with ORT |",
             "|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        lines.append(f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r['intsim_gops']:.1f} | "
                     f"{r['ort_gops']:.1f} | {r['ratio']:.2f} | {r.get('exact_ratio', float('nan')):.2f} | "
                     f"{'yes' if r.get('ort_equal') else 'no'} |")
    ratios = [r["ratio"] for r in d["rows"]]
    exact = [r["exact_ratio"] for r in d["rows"] if "exact_ratio" in r]
    lines.append("")
    lines.append(f"{suite}: median ratio {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max "
                 f"{max(ratios):.2f}); exact engine median {statistics.median(exact):.2f}; "
                 f"{d['threads']} threads.")
    return "\n".join(lines)


def models_table() -> str:
    d = _load("models")
    lines = ["| model | batch | intsim ms | onnxruntime ms | ratio | bit-exact |", "|---|---|---|---|---|---|"]
    for r in d["rows"]:
        if "error" in r:
            lines.append(f"| {r['case']} | | error: {r['error']} | | | |")
            continue
        name, batch = r["case"].rsplit("@b", 1)
        lines.append(f"| {name.removesuffix('.onnx')} | {batch} | {r['intsim_ms']:.2f} | {r['ort_ms']:.2f} | "
                     f"{r['ratio']:.2f} | {'yes' if r.get('ort_equal') else 'NO'} |")
    return "\n".join(lines)


def _summary(ratios) -> str:
    below = sum(r < 0.7 for r in ratios)
    return (f"median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}, "
            f"{below} of {len(ratios)} below 0.7")


def ops_table() -> str:
    """`--suite ops`: one row per case, a ratio column per thread count."""
    d = _load("ops")
    threads = sorted({r["threads"] for r in d["rows"]})
    cases = list(dict.fromkeys(r["case"] for r in d["rows"]))
    by = {(r["case"], r["threads"]): r for r in d["rows"]}
    head = "| case | op | " + " | ".join(f"{t}t intsim ms | {t}t ort ms | {t}t ratio" for t in threads)
    lines = [head + " | bit-exact |", "|---|---|" + "---|---|---|" * len(threads) + "---|"]
    for c in cases:
        rows = [by.get((c, t)) for t in threads]
        op = next(r["op"] for r in rows if r)
        cells = " | ".join(f"{r['intsim_ms']:.3f} | {r['ort_ms']:.3f} | {r['ratio']:.2f}" if r else " | | "
                           for r in rows)
        equal = all(r.get("ort_equal") for r in rows if r)
        lines.append(f"| {c} | {op} | {cells} | {'yes' if equal else 'NO'} |")
    lines.append("")
    for t in threads:
        lines.append(f"ops, {t} thread(s): " + _summary([by[(c, t)]["ratio"] for c in cases if (c, t) in by]))
    return "\n".join(lines)


def zoo_table() -> str:
    """`--suite zoo`: model x form rows, a ratio column per (batch, threads)."""
    d = _load("zoo")
    rows = [r for r in d["rows"] if "ratio" in r]
    keys = sorted({(r["batch"], r["threads"]) for r in rows})
    by = {(r["model"], r["form"], r["batch"], r["threads"]): r for r in rows}
    lines = ["| model | form | " + " | ".join(f"b{b} {t}t" for b, t in keys) + " | equal % |",
             "|---|---|" + "---|" * len(keys) + "---|"]
    for model, form in dict.fromkeys((r["model"], r["form"]) for r in rows):
        mine = [by.get((model, form, b, t)) for b, t in keys]
        cells = " | ".join(f"{r['ratio']:.2f}" if r else "" for r in mine)
        eq = min(r["equal_pct"] for r in mine if r)
        lines.append(f"| {model} | {form} | {cells} | {eq:g} |")
    for r in d["rows"]:
        if "error" in r:
            lines.append(f"| {r.get('case')} | | error: {r['error']} |")
    lines.append("")
    size = f"{d['res']}x{d['res']}" if d.get("res") else "the zoo's default input sizes"
    lines.append(f"zoo at {size}: " + _summary([r["ratio"] for r in rows]))
    for b, t in keys:
        lines.append(f"- batch {b}, {t} thread(s): " + _summary([r["ratio"] for r in rows
                                                                if (r["batch"], r["threads"]) == (b, t)]))
    return "\n".join(lines)


def main(argv=None) -> int:
    for name, table in (("gemm", lambda: kernel_table("gemm")), ("conv", lambda: kernel_table("conv")),
                        ("models", models_table), ("ops", ops_table), ("zoo", zoo_table)):
        if not (RESULTS / f"bench_{name}.json").is_file():
            print(f"({name}: no benchmarks/results/bench_{name}.json)\n")
            continue
        print(table())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
