"""The README table: every zoo model (models/tflite), as .tflite and as its tf2onnx .onnx, x
interpreter kernel path, against the stored interpreter outputs under the intsim target that
models the path (TARGETS): equal %, max |diff| in LSB, or the refusal.

    PYTHONPATH=. python -m tests.tflite.table
"""
from __future__ import annotations

import warnings

import numpy as np

import intsim
from intsim.errors import IntsimError
from models.build_tflite import HERE, NAMES, PATHS

# interpreter kernel path -> intsim target
TARGETS = {"reference": "tflite", "builtin": "tflite-builtin", "xnnpack": "tflite-xnnpack"}
FORMS = ("tflite", "onnx")


def run_samples(prog, x: np.ndarray) -> dict:
    """{output: (S, *shape)} of prog on each sample of x (S, *input_shape) (batch-1 models)."""
    g = prog.graph
    outs = [prog.run({g.inputs[0]: s}) for s in x]
    return {o: np.stack([r[o] for r in outs]) for o in g.outputs}


def stored_outputs(name, kind) -> list:
    """The interpreter's outputs on path `kind`, in the model's output order (one output here)."""
    stored = np.load(HERE / f"{name}.npz")
    return [stored[k] for k in stored if k.startswith(f"{kind}/")]


def outputs(name, form, target, x) -> list:
    """intsim's outputs of zoo model `name` (form "tflite" or "onnx") under `target` on x."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = run_samples(intsim.load(HERE / f"{name}.{form}", target=target), x)
    return list(got.values())


def cell(name, kind, form="tflite"):
    """(equal %, max LSB) of the model under TARGETS[kind] against the stored `kind` outputs,
    or the refusal's message."""
    x = np.load(HERE / f"{name}.npz")["input"]
    try:
        got = outputs(name, form, TARGETS[kind], x)
    except IntsimError as e:
        return str(e)
    eq, n, mx = 0, 0, 0.0
    for v, ref in zip(got, stored_outputs(name, kind)):
        if v.shape != ref.shape:
            return f"output shape {list(v.shape[1:])}, the interpreter's {list(ref.shape[1:])}"
        d = np.abs(v.astype(np.float64) - ref.astype(np.float64))
        eq, n, mx = eq + int((d == 0).sum()), n + d.size, max(mx, float(d.max()))
    return 100.0 * eq / n, mx


def short(refusal: str) -> str:
    if "is int16: 16x8" in refusal:       # the reader: "... is int16: 16x8 CONV_2D (TFLite's ...) is not modelled"
        return "refused: 16x8 " + refusal.split("is int16: 16x8 ")[1].split(" ")[0]
    if "leaves int32" in refusal:
        return "refused: accumulator leaves int32"
    if "maxpool: input/out dtype" in refusal:
        return "refused: int16 MaxPool"
    if "has no rule for" in refusal:      # "target T has no rule for OP at node ..."
        return "refused: " + refusal.split("has no rule for ")[1].split(" at node")[0]
    if "unsupported op" in refusal:
        return "refused: " + refusal.split("unsupported op ")[1].split(" ")[0]
    return "refused: " + refusal[:60]


def markdown() -> str:
    lines = ["| model | form | " + " | ".join(f"{k} ({PATHS[k]}) vs `{TARGETS[k]}`" for k in PATHS) + " |",
             "|---|---|" + "---|" * len(PATHS)]
    for name in NAMES:
        for form in FORMS:
            cells = [cell(name, k, form) for k in PATHS]
            lines.append(f"| {name} | .{form} | " + " | ".join(
                short(c) if isinstance(c, str) else f"{c[0]:.2f}% / {c[1]:g}" for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
