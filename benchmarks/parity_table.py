"""The README's parity table: for each committed model and quantized form, on 64 inputs,
the share of output elements equal to onnxruntime's fully optimized (integer) path and to
its unoptimized (fake-quant float) path, with the largest difference in output LSBs, for
intsim (target `ort`), for onnxruntime's own optimized path, and for intsim's `ort-vnni`
target (exact int32 sums, as onnxruntime computes on VNNI hosts).

    python -m benchmarks.parity_table [--n 64]
"""
from __future__ import annotations

import argparse

import numpy as np

import intsim
from models import zoo
from tests.ortutil import run_ort


def _lsb(a, b, scale):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)) / float(scale)
    return float(np.round(d.max(), 3)) if d.size else 0.0


def _output_scale(path):
    g = intsim.import_onnx(path)
    for n in g.nodes:
        if n.op == "dequantize" and n.outputs[0] in g.outputs:
            return float(np.asarray(g.constants[n.inputs[1]]).reshape(-1)[0])
    return 1.0


def rows(n: int):
    for name in [m for m in zoo.MODELS if m != "resnet18_s"]:
        feeds = zoo.sample_inputs(name, n, seed=7)
        for form in zoo.FORMS:
            path = zoo.quantized_model(name, form)
            scale = _output_scale(path)
            ort_int = list(run_ort(str(path), feeds, optimized=True).values())[0]
            ort_fq = list(run_ort(str(path), feeds, optimized=False).values())[0]
            ours = list(intsim.load(path).run(feeds).values())[0]
            exact = list(intsim.load(path, target="ort-vnni").run(feeds).values())[0]
            yield {"model": name, "form": form,
                   "intsim_vs_ort_int8": float((ours == ort_int).mean()),
                   "intsim_vs_fakequant": float((ours == ort_fq).mean()),
                   "intsim_vs_fakequant_max_lsb": _lsb(ours, ort_fq, scale),
                   "exact_vs_fakequant": float((exact == ort_fq).mean()),
                   "exact_vs_fakequant_max_lsb": _lsb(exact, ort_fq, scale),
                   "ort_int8_vs_fakequant": float((ort_int == ort_fq).mean()),
                   "ort_int8_vs_fakequant_max_lsb": _lsb(ort_int, ort_fq, scale)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64)
    args = p.parse_args()
    print("| model | form | intsim = ORT int8 | intsim = ORT fake-quant | max LSB | ORT int8 = ORT fake-quant "
          "| max LSB | intsim `ort-vnni` = ORT fake-quant | max LSB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows(args.n):
        print(f"| {r['model']} | {r['form']} | {r['intsim_vs_ort_int8']:.2%} | {r['intsim_vs_fakequant']:.2%} | "
              f"{r['intsim_vs_fakequant_max_lsb']:g} | {r['ort_int8_vs_fakequant']:.2%} | {r['ort_int8_vs_fakequant_max_lsb']:g} | "
              f"{r['exact_vs_fakequant']:.2%} | {r['exact_vs_fakequant_max_lsb']:g} |")


if __name__ == "__main__":
    main()
