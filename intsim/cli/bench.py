"""`intsim bench --suite gemm|conv|models|ops|zoo [--case C] [--json F]`: fast kernels vs onnxruntime
(the measurements live in intsim.bench; single ops through Program.run in intsim.bench_ops; whole
architectures in intsim.bench_zoo: `--res N` for smaller inputs, `--form F`, `--threads T` and
`--batch B` to run only those);
`intsim bench --profile MODEL`: per-node times beside onnxruntime's profile (intsim.bench_profile);
MODEL is a file or a zoo model and form, e.g. `shufflenet_v2_x1_0.qdq_u8` (at `--res`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import IntsimError
from .common import check_output


def cmd_bench(args) -> int:
    from .. import bench, bench_ops  # deferred: they import onnx, onnxruntime and every kernel (not `intsim run`)
    check_output(args.json, "--json")
    args.runs = bench.RUNS if args.runs is None else args.runs
    if args.profile is not None:
        return cmd_profile(args)
    if args.runs < 7:
        raise IntsimError(f"--runs must be >= 7 (medians), got {args.runs}")
    if args.suite == "zoo":
        return cmd_zoo(args)
    if args.res is not None or args.form:
        raise IntsimError("--res and --form apply to --suite zoo only")
    args.threads = 2 if args.threads is None else args.threads
    cases = None
    if args.case and args.suite in ("gemm", "conv", "ops"):
        known = {"gemm": bench.GEMM_CASES, "conv": bench.CONV_CASES, "ops": bench_ops.OPS_CASES}[args.suite]
        table = {c[0]: c for c in known}
        unknown = [c for c in args.case if c not in table]
        if unknown:
            raise IntsimError(f"unknown {args.suite} case(s) {', '.join(unknown)} (known: {', '.join(table)})")
        cases = [table[c] for c in args.case]
    show = not getattr(args, "quiet", False) and sys.stderr.isatty()
    suite = bench_ops.run_ops_suite if args.suite == "ops" else lambda **kw: bench.run_suite(args.suite, **kw)
    rows = suite(threads=args.threads, runs=args.runs, cases=cases, progress=bench.progress_line if show else None)
    if args.json is not None:
        _write_json(args, {"suite": args.suite, "threads": args.threads, "rows": rows, "summary": bench.summary(rows)})
    if args.json != "-":
        print(bench.format_table(rows))
        print(bench.format_summary(bench.summary(rows)))
    return 0


def _write_json(args, payload: dict) -> None:
    text = json.dumps(payload, indent=1)
    if args.json == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.json).write_text(text + "\n")


def cmd_zoo(args) -> int:
    """`intsim bench --suite zoo [--case MODEL] [--form F] [--res N] [--threads T] [--batch B]`."""
    from .. import bench, bench_zoo
    if args.res is not None and args.res < 32:
        raise IntsimError(f"--res must be >= 32, got {args.res}")
    try:
        bench_zoo.zoo_cases(args.case, args.form)
    except ValueError as e:
        raise IntsimError(str(e)) from e
    show = not getattr(args, "quiet", False) and sys.stderr.isatty()
    threads = bench_zoo.THREADS if args.threads is None else (args.threads,)
    batches = bench_zoo.BATCHES if args.batch is None else (args.batch,)
    rows = bench_zoo.run_zoo_suite(threads=threads, batches=batches, res=args.res, runs=args.runs, names=args.case,
                                   forms=args.form, progress=bench.progress_line if show else None)
    if args.json is not None:
        _write_json(args, {"suite": "zoo", "threads": list(threads), "batches": list(batches), "res": args.res,
                           "rows": rows, "summary": bench.summary(rows)})
    if args.json != "-":
        print(bench_zoo.format_zoo_table(rows))
        print(bench.format_summary(bench.summary(rows)))
    return 0


def _profile_path(args) -> str:
    """--profile's MODEL: a file, or `<zoo model>.<form>` built at --res (default 224)."""
    from .. import bench_zoo
    if Path(args.profile).is_file():
        return args.profile
    try:
        path = bench_zoo.zoo_model_path(args.profile, args.res)
    except ValueError as e:
        raise IntsimError(f"--profile: {args.profile} is neither a file nor a zoo model ({e})") from e
    return str(path)


def cmd_profile(args) -> int:
    """`intsim bench --profile MODEL [--runs N] [--batch B] [--json F]`: per-node times beside
    onnxruntime's profile (intsim.bench_profile)."""
    from .. import bench_profile
    if args.runs < 1:
        raise IntsimError(f"--runs must be >= 1, got {args.runs}")
    p = bench_profile.profile_model(_profile_path(args), runs=args.runs,
                                    threads=2 if args.threads is None else args.threads,
                                    batch=1 if args.batch is None else args.batch)
    if args.json is not None:
        _write_json(args, p)
        if args.json == "-":
            return 0
    print(bench_profile.format_profile(p))
    return 0


def add_parser(subparsers) -> None:
    """Register `intsim bench`."""
    s = subparsers.add_parser("bench", help="fast kernels vs onnxruntime (GOP/s, ratios)")
    s.add_argument("--suite", default="gemm", choices=["gemm", "conv", "models", "ops", "zoo"])
    s.add_argument("--json", nargs="?", const="-", default=None, help="write JSON (to F, or - for stdout)")
    s.add_argument("--threads", type=int, default=None, help="threads on both sides (default 2; zoo: 1 and 2)")
    s.add_argument("--runs", type=int, default=None, help="timed runs per side (>= 7)")
    s.add_argument("--case", action="append", default=None, help="only this case (repeatable)")
    s.add_argument("--profile", default=None, metavar="MODEL",
                   help="per-node times of MODEL beside onnxruntime's profile (--runs N, default 7; --batch B)")
    s.add_argument("--batch", type=int, default=None,
                   help="batch of --profile's random input (default 1); zoo: only this batch (default 1 and 8)")
    s.add_argument("--res", type=int, default=None, help="zoo: input size (default 224; e.g. 64 for quick runs)")
    s.add_argument("--form", action="append", default=None,
                   help="zoo: only this quantized form (repeatable; qdq_u8, qdq_s8, qop_u8, qop_s8, dynamic, dynamic_opt)")
    s.add_argument("--quiet", action="store_true", help="no progress notes on stderr")
    s.set_defaults(fn=cmd_bench)
