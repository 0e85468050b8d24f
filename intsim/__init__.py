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


def load(model, target="ort", accumulator: Accumulator | None = None) -> Program:
    """Load a quantized ONNX model and prepare it for integer execution on `target`."""
    return Program(import_onnx(model), target=target, accumulator=accumulator)


def verify(*args, **kwargs):
    from .verify import verify as _verify
    return _verify(*args, **kwargs)
