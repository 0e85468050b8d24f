"""`intsim verify MODEL [--input F | --random N] [--reference R] [--fusion P] [--json F] [--report F.html]`.

A .tflite model is compared with the TFLite interpreter (`--reference tflite`, its default) on
the kernel path `--kernel-path reference|builtin|xnnpack`; its default target models that path
(tflite, tflite-builtin, tflite-xnnpack). An ONNX model's defaults: ort-fakequant, target ort.

Exit codes: 0 the comparison ran (and passed, or --fail-on-mismatch was not given); 1 a
mismatch with --fail-on-mismatch; 2 bad input or an unsupported model.
"""
from __future__ import annotations

import numpy as np

from ..errors import IntsimError
from ..pipeline import import_onnx
from ..runtime import distributed
from ..verify import REFERENCES, verify
from ..verify.report import render
from ..verify.tflite_ref import KERNEL_PATHS
from .common import (MODEL_HELP, accumulator, add_common, add_dataset_options, add_fusion, check_output, load_inputs,
                     show_progress, write)


def cmd_verify(args) -> int:
    check_output(args.json, "--json")
    check_output(args.report, "--report")
    if args.jobs < 1:
        raise IntsimError(f"--jobs must be >= 1, got {args.jobs}")
    scheduler = distributed.scheduler_for(args.jobs, args.scheduler)
    if not np.isfinite(args.min_exact):
        raise IntsimError(f"--min-exact must be a finite fraction, got {args.min_exact}")
    if args.max_lsb < 0:
        raise IntsimError(f"--max-lsb must be >= 0, got {args.max_lsb}")
    if args.random is not None and args.random < 1:
        raise IntsimError(f"--random needs N >= 1, got {args.random}")
    feeds = None
    if args.input is not None and args.random is not None:
        raise IntsimError("give either --input or --random, not both")
    if args.input is not None:
        feeds = load_inputs(args.input, import_onnx(args.model))
    elif args.random is None:
        raise IntsimError("verify needs --input F (an .npz, .npy or a folder) or --random N")
    progress = show_progress(args)
    rep = verify(args.model, feeds, reference=args.reference, target=args.target,
                 accumulator=accumulator(args), random=args.random, seed=args.seed, jobs=args.jobs,
                 progress=progress, max_lsb=args.max_lsb, min_exact=args.min_exact,
                 scheduler=scheduler, kernel_path=args.kernel_path, fusion=args.fusion)
    d = rep.as_dict()
    if args.json is not None:
        write(rep.to_json(), args.json)
    if args.report:
        with open(args.report, "w") as f:
            f.write(render(d))
    if args.json != "-":
        _summary(d)
    return 1 if args.fail_on_mismatch and not rep.passed else 0


def _summary(d: dict) -> None:
    fusion = f", fusion {d['fusion']}" if d.get("fusion") else ""
    print(f"{'PASSED' if d['passed'] else 'FAILED'}: {d['model']} vs {d['reference']} (target {d['target']}{fusion}), "
          f"{d['samples']} samples")
    for k, v in d["outputs"].items():
        print(f"  output {k}: exact {v['exact_fraction']:.6f}, max |d| {v['max_abs_lsb']} LSB")
    iso = [t["isolated"] for t in d["tensors"] if t["isolated"]]
    if iso:
        print(f"  layer isolated: worst exact {min(t['exact_fraction'] for t in iso):.6f}, "
              f"max |d| {max(t['max_abs_lsb'] for t in iso)} LSB")
    rc = d.get("reference_consistency") or {}
    if not rc.get("consistent", True):
        worst = ", ".join(f"{k}: exact {v['exact_fraction']:.6f}, max |d| {v['max_abs_lsb']} LSB"
                          for k, v in rc["outputs"].items())
        print(f"  reference inconsistent: with intermediate outputs exposed, {d['reference']} computes other "
              f"final outputs than the plain session ({worst}); outputs judged against the plain session, "
              "intermediate tensors only localize")
    fd = d["first_divergence"]
    if not d["tensors"]:
        print("  first divergence: nothing compared (no intermediate tensor of intsim is computed by the reference)")
    else:
        print(f"  first divergence: {fd['node']} ({fd['tensor']})" if fd else "  first divergence: none")
    for view, e in d["explanations"].items():
        if e["mismatches"]:
            shares = ", ".join(f"{c} {100 * v['share']:.1f}%" for c, v in e["classes"].items() if v["count"])
            print(f"  {view}: {e['mismatches']} mismatches: {shares}")


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("verify", help="compare intsim with a reference, per tensor, and explain mismatches")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", default=None, help=".npz (name -> samples), .npy, or a folder of them")
    s.add_argument("--random", type=int, default=None, metavar="N", help="N random samples in each input's calibrated range")
    s.add_argument("--seed", type=int, default=0, help="seed of --random")
    s.add_argument("--reference", default=None, choices=REFERENCES,
                   help="default: tflite for a .tflite model, ort-fakequant for ONNX")
    s.add_argument("--kernel-path", default="reference", choices=tuple(KERNEL_PATHS),
                   help="TFLite interpreter kernel path of --reference tflite (default: reference)")
    s.add_argument("--json", nargs="?", const="-", default=None, help="write the JSON report to F (- for stdout)")
    s.add_argument("--report", default=None, metavar="F.html", help="write a self-contained HTML report")
    s.add_argument("--fail-on-mismatch", action="store_true", help="exit 1 unless the comparison passed")
    s.add_argument("--max-lsb", type=int, default=0, help="pass criterion: max |d| per tensor (default 0)")
    s.add_argument("--min-exact", type=float, default=1.0, help="pass criterion: exact fraction per tensor")
    add_dataset_options(s, "worker processes over sample chunks (a local Dask cluster when dask is installed)")
    add_fusion(s)
    add_common(s)
    s.set_defaults(fn=cmd_verify, target=None)   # None: the model's default (verify's docstring)
