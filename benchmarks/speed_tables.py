"""Markdown tables of the speed suites, from the JSON that `intsim bench --suite S --json F` wrote.

    intsim bench --suite gemm --json benchmarks/results/bench_gemm.json   (and conv, models)
    python -m benchmarks.speed_tables                                      (prints the README tables)

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
        lines.append(f"| {name.removesuffix('.onnx')} | {batch} | {r['intsim_ms']:.1f} | {r['ort_ms']:.1f} | "
                     f"{r['ratio']:.2f} | {'yes' if r.get('ort_equal') else 'NO'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    for suite in ("gemm", "conv"):
        print(kernel_table(suite))
        print()
    print(models_table())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
