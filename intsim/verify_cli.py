"""`intsim verify MODEL [--input F | --random N] [--reference R] [--json F] [--report F.html]`.

Exit codes: 0 the comparison ran (and passed, or --fail-on-mismatch was not given); 1 a
mismatch with --fail-on-mismatch; 2 bad input or an unsupported model.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .errors import IntsimError
from .verify_refs import REFERENCES


def load_inputs(path: str, graph) -> dict:
    """Samples from an .npz (name -> array, leading sample axis), an .npy (single-input models)
    or a folder of such files (concatenated along the sample axis, in file-name order).
    An array with one axis fewer than the model input is one sample."""
    from .cli import _load_npz
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith((".npz", ".npy")))
        if not files:
            raise IntsimError(f"folder '{path}' holds no .npy or .npz files")
        parts = [load_inputs(os.path.join(path, f), graph) for f in files]
        for f, p in zip(files[1:], parts[1:]):
            if set(p) != set(parts[0]):
                raise IntsimError(f"folder '{path}': '{f}' holds inputs {sorted(p)}, '{files[0]}' holds "
                                  f"{sorted(parts[0])}")
            for k, v in p.items():
                if v.shape[1:] != parts[0][k].shape[1:] or v.ndim != parts[0][k].ndim:
                    raise IntsimError(f"folder '{path}': input '{k}' has sample shape {v.shape[1:]} in '{f}' "
                                      f"but {parts[0][k].shape[1:]} in '{files[0]}'")
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if not os.path.isfile(path):
        raise IntsimError(f"input file '{path}' does not exist")
    if path.endswith(".npy"):
        if len(graph.inputs) != 1:
            raise IntsimError(f"'{path}': an .npy file can only feed a single-input model "
                              f"(inputs: {', '.join(graph.inputs)})")
        try:
            feeds = {graph.inputs[0]: np.load(path, allow_pickle=False)}
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"cannot read input file '{path}': {e}") from None
    else:
        feeds = _load_npz(path)
    feeds = {k: _batched(v, graph.tensors.get(k)) for k, v in feeds.items()}
    if feeds and all(v.ndim and v.shape[0] == 0 for v in feeds.values()):
        raise IntsimError(f"'{path}' holds 0 samples: " + ", ".join(f"input '{k}' has shape {v.shape}"
                                                                    for k, v in feeds.items()))
    return feeds


def _batched(x: np.ndarray, t) -> np.ndarray:
    rank = len(t.shape) if t is not None and t.shape is not None else None
    return x[None] if rank is not None and x.ndim == rank - 1 else x


def cmd_verify(args) -> int:
    from . import import_onnx
    from .cli import _accumulator
    from .cli import check_output
    from .verify import verify
    check_output(args.json, "--json")
    check_output(args.report, "--report")
    if args.jobs < 1:
        raise IntsimError(f"--jobs must be >= 1, got {args.jobs}")
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
    progress = not (args.no_progress or args.quiet) and sys.stderr.isatty() or args.progress
    rep = verify(args.model, feeds, reference=args.reference, target=args.target,
                 accumulator=_accumulator(args), random=args.random, seed=args.seed, jobs=args.jobs,
                 progress=progress, max_lsb=args.max_lsb, min_exact=args.min_exact)
    d = rep.as_dict()
    if args.json is not None:
        from .cli import _write
        _write(rep.to_json(), args.json)
    if args.report:
        from .verify_report import render
        with open(args.report, "w") as f:
            f.write(render(d))
    if args.json != "-":
        _summary(d)
    return 1 if args.fail_on_mismatch and not rep.passed else 0


def _summary(d: dict) -> None:
    print(f"{'PASSED' if d['passed'] else 'FAILED'}: {d['model']} vs {d['reference']} (target {d['target']}), "
          f"{d['samples']} samples")
    for k, v in d["outputs"].items():
        print(f"  output {k}: exact {v['exact_fraction']:.6f}, max |d| {v['max_abs_lsb']} LSB")
    iso = [t["isolated"] for t in d["tensors"] if t["isolated"]]
    if iso:
        print(f"  layer isolated: worst exact {min(t['exact_fraction'] for t in iso):.6f}, "
              f"max |d| {max(t['max_abs_lsb'] for t in iso)} LSB")
    fd = d["first_divergence"]
    print(f"  first divergence: {fd['node']} ({fd['tensor']})" if fd else "  first divergence: none")
    for view, e in d["explanations"].items():
        if e["mismatches"]:
            shares = ", ".join(f"{c} {100 * v['share']:.1f}%" for c, v in e["classes"].items() if v["count"])
            print(f"  {view}: {e['mismatches']} mismatches: {shares}")


def add_parser(subparsers) -> None:
    from .cli import MODEL_HELP, _common
    s = subparsers.add_parser("verify", help="compare intsim with a reference, per tensor, and explain mismatches")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", default=None, help=".npz (name -> samples), .npy, or a folder of them")
    s.add_argument("--random", type=int, default=None, metavar="N", help="N random samples in each input's calibrated range")
    s.add_argument("--seed", type=int, default=0, help="seed of --random")
    s.add_argument("--reference", default="ort-fakequant", choices=REFERENCES)
    s.add_argument("--json", nargs="?", const="-", default=None, help="write the JSON report to F (- for stdout)")
    s.add_argument("--report", default=None, metavar="F.html", help="write a self-contained HTML report")
    s.add_argument("--fail-on-mismatch", action="store_true", help="exit 1 unless the comparison passed")
    s.add_argument("--max-lsb", type=int, default=0, help="pass criterion: max |d| per tensor (default 0)")
    s.add_argument("--min-exact", type=float, default=1.0, help="pass criterion: exact fraction per tensor")
    s.add_argument("--jobs", type=int, default=1, help="processes over sample chunks")
    s.add_argument("--progress", action="store_true", help="progress bar on stderr even when it is not a terminal")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(s)
    s.set_defaults(fn=cmd_verify)
