"""`intsim dump MODEL --input x.npz --out DIR [--target T] [--fusion P]`: golden vectors per layer."""
from __future__ import annotations

from ..dump import check_out_dir, dump
from ..pipeline import import_onnx
from .common import MODEL_HELP, accumulator, add_common, add_fusion, load_inputs


def cmd_dump(args) -> int:
    check_out_dir(args.out)
    feeds = load_inputs(args.input, import_onnx(args.model))
    m = dump(args.model, feeds, args.out, target=args.target, accumulator=accumulator(args), fusion=args.fusion)
    print(f"{len(m['layers'])} layers, {m['samples']} samples -> {args.out}/manifest.json")
    return 0


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("dump", help="golden vectors per layer (.npz, $readmemh hex, C header, manifest)")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--input", required=True, help=".npz (name -> samples), .npy, or a folder of them")
    s.add_argument("--out", required=True, help="output folder")
    add_fusion(s)
    add_common(s)
    s.set_defaults(fn=cmd_dump)
