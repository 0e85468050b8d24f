"""The README table: every zoo model (models/tflite) x interpreter kernel path, against the
stored interpreter outputs under the intsim target that models the path (TARGETS): equal %,
max |diff| in LSB, or the refusal.

    PYTHONPATH=. python -m tests.tflite.table
"""
from __future__ import annotations

import numpy as np

import intsim
from intsim.errors import IntsimError
from models.build_tflite import HERE, NAMES, PATHS

from .test_tflite_zoo import run_samples

# interpreter kernel path -> intsim target
TARGETS = {"reference": "tflite", "builtin": "tflite-builtin", "xnnpack": "tflite-xnnpack"}


def cell(name, kind):
    """(equal %, max LSB) of the model under TARGETS[kind] against the stored `kind` outputs,
    or the refusal's message."""
    stored = np.load(HERE / f"{name}.npz")
    try:
        got = run_samples(intsim.load(HERE / f"{name}.tflite", target=TARGETS[kind]), stored["input"])
    except IntsimError as e:
        return str(e)
    eq, n, mx = 0, 0, 0.0
    for out, v in got.items():
        d = np.abs(v.astype(np.float64) - stored[f"{kind}/{out}"].astype(np.float64))
        eq, n, mx = eq + int((d == 0).sum()), n + d.size, max(mx, float(d.max()))
    return 100.0 * eq / n, mx


def _short(refusal: str) -> str:
    if "has no rule for" in refusal:      # "target T has no rule for OP at node ..."
        return "refused: " + refusal.split("has no rule for ")[1].split(" at node")[0]
    if "unsupported op" in refusal:
        return "refused: " + refusal.split("unsupported op ")[1].split(" ")[0]
    return "refused"


def markdown() -> str:
    lines = ["| model | " + " | ".join(f"{k} ({PATHS[k]}) vs `{TARGETS[k]}`" for k in PATHS) + " |",
             "|---|" + "---|" * len(PATHS)]
    for name in NAMES:
        cells = [cell(name, k) for k in PATHS]
        lines.append(f"| {name} | " + " | ".join(_short(c) if isinstance(c, str) else f"{c[0]:.2f}% / {c[1]:g}"
                                                  for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
