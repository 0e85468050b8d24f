"""`intsim overflow MODEL [--input F] [--acc-bits N] [--fusion P] [--json F] [--report F.html] [--sweep 12:32]`.

Without --input only the static bounds are reported. With --input (an .npz of model inputs,
optionally with `labels`), the observed accumulator ranges and the overflow events of the
chosen width (--acc-overflow wrap or saturate; `exact` simulates wrap) are added. --sweep
runs every width of the range in both modes. Exit codes: 0 ok; 1 --fail-on-overflow and a
layer needs more bits than --acc-bits (or overflowed on the data); 2 bad input.
"""
from __future__ import annotations

import json
import sys

from ..errors import IntsimError
from ..overflow import analyze, plot_sweep, split_labels, sweep, sweep_table
from ..overflow.chunked import analyze_chunked
from ..overflow.report import render
from ..pipeline import import_onnx
from ..runtime import distributed
from .common import (MODEL_HELP, accumulator, add_common, add_dataset_options, add_fusion, check_output, fusion_policy,
                     load_inputs, show_progress, write)


def _widths(text: str) -> range:
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise IntsimError(f"--sweep wants LO:HI (e.g. 12:32), got '{text}'") from None
    if not 2 <= lo <= hi <= 63:
        raise IntsimError(f"--sweep {text}: widths must satisfy 2 <= LO <= HI <= 63")
    return range(lo, hi + 1)


def _mode(args) -> str:
    if args.acc_overflow in ("exact", "wrap"):
        return "wrap"
    if args.acc_overflow == "saturate":
        return "saturate"
    raise IntsimError(f"overflow simulates wrap or saturate accumulators, not '{args.acc_overflow}'")


def _feeds(args, graph):
    if args.input is None:
        return None, None
    return split_labels(load_inputs(args.input, graph))


def cmd_overflow(args) -> int:
    for flag in ("json", "report", "plot"):
        check_output(getattr(args, flag), f"--{flag}")
    accumulator(args)           # --acc-bits / --acc-tile in range, before any work
    if args.jobs < 1:
        raise IntsimError(f"--jobs must be >= 1, got {args.jobs}")
    scheduler = distributed.scheduler_for(args.jobs, args.scheduler)
    graph = import_onnx(args.model, fusion_policy(args))
    feeds, labels = _feeds(args, graph)
    if feeds is not None and scheduler:
        with open(args.model, "rb") as f:
            data = f.read()
        rep = analyze_chunked(data, graph, feeds, acc_bits=args.acc_bits, overflow=_mode(args), target=args.target,
                              model=str(args.model), tile=args.acc_tile, jobs=args.jobs, scheduler=scheduler,
                              progress=show_progress(args), fusion=fusion_policy(args))
    else:
        rep = analyze(graph, feeds, acc_bits=args.acc_bits, overflow=_mode(args), target=args.target,
                      model=str(args.model), tile=args.acc_tile)
    if args.sweep:
        if feeds is None:
            raise IntsimError("--sweep needs --input F")
        show = not args.quiet and sys.stderr.isatty()
        rep["sweep"] = sweep(graph, feeds, _widths(args.sweep), target=args.target, labels=labels,
                             model=str(args.model), progress=sweep_progress if show else None)
        if args.plot:
            plot_sweep(rep["sweep"], args.plot)
    if args.json is not None:
        write(json.dumps(rep, indent=1), args.json)
    if args.report:
        with open(args.report, "w") as f:
            f.write(render(rep))
    if args.json != "-":
        print(layer_table(rep))
        if "sweep" in rep:
            print(sweep_table(rep["sweep"]))
    return 1 if args.fail_on_overflow and _failed(rep) else 0


def sweep_progress(row: dict, done: int, total: int) -> None:
    """One line on stderr per width of --sweep."""
    print(f"sweep [{done}/{total}] {row['mode']} {row['bits']} bits: mismatch {row['mismatch']:.6f}",
          file=sys.stderr, flush=True)


def _failed(rep) -> bool:
    return bool(rep["summary"]["layers_over_width"]) or any(l["overflow_events"] for l in rep["layers"])


def layer_table(rep: dict) -> str:
    """Per-layer text table: K, bits per bound, observed range, events, headroom."""
    head = f"{'layer':<44} {'K':>6} {'dtype':>5} {'wts':>4} {'a2q':>4} {'obs':>4} {'events':>9} {'headroom':>8}"
    lines = [f"{rep['model']}: accumulator {rep['acc_bits']} bits ({rep['acc_overflow']}), "
             f"{rep['samples']} samples", head]
    fmt = lambda v: "-" if v is None else str(v)  # noqa: E731
    for l in rep["layers"]:
        b = l["bits"]
        lines.append(f"{l['node'][-44:]:<44} {fmt(l['k']):>6} {fmt(b['datatype']):>5} {fmt(b['weights']):>4} "
                     f"{fmt(b['a2q']):>4} {fmt(b['observed']):>4} {fmt(l['overflow_events']):>9} "
                     f"{fmt(l['headroom_bits']):>8}")
    if rep.get("reason"):
        lines.append(rep["reason"])
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("overflow", help="accumulator bounds, observed ranges, narrow-width cost")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", default=None, help=".npz of model inputs (and optional 'labels'); static bounds only without it")
    s.add_argument("--json", nargs="?", const="-", default=None, help="write the JSON report to F (- for stdout)")
    s.add_argument("--report", default=None, metavar="F.html", help="write a self-contained HTML report")
    s.add_argument("--sweep", default=None, metavar="LO:HI", help="run every width LO..HI in wrap and saturate mode")
    s.add_argument("--plot", default=None, metavar="F.png", help="with --sweep: plot mismatch/accuracy (matplotlib)")
    s.add_argument("--fail-on-overflow", action="store_true", help="exit 1 if a layer needs more than --acc-bits")
    add_dataset_options(s, "with --input: worker processes over sample chunks, a local Dask cluster (needs dask "
                           "distributed)")
    add_fusion(s)
    add_common(s)
    s.set_defaults(fn=cmd_overflow)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: intsim overflow MODEL ...")
