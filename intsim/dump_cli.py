"""`intsim dump MODEL --input x.npz --out DIR [--target T]`: golden vectors per layer."""
from __future__ import annotations


def cmd_dump(args) -> int:
    from . import import_onnx
    from .cli import _accumulator
    from .dump import check_out_dir, dump
    from .verify_cli import load_inputs
    check_out_dir(args.out)
    feeds = load_inputs(args.input, import_onnx(args.model))
    m = dump(args.model, feeds, args.out, target=args.target, accumulator=_accumulator(args))
    print(f"{len(m['layers'])} layers, {m['samples']} samples -> {args.out}/manifest.json")
    return 0


def add_parser(subparsers) -> None:
    from .cli import MODEL_HELP, _common
    s = subparsers.add_parser("dump", help="golden vectors per layer (.npz, $readmemh hex, C header, manifest)")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", required=True, help=".npz (name -> samples), .npy, or a folder of them")
    s.add_argument("--out", required=True, help="output folder")
    _common(s)
    s.set_defaults(fn=cmd_dump)
