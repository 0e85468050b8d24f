"""`intsim run MODEL --input x.npz --output y.npz [--target T] [--fusion P] [--acc-bits N ...]`."""
from __future__ import annotations

import numpy as np

from ..pipeline import load
from .common import MODEL_HELP, accumulator, add_common, add_fusion, check_output, load_npz


def cmd_run(args) -> int:
    check_output(args.output, "--output")
    prog = load(args.model, target=args.target, accumulator=accumulator(args),
                snap_pow2=getattr(args, "snap_pow2", False), fusion=args.fusion)
    feeds = load_npz(args.input)
    outs = prog.run(feeds)
    np.savez(args.output, **outs)
    for k, v in outs.items():
        print(f"{k}: {v.dtype} {list(v.shape)}")
    return 0


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("run", help="run a model on inputs from an .npz file")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", required=True, metavar="F.npz",
                   help=".npz of the model's inputs (input name -> array with a leading batch axis)")
    s.add_argument("--output", required=True, metavar="F.npz",
                   help=".npz to write the model's outputs to (output name -> array)")
    add_fusion(s)
    add_common(s)
    s.set_defaults(fn=cmd_run)
