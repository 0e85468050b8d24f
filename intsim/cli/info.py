"""`intsim info MODEL [--fusion P] [--json [F]]`: layers, quant params, MACs, float islands."""
from __future__ import annotations

from ..info import describe
from ..pipeline import import_onnx
from .common import MODEL_HELP, add_fusion, check_output, fusion_policy, write


def cmd_info(args) -> int:
    check_output(args.json, "--json")
    g = import_onnx(args.model, fusion_policy(args))
    text = describe(g, as_json=args.json is not None)
    write(text, args.json)
    return 0


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("info", help="layers, quant params, MACs, float islands")
    s.add_argument("model", help=MODEL_HELP)
    s.add_argument("--json", nargs="?", const="-", default=None, help="write JSON (to F, or - for stdout)")
    add_fusion(s, default="onnxruntime")
    s.set_defaults(fn=cmd_info)
