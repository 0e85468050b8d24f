"""`intsim bench --suite gemm|conv|models|ops [--case C] [--json F]`: fast kernels vs onnxruntime
(the measurements live in intsim.bench; single ops through Program.run in intsim.bench_ops);
`intsim bench --profile MODEL`: per-node times beside onnxruntime's profile (intsim.bench_profile)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import bench, bench_ops, bench_profile
from ..errors import IntsimError
from .common import check_output


def cmd_bench(args) -> int:
    check_output(args.json, "--json")
    if args.profile is not None:
        return cmd_profile(args)
    cases = None
    if args.case and args.suite in ("gemm", "conv", "ops"):
        known = {"gemm": bench.GEMM_CASES, "conv": bench.CONV_CASES, "ops": bench_ops.OPS_CASES}[args.suite]
        table = {c[0]: c for c in known}
        unknown = [c for c in args.case if c not in table]
        if unknown:
            raise IntsimError(f"unknown {args.suite} case(s) {', '.join(unknown)} (known: {', '.join(table)})")
        cases = [table[c] for c in args.case]
    if args.runs < 7:
        raise IntsimError(f"--runs must be >= 7 (medians), got {args.runs}")
    show = not getattr(args, "quiet", False) and sys.stderr.isatty()
    suite = bench_ops.run_ops_suite if args.suite == "ops" else lambda **kw: bench.run_suite(args.suite, **kw)
    rows = suite(threads=args.threads, runs=args.runs, cases=cases, progress=bench.progress_line if show else None)
    if args.json is not None:
        text = json.dumps({"suite": args.suite, "threads": args.threads, "rows": rows,
                           "summary": bench.summary(rows)}, indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            Path(args.json).write_text(text + "\n")
    if args.json != "-":
        print(bench.format_table(rows))
        print(bench.format_summary(bench.summary(rows)))
    return 0


def cmd_profile(args) -> int:
    """`intsim bench --profile MODEL [--runs N] [--batch B] [--json F]`: per-node times beside
    onnxruntime's profile (intsim.bench_profile)."""
    if args.runs < 1:
        raise IntsimError(f"--runs must be >= 1, got {args.runs}")
    p = bench_profile.profile_model(args.profile, runs=args.runs, threads=args.threads, batch=args.batch)
    if args.json is not None:
        text = json.dumps(p, indent=1)
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        Path(args.json).write_text(text + "\n")
    print(bench_profile.format_profile(p))
    return 0


def add_parser(subparsers) -> None:
    """Register `intsim bench`."""
    s = subparsers.add_parser("bench", help="fast kernels vs onnxruntime (GOP/s, ratios)")
    s.add_argument("--suite", default="gemm", choices=["gemm", "conv", "models", "ops"])
    s.add_argument("--json", nargs="?", const="-", default=None, help="write JSON (to F, or - for stdout)")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--runs", type=int, default=bench.RUNS, help="timed runs per side (>= 7)")
    s.add_argument("--case", action="append", default=None, help="only this case (repeatable)")
    s.add_argument("--profile", default=None, metavar="MODEL",
                   help="per-node times of MODEL beside onnxruntime's profile (--runs N, default 7; --batch B)")
    s.add_argument("--batch", type=int, default=1, help="batch of --profile's random input")
    s.add_argument("--quiet", action="store_true", help="no progress notes on stderr")
    s.set_defaults(fn=cmd_bench)
