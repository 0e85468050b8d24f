"""The README table: every zoo model (models/tflite) x interpreter kernel path, intsim target
`tflite` against the stored interpreter outputs: equal %, max |diff| in LSB.

    PYTHONPATH=. python -m tests.tflite.table
"""
from __future__ import annotations

import numpy as np

import intsim
from models.build_tflite import HERE, NAMES, PATHS, REFUSED

from .test_tflite_zoo import run_samples


def rows(target="tflite"):
    for name in NAMES:
        if name in REFUSED:
            yield name, {k: None for k in PATHS}
            continue
        stored = np.load(HERE / f"{name}.npz")
        got = run_samples(intsim.load(HERE / f"{name}.tflite", target=target), stored["input"])
        cells = {}
        for kind in PATHS:
            eq, n, mx = 0, 0, 0.0
            for out, v in got.items():
                d = np.abs(v.astype(np.float64) - stored[f"{kind}/{out}"].astype(np.float64))
                eq, n, mx = eq + int((d == 0).sum()), n + d.size, max(mx, float(d.max()))
            cells[kind] = (100.0 * eq / n, mx)
        yield name, cells


def markdown(target="tflite") -> str:
    lines = [f"| model | " + " | ".join(f"{k} ({PATHS[k]})" for k in PATHS) + " |",
             "|---|" + "---|" * len(PATHS)]
    for name, cells in rows(target):
        lines.append(f"| {name} | " + " | ".join(
            f"refused: {REFUSED[name]}" if c is None else f"{c[0]:.2f}% / {c[1]:g}" for c in cells.values()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
