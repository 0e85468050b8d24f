"""The one path from a model to a Program (DESIGN §1): load -> import -> passes -> Program.

    graph = import_onnx("model.onnx")          # loaded, checked, imported, through the import passes
    prog = load("model.onnx", target="ort")    # ... and prepared for integer execution

The loader, the importer and the passes know nothing of one another; this module chains them.
"""
from __future__ import annotations

import warnings

from .accumulator import Accumulator
from .importer import import_model
from .importer.tflite_model import import_tflite, is_tflite
from .ir import Graph
from .loader import load_model
from .passes import import_passes
from .passes.qdq_policy import INTEGER
from .passes.snap_pow2 import snap_pow2 as snap_scales
from .runtime import Program
from .targets.registry import get_target


def import_onnx(model, fusion: str = "onnxruntime") -> Graph:
    """Path, bytes or ModelProto (ONNX, or a TFLite flatbuffer) -> intsim IR Graph (loaded, checked,
    imported, lowered); `fusion` the QDQ fusion policy (a target's `qdq_fusion`, passes/qdq_policy.py)."""
    if is_tflite(model):
        return import_passes(import_tflite(model), fusion)
    return import_passes(import_model(load_model(model), stored_inputs=fusion == INTEGER), fusion)


def load(model, target="ort", accumulator: Accumulator | None = None, snap_pow2: bool = False,
         kernels: str = "fast", fusion: str | None = None) -> Program:
    """Load a quantized ONNX model and prepare it for integer execution on `target`.

    snap_pow2: round every scale to the nearest power of two (in log2) first, with a warning
    that lists what moved, to see what a power-of-two accelerator computes for this model.
    kernels: "fast" (the Numba/SIMD engines) or "reference" (every op on its NumPy int64 twin).
    fusion: which QDQ patterns run in integers (passes/qdq_policy.py): "onnxruntime" (what its
    optimizer fuses; float elsewhere, as its session) or "integer" (what the format means on an
    all-integer accelerator); default the target's own (`ort*`: onnxruntime, `pow2*`: integer).
    """
    target = get_target(target)
    graph = import_onnx(model, fusion or target.qdq_fusion)
    if snap_pow2:
        graph, report = snap_scales(graph)
        if report:
            warnings.warn(f"snapped {len(report)} scale tensor(s) to powers of two: " +
                          "; ".join(f"{n}: {old} -> {new}" for n, old, new in report[:6]) +
                          (" ..." if len(report) > 6 else ""), stacklevel=2)
    return Program(graph, target=target, accumulator=accumulator, kernels=kernels)
