"""`intsim run MODEL --input x.npz --output y.npz [--target T] [--acc-bits N ...]`."""
from __future__ import annotations

import numpy as np

from ..pipeline import load
from .common import accumulator, add_common, load_npz


def cmd_run(args) -> int:
    prog = load(args.model, target=args.target, accumulator=accumulator(args),
                snap_pow2=getattr(args, "snap_pow2", False))
    feeds = load_npz(args.input)
    outs = prog.run(feeds)
    np.savez(args.output, **outs)
    for k, v in outs.items():
        print(f"{k}: {v.dtype} {list(v.shape)}")
    return 0


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("run", help="run a model on inputs from an .npz file")
    s.add_argument("model")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    add_common(s)
    s.set_defaults(fn=cmd_run)
