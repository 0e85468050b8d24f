"""`intsim quantize FLOAT.onnx --calib data.npz --out Q.onnx [options]`.

Exit codes: 0 written; 2 bad input (one line on stderr)."""
from __future__ import annotations

import argparse
import sys

from ..errors import IntsimError
from .common import check_output


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("quantize", help="post-training quantization of a float ONNX model",
                              description="Quantize a float ONNX model to QDQ (or QONNX) with hardware constraints.")
    p.add_argument("model", help="float ONNX model")
    p.add_argument("--calib", required=True, help=".npz of calibration inputs (input name -> array)")
    p.add_argument("--out", required=True, help="quantized ONNX model to write")
    p.add_argument("--format", dest="fmt", choices=("qdq", "qonnx"), default="qdq")
    p.add_argument("--weight-bits", type=int, default=8, help="2..8 (default 8)")
    p.add_argument("--act-bits", type=int, choices=(8, 16), default=8)
    p.add_argument("--scale", choices=("pow2", "affine"), default="affine")
    p.add_argument("--granularity", choices=("tensor", "channel"), default="channel")
    p.add_argument("--symmetric", action="store_true", help="activations with zero point 0 (weights always are)")
    p.add_argument("--range", dest="range_method", default="minmax",
                   help="minmax | msqe | percentile:P | mse-output")
    p.add_argument("--cle", action="store_true", help="cross-layer equalization")
    p.add_argument("--bias-correction", action="store_true", help="empirical bias correction")
    p.add_argument("--adaround", action="store_true", help="AdaRound weight rounding")
    p.add_argument("--learn-scales", action="store_true", help="LSQ learned weight scales")
    p.add_argument("--no-bn-fold", dest="fold_bn", action="store_false", help="keep BatchNormalization")
    p.add_argument("--report", help="write an HTML report of the weight ranges per layer")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=run_quantize)
    return p


def run_quantize(args) -> int:
    from ..quantize.pipeline import Options, quantize   # deferred: other commands (intsim run) never need it
    try:
        check_output(args.out, "--out")
        check_output(args.report, "--report")
    except IntsimError as e:
        print(f"intsim quantize: {e}", file=sys.stderr)
        return 2
    opts = Options(fmt=args.fmt, weight_bits=args.weight_bits, act_bits=args.act_bits, scale=args.scale,
                   granularity=args.granularity, symmetric=args.symmetric, range_method=args.range_method,
                   fold_bn=args.fold_bn, cle=args.cle, bias_correction=args.bias_correction,
                   adaround=args.adaround, learn_scales=args.learn_scales, verbose=not args.quiet)
    try:
        res = quantize(args.model, args.calib, out=args.out, options=opts, report=args.report)
    except IntsimError as e:
        print(f"intsim quantize: {e}", file=sys.stderr)
        return 2
    for n in res.notes:
        print(n, file=sys.stderr)
    return 0

