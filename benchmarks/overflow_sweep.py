"""The cost of narrow accumulators on the committed models (issue 5, README figures).

    python -m benchmarks.overflow_sweep [--out DIR] [--samples N] [--form F]

For the digits CNN (its 450 test images, with labels) and the MobileNetV2-style model (N
random normal images): static bits per layer, then wrap and saturate at 12..32 bits, output
mismatch against the 32-bit result, accuracy for digits. Writes DIR/overflow_<model>.json and
.png (matplotlib), prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import intsim
from intsim.overflow import analyze, plot_sweep, sweep, sweep_table
from intsim.cli.overflow import layer_table
from models.zoo import digits_split, quantized_model, sample_inputs


def _data(name: str, samples: int):
    if name == "digits_cnn":
        _, _, x, y = digits_split()
        return {"input": x}, y
    return sample_inputs(name, samples), None


def run(name: str, form: str, samples: int, out: str) -> dict:
    path = quantized_model(name, form)
    graph = intsim.import_onnx(path)
    feeds, labels = _data(name, samples)
    t0 = time.perf_counter()
    rep = analyze(graph, feeds, acc_bits=16, model=f"{name}.{form}")
    rep["sweep"] = sweep(graph, feeds, range(12, 33), labels=labels, model=f"{name}.{form}")
    rep["seconds"] = round(time.perf_counter() - t0, 1)
    print(layer_table(rep))
    print(sweep_table(rep["sweep"]))
    print(f"({rep['seconds']} s)\n")
    with open(os.path.join(out, f"overflow_{name}.json"), "w") as f:
        json.dump(rep, f, indent=1)
    try:
        plot_sweep(rep["sweep"], os.path.join(out, f"overflow_{name}.png"))
    except ImportError:
        print("matplotlib is not installed: no plot")
    return rep


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--samples", type=int, default=32, help="random images for the MobileNetV2-style model")
    ap.add_argument("--form", default="qdq_u8_pc")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name in ("digits_cnn", "mobilenetv2_s"):
        run(name, args.form, args.samples, args.out)


if __name__ == "__main__":
    main()
