"""intsim: bit-exact integer inference for quantized ONNX models.

    import intsim
    prog = intsim.load("model.onnx", target="ort")
    outs = prog.run({"input": x})
    rep = intsim.verify("model.onnx", random=8)

Packages: importer (ONNX -> IR), passes (IR -> IR), steps (executable IR ops), targets
(requantization rules), runtime (Program: compile and run), pipeline (load -> import ->
passes -> Program), verify, overflow, quantize, cli.
"""
from __future__ import annotations

from .accumulator import Accumulator
from .errors import IntsimError
from .pipeline import import_onnx, load
from .runtime import Program
from .verify import verify  # the function; its package stays importable as intsim.verify.<module>

__all__ = ["Accumulator", "IntsimError", "Program", "load", "import_onnx", "verify", "__version__"]
__version__ = "0.1.0"
