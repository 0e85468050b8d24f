"""Digits accuracy of power-of-two models under each rounding of the `pow2` target.

    python -m benchmarks.pow2_rounding

The digits nets are quantized by intsim's own quantizer with per-tensor power-of-two scales
(8-bit and 4-bit weights, MSQE ranges), then run through intsim under pow2-floor, pow2-rhu,
pow2-rne and pow2-rhaz; the table gives test accuracy and the share of logits that differ
from pow2-rne.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

import intsim
from intsim.quantize import quantize
from models import zoo

MODES = ("pow2-floor", "pow2-rhu", "pow2-rne", "pow2-rhaz")


def main():
    x_train, _, x_test, y_test = zoo.digits_split()
    print("| model | weights | " + " | ".join(MODES) + " | logits differing from rne (floor / rhu / rhaz) |")
    print("|---|---|" + "---|" * len(MODES) + "---|")
    with tempfile.TemporaryDirectory() as d:
        for name in ("digits_cnn", "digits_dsconv"):
            for bits in (8, 4):
                out = Path(d) / f"{name}_{bits}.onnx"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    quantize(str(zoo.float_model(name)), x_train[:256], out=str(out), scale="pow2",
                             granularity="tensor", weight_bits=bits, range_method="msqe")
                logits = {m: list(intsim.load(out, target=m).run({"input": x_test}).values())[0] for m in MODES}
                acc = [f"{(logits[m].argmax(1) == y_test).mean():.2%}" for m in MODES]
                diff = [f"{(logits[m] != logits['pow2-rne']).mean():.1%}" for m in ("pow2-floor", "pow2-rhu", "pow2-rhaz")]
                print(f"| {name} | {bits}-bit | " + " | ".join(acc) + f" | {' / '.join(diff)} |")


if __name__ == "__main__":
    main()
