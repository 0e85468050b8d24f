"""Fast kernels vs onnxruntime: the gemm and conv suites of intsim.bench, plus the cold-start
cost of the Numba kernels with an empty and with a warm cache (NUMBA_CACHE_DIR in a temp dir).

    python -m benchmarks.bench_kernels [--suite gemm|conv|all] [--threads 2] [--json F] [--quick]

Other processes on the machine change the absolute figures; the ratios come from alternating
runs in one process and are the figures to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from intsim import bench

ROOT = Path(__file__).resolve().parent.parent

_FIRST_CALLS = r"""
import time
t0 = time.perf_counter()
import numpy as np
from kernels import fast_conv as fc
from kernels.simd import packing, wrappers
from kernels.conv import ConvGeom
t1 = time.perf_counter()
a = np.ones((7, 9), np.uint8); b = np.ones((9, 5), np.int8)
p = packing.pack_b(b, 0); acc = np.empty((7, 5), np.int32); out = np.empty((7, 5), np.uint8)
wrappers.gemm_packed(a, 0, p, 0, acc); wrappers.gemm_packed_requant(a, 0, p, 0, 0.1, 0, 0, 255, out)
x = np.ones((1, 4, 6, 6), np.uint8)
for w, g in ((np.ones((4, 4, 3, 3), np.int8), 1), (np.ones((4, 1, 3, 3), np.int8), 4)):
    pc = fc.pack_conv(w, 0, ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, g))
    fc.conv2d_fast(x, 0, pc, 0, np.empty((1, 4, 6, 6), np.int32))
    fc.conv2d_fast_requant(x, 0, pc, 0, 0.1, 0, 0, 255, np.empty((1, 4, 6, 6), np.uint8))
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def compile_times() -> dict:
    """Import and first-call seconds in fresh interpreters: empty cache, then warm cache."""
    res = {}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for label in ("empty_cache", "warm_cache"):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALLS], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split()
            res[label] = {"import_s": float(out[0]), "first_calls_s": float(out[1])}
    return res


QUICK = {"gemm": ["square256", "square1024", "resnet18.layer3.3x3", "mobilenetv2.last1x1"],
         "conv": ["resnet18.layer3.3x3", "mobilenetv2.dw112", "mobilenetv2.pw7"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="all", choices=["gemm", "conv", "all"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=bench.RUNS)
    p.add_argument("--json", default=None)
    p.add_argument("--quick", action="store_true", help="a few cases per suite")
    args = p.parse_args(argv)
    report = {"threads": args.threads, "compile": compile_times()}
    print("compile:", report["compile"])
    for suite in (["gemm", "conv"] if args.suite == "all" else [args.suite]):
        table = bench.GEMM_CASES if suite == "gemm" else bench.CONV_CASES
        cases = [c for c in table if c[0] in QUICK[suite]] if args.quick else None
        rows = bench.run_suite(suite, threads=args.threads, runs=args.runs, cases=cases)
        report[suite] = {"rows": rows, "summary": bench.summary(rows)}
        print(f"\n== {suite} (threads={args.threads}) ==")
        print(bench.format_table(rows))
        print(bench.summary(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
