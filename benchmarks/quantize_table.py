"""The README's quantization table: digits networks under hardware constraints.

    python benchmarks/quantize_table.py [--out-md F.md] [--svg F.svg]

For digits_cnn and digits_dsconv (models.zoo, trained on scikit-learn digits), quantizes with
intsim.quantize (512 calibration images from the training split, 8-bit activations) and
reports test accuracy (450 images) through intsim's integer execution (`ort` target), the
onnxruntime accuracy of the same file, and whether their logits are bit-identical. Writes a
Markdown table and an SVG of one layer's learned-scale (LSQ) trajectory.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import intsim  # noqa: E402
from intsim.quantize import quantize  # noqa: E402
from intsim.quantize.report import svg_lines  # noqa: E402
from models import zoo  # noqa: E402

W4 = dict(weight_bits=4, scale="pow2", granularity="tensor")
ROWS = [
    ("per-channel affine, W8 A8, min-max", dict()),
    ("per-tensor pow2, W8 A8, min-max", dict(scale="pow2", granularity="tensor")),
    ("per-tensor pow2, W8 A8, MSQE", dict(scale="pow2", granularity="tensor", range_method="msqe")),
    ("per-tensor pow2, W4 A8, min-max", dict(W4)),
    ("per-tensor pow2, W4 A8, MSQE", dict(W4, range_method="msqe")),
    ("per-tensor pow2, W4 A8, learned scales (LSQ)", dict(W4, learn_scales=True)),
    ("per-tensor pow2, W4 A8, MSQE + CLE", dict(W4, range_method="msqe", cle=True)),
    ("per-tensor pow2, W4 A8, MSQE + CLE + AdaRound", dict(W4, range_method="msqe", cle=True, adaround=True)),
    ("per-channel pow2, W4 A8, MSQE", dict(W4, granularity="channel", range_method="msqe")),
    ("per-channel pow2, W4 A8, MSQE + AdaRound", dict(W4, granularity="channel", range_method="msqe", adaround=True)),
]


def ort_logits(path, x) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {zoo.INPUT_NAME: x})[0]


def evaluate(name: str, tmp: Path) -> tuple:
    x_tr, _, x_te, y_te = zoo.digits_split()
    calib = zoo.calibration_data(name, 512)
    fpath = zoo.float_model(name)
    rows = [("float32", float(np.mean(ort_logits(fpath, x_te).argmax(1) == y_te)), None, None, None)]
    traj = None
    for label, cfg in ROWS:
        t0 = time.time()
        out = tmp / f"{name}.onnx"
        res = quantize(fpath, calib, out=out, **cfg)
        secs = time.time() - t0
        got = intsim.load(str(out), target="ort").run({zoo.INPUT_NAME: x_te})[zoo.OUTPUT_NAME]
        want = ort_logits(out, x_te)
        rows.append((label, float(np.mean(got.argmax(1) == y_te)), float(np.mean(want.argmax(1) == y_te)),
                     bool(np.array_equal(got, want)), secs))
        if cfg.get("learn_scales") and traj is None:
            traj = next(r for r in res.layers if r.trajectory is not None and r.kind == "conv")
        print(f"{name:14s} {label:48s} {rows[-1][1]:.4f} {rows[-1][2]:.4f} {rows[-1][3]} {secs:.1f}s", flush=True)
    return rows, traj


def markdown(results: dict) -> str:
    names = list(results)
    head = "| configuration | " + " | ".join(f"{n} (intsim)" for n in names) + " | bit-identical to ORT |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    for i, (label, *_rest) in enumerate(results[names[0]]):
        accs = [f"{results[n][i][1] * 100:.1f}%" for n in names]
        same = [results[n][i][3] for n in names]
        tag = "float" if same[0] is None else ("yes" if all(same) else "NO")
        lines.append(f"| {label} | " + " | ".join(accs) + f" | {tag} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-md", default="benchmarks/quantize_table.md")
    ap.add_argument("--svg", default="benchmarks/quantize_lsq_trajectory.svg")
    args = ap.parse_args(argv)
    results, trajs = {}, {}
    with tempfile.TemporaryDirectory() as d:
        for name in zoo.DIGITS:
            results[name], trajs[name] = evaluate(name, Path(d))
    md = markdown(results)
    Path(args.out_md).write_text(md)
    rep = trajs["digits_dsconv"] or trajs["digits_cnn"]
    t = rep.trajectory["log2_scale"][:, 0]
    Path(args.svg).write_text(svg_lines({"log2 scale (continuous)": t, "round(log2 scale)": np.rint(t)},
                                        width=600, height=200,
                                        ylabel=f"LSQ on {rep.name}: log2(scale) over {len(t) - 1} steps"))
    print(md)
    return 0 if all(r[3] is not False for rows in results.values() for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
