"""What each zoo case (model x form x interpreter kernel path) is expected to do today, when
it is not "equal to the stored interpreter outputs bit for bit":

    Refused(error class, message text)   intsim refuses by name (an op not modelled yet)
    Differs(reason)                      runs, and differs from the interpreter (measured)
    Impossible(reason)                   the .onnx states other arithmetic than the interpreter runs

test_tflite_zoo turns Refused / Differs into strict xfails (keyed off the exact refusal, so
that a case flips to a failure the day the op is modelled) and Impossible into a skip. Each
Differs is a float op that TFLite computes in integers, whose scales and zero points the .onnx
keeps; Impossible is a .onnx whose ONNX meaning differs from what the interpreter computes
(_SHARED_BIAS), so that no ONNX-faithful run can equal it.
"""
from __future__ import annotations

from dataclasses import dataclass

from intsim.errors import UnsupportedOpError
from intsim.targets.rules import TargetRefusal


@dataclass(frozen=True)
class Refused:
    error: type
    text: str


@dataclass(frozen=True)
class Differs:
    reason: str


@dataclass(frozen=True)
class Impossible:
    reason: str


KINDS = ("reference", "builtin", "xnnpack")
TARGET = {"reference": "tflite", "builtin": "tflite-builtin", "xnnpack": "tflite-xnnpack"}


def _reader(op):
    return Refused(UnsupportedOpError, f"TFLite builtin {op} is not supported")


def _rule(kind, op):
    return Refused(TargetRefusal, f"target {TARGET[kind]} has no rule for {op} ")


_16X8 = ("conv_16x8", "pool_fc_16x8", "act_16x8", "binary_16x8", "act2_16x8", "softmax_16x8", "resize_16x8",
         "tconv_bmm_16x8")
_FIRST_16X8 = {"binary_16x8": "RELU", "softmax_16x8": "FULLY_CONNECTED"}     # else CONV_2D
_SHARED_BIAS = ("16x8: the converter shares one int64 bias tensor between two CONV_2D with equal float biases, "
                "quantized at the first conv's x_scale*w_scale; TFLite adds the codes at each conv's own "
                "x_scale*w_scale, tf2onnx's DequantizeLinear at the stored scale: the .onnx states another bias "
                "for the second conv (up to {lsb} LSB)")
# .tflite read directly: refusals of the reader (every kernel path), then of the targets
_TFLITE_READER: dict = {}     # none today: every op of the zoo is read
_TFLITE_RULES = {
    ("reduce_sum", "reference"): _rule("reference", "SUM at node"),     # the interpreter reads int8 codes as uint8
}

# the tf2onnx .onnx copies
_ONNX = {
    ("reduce_sum", "reference"): Differs("TFLite's reference SUM (BUILTIN_REF, ai-edge-litert 2.3) reads the int8 "
                                         "codes as uint8 and clamps to 0..255 (an interpreter defect: -1 for almost "
                                         "every output of this model); its builtin and XNNPACK SUM equal the "
                                         "rounded float sum, as the .onnx's float ReduceSum does"),
    **{("tconv_bmm_16x8", k): Impossible(
        "16x8: the converter shares the TRANSPOSE_CONV's int64 bias tensor with the FULLY_CONNECTED after it (equal "
        "float biases), quantized at the TRANSPOSE_CONV's x_scale*w_scale; TFLite adds the codes at the "
        "FULLY_CONNECTED's own x_scale*w_scale, tf2onnx's DequantizeLinear at the stored scale: the .onnx states "
        "another bias for the FULLY_CONNECTED (up to 667 LSB at the output)") for k in KINDS},
    **{(n, k): Impossible(_SHARED_BIAS.format(lsb=lsb)) for n, lsb in (("binary_16x8", 1011), ("act2_16x8", 25298),
                                                                       ("conv_16x8", 4362))
       for k in KINDS},
}


def expected(name: str, form: str, kind: str):
    """None (equal bit for bit), or Refused / Differs / Impossible for this case."""
    if form == "tflite":
        return _TFLITE_READER.get(name) or _TFLITE_RULES.get((name, kind))
    return _ONNX.get((name, kind))
