"""The one error hierarchy of intsim. Every message names the node and/or tensor at fault.

The CLI maps any `IntsimError` to exit code 2 with its message on one line of stderr.
"""


class IntsimError(Exception):
    """Base class: bad input or an unsupported model (CLI exit code 2)."""


class InvalidModelError(IntsimError):
    """The file is not a readable, well-formed ONNX model (truncated, corrupt, cyclic...)."""


class UnsupportedOpError(IntsimError):
    """An op (type, node, opset) that intsim cannot lower or execute."""

    def __init__(self, op_type: str, node: str, opset: int, why: str = ""):
        self.op_type, self.node, self.opset = op_type, node, opset
        msg = f"unsupported op {op_type} (node '{node}', opset {opset})"
        super().__init__(msg + (f": {why}" if why else ""))


class QuantParamError(IntsimError):
    """Invalid quantization parameters: scale <= 0 or non-finite, zero point out of range,
    per-channel length mismatch, bit width out of range."""


class ShapeError(IntsimError):
    """Shapes or dtypes that do not fit the op or the kernel."""


class ResourceLimitError(IntsimError):
    """A tensor, buffer or model above the configured limits."""


class OverflowError_(IntsimError):
    """An accumulator left its range in `exact` mode."""


AccumulatorOverflow = OverflowError_
