"""intsim: bit-exact integer inference for quantized ONNX models.

    import intsim
    prog = intsim.load("model.onnx", target="ort")
    outs = prog.run({"input": x})
"""
from __future__ import annotations

from .accumulator import Accumulator
from .errors import IntsimError
from .executor import Program

__all__ = ["Accumulator", "IntsimError", "Program", "load", "import_onnx", "__version__"]
__version__ = "0.1.0"


def import_onnx(model):
    """Path, bytes or ModelProto -> intsim IR Graph (loaded, checked, lowered)."""
    from .importer import import_model
    from .loader import load_model
    return import_model(load_model(model))


def load(model, target="ort", accumulator: Accumulator | None = None, snap_pow2: bool = False) -> Program:
    """Load a quantized ONNX model and prepare it for integer execution on `target`.

    snap_pow2: round every scale to the nearest power of two (in log2) first, with a warning
    that lists what moved, to see what a power-of-two accelerator computes for this model.
    """
    graph = import_onnx(model)
    if snap_pow2:
        import warnings

        from .passes.snap_pow2 import snap_pow2 as _snap
        graph, report = _snap(graph)
        if report:
            warnings.warn(f"snapped {len(report)} scale tensor(s) to powers of two: " +
                          "; ".join(f"{n}: {old} -> {new}" for n, old, new in report[:6]) +
                          (" ..." if len(report) > 6 else ""), stacklevel=2)
    return Program(graph, target=target, accumulator=accumulator)


def verify(*args, **kwargs):
    from .verify import verify as _verify
    return _verify(*args, **kwargs)
