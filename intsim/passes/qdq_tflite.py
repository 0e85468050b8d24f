"""Policy "tflite" (passes/qdq_policy.py): tf2onnx's QDQ patterns lowered to the IR nodes the
.tflite reader (importer/tflite_model.py) emits for the TFLite builtin op each pattern was
converted from, so that the target applies the same rule to both forms:

    DQ -> Tanh / HardSwish / Sigmoid /      lut kind tanh / hard_swish /      (TANH, HARD_SWISH,
          LeakyRelu -> Q                    sigmoid / leaky_relu              LOGISTIC, LEAKY_RELU)
    DQ -> Softmax over the last axis -> Q   softmax, beta 1                   (SOFTMAX)
    DQ -> Relu / Clip -> Q                  lut kind relu, fused_activation   (RELU, RELU6, RELU_N1_TO_1)
    DQ -> Add / Sub / Mul -> Q              add (attr subtract for Sub) / mul (ADD, SUB, MUL)
    DQ -> ConvTranspose -> Q                transpose_conv on NHWC            (TRANSPOSE_CONV)
    DQ -> Resize linear -> Q                resize_bilinear on NHWC           (RESIZE_BILINEAR)
    DQ -> ReduceMean over H, W -> Q         global_avgpool                    (MEAN)
    DQ -> Q, one 8/16-bit type, new scale   lut kind requantize               (QUANTIZE of integer input)
    DQ -> GlobalAveragePool -> Q            global_avgpool, keep_dims 0 where (MEAN)
                                            a Squeeze / rank-2 Reshape follows

The forms are tf2onnx 1.17's (tflite_handlers turn each TFLite op into its TensorFlow twin,
onnx_opset/nn.py and math.py convert those: TRANSPOSE_CONV to ConvTranspose with explicit pads,
RESIZE_BILINEAR to Resize linear with coordinate_transformation_mode asymmetric / align_corners /
half_pixel, MEAN to ReduceMean or GlobalAveragePool). Each ONNX op places the codes as the
TFLite op does: ConvTranspose adds x[i] * w[k] at output o = i*s + k - pad_begin and crops to
the output size (TFLite's TRANSPOSE_CONV with pads (top, left) = pad_begin); Resize linear reads
the same source coordinates as RESIZE_BILINEAR for those three modes. What each op then computes
in integers is the target's rule for the reader's node.

A Relu / Clip between the op and its Q is the op's fused activation, kept as its float bounds
(targets.activation.ACTIVATION_BOUNDS) for the target to resolve, as the reader keeps it.
NCHW tensors (tf2onnx's layout) are moved to NHWC around the NHWC-only nodes by `onnx`
Transposes. Each function takes the pattern's quantized operands (`QIn`, the Q's as `out`)
and returns a `Rewrite`, or a string saying why the pattern stays a float island.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..importer.tflite_model import int16_modelled, requantizes
from ..ir import IntType, Node, Tensor
from ..onnx_values import make_node
from ..targets.activation import ACTIVATION_BOUNDS

NO_ACTIVATION = ACTIVATION_BOUNDS[0]
# tf2onnx's standalone activations -> the reader's lut kind
_LUT_KINDS = {"Tanh": "tanh", "HardSwish": "hard_swish", "Relu": "relu", "Clip": "relu", "Sigmoid": "sigmoid",
              "LeakyRelu": "leaky_relu"}
LUT_OPS = frozenset(_LUT_KINDS)
_BINARY = {"Add": "add", "Sub": "add", "Mul": "mul"}
# ONNX op -> the TFLite builtin tf2onnx converted it from (a Clip: by its bounds, `builtin`)
_BUILTINS = {"Tanh": "TANH", "HardSwish": "HARD_SWISH", "Relu": "RELU", "Sigmoid": "LOGISTIC",
             "LeakyRelu": "LEAKY_RELU", "Softmax": "SOFTMAX", "Add": "ADD", "Sub": "SUB", "Mul": "MUL",
             "ConvTranspose": "TRANSPOSE_CONV", "Resize": "RESIZE_BILINEAR", "ReduceMean": "MEAN"}
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


@dataclass(frozen=True)
class QIn:
    """A quantized operand: integer tensor `name` with scale / zero-point tensor names and values;
    `value` its data when constant; `axis` the DequantizeLinear's axis."""
    name: str
    scale: str
    zp: str
    dtype: IntType
    shape: Optional[tuple]
    scale_value: np.ndarray
    zp_value: Optional[np.ndarray] = None
    value: Optional[np.ndarray] = None
    axis: int = 1


@dataclass
class Rewrite:
    """The nodes replacing a pattern, with the constants and tensors they add."""
    nodes: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)

    def tensor(self, name: str, like: Tensor, shape) -> str:
        self.tensors[name] = like.with_(name=name, shape=None if shape is None else tuple(shape))
        return name

    def transpose(self, x: str, y: str, perm, origin: str, opset: int) -> None:
        proto = make_node("Transpose", [x], [y], name=y, perm=list(perm))
        self.nodes.append(Node("onnx", y, (x,), (y,), {"node": proto, "opset": opset, "op_type": "Transpose"},
                               origin))


def activation_bounds(op_type: str, clip) -> Optional[tuple]:
    """The fused activation (float bounds of ACTIVATION_BOUNDS) a Relu ("Relu") or a Clip with
    constant bounds `clip` = (min or None, max or None) states, or None when it is none of them."""
    if op_type == "Relu":
        return ACTIVATION_BOUNDS[1]
    lo = -math.inf if clip[0] is None else float(np.float32(clip[0]))
    hi = math.inf if clip[1] is None else float(np.float32(clip[1]))
    return (lo, hi) if (lo, hi) in ACTIVATION_BOUNDS.values() else None


def builtin(op_type: str, bounds=None) -> str:
    """The TFLite builtin an ONNX op of a tf2onnx pattern stands for (Clip: RELU6 or RELU_N1_TO_1
    by its bounds; MatMul of two activations: BATCH_MATMUL)."""
    if op_type == "Clip":
        return {ACTIVATION_BOUNDS[2]: "RELU_N1_TO_1", ACTIVATION_BOUNDS[3]: "RELU6"}.get(bounds, "RELU")
    return _BUILTINS.get(op_type, "BATCH_MATMUL" if op_type == "MatMul" else op_type)


def wide(tfl_op: str, *types: IntType) -> str:
    """Why a pattern of 16-bit codes (operand types `types`) stays float: the .tflite reader
    refuses TFLite builtin `tfl_op` on int16 (importer.tflite_model.int16_modelled); "" when not."""
    bits = max(t.bits for t in types)
    if bits == 8 or (bits == 16 and int16_modelled(tfl_op)):
        return ""
    return f"{bits}-bit {tfl_op}: the .tflite reader does not model it on {bits}-bit codes (it refuses it too)"


def lut(op_type: str, attrs: dict, bounds, x: QIn, out: QIn, name: str, origin: str):
    """Tanh / HardSwish / Relu / Clip as the reader's `lut` (x, sx, zx, sy, zy)."""
    why = wide(builtin(op_type, bounds), x.dtype, out.dtype)
    if why:
        return why
    a = {"out_type": out.dtype, "kind": _LUT_KINDS[op_type]}
    if a["kind"] == "leaky_relu":
        a["alpha"] = float(np.float32(attrs.get("alpha", 0.01)))
    if a["kind"] == "relu":
        if bounds is None:
            return f"its {op_type} bounds are not those of RELU, RELU6 or RELU_N1_TO_1"
        a["fused_activation"] = bounds
    return Rewrite([Node("lut", name, (x.name, x.scale, x.zp, out.scale, out.zp), (out.name,), a, origin)])


def requantize(x: QIn, out: QIn, name: str, origin: str):
    """DequantizeLinear -> QuantizeLinear of codes of one 8- or 16-bit type to another per-tensor
    scale (tf2onnx's form of TFLite's QUANTIZE of integer input) as the reader's lut kind
    requantize (importer.tflite_model.requantizes); None where it is not one."""
    if not requantizes(x.dtype, out.dtype, x.scale_value, out.scale_value):
        return None
    return Rewrite([Node("lut", name, (x.name, x.scale, x.zp, out.scale, out.zp), (out.name,),
                         {"out_type": out.dtype, "kind": "requantize"}, origin)])


def softmax(attrs: dict, opset: int, x: QIn, out: QIn, name: str, origin: str):
    """Softmax over the last axis as the reader's softmax (SOFTMAX, beta 1: tf2onnx folds a beta
    other than 1 into a Mul before it)."""
    why = wide("SOFTMAX", x.dtype, out.dtype)
    if why:
        return why
    rank = None if x.shape is None else len(x.shape)
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1))
    if rank is None or axis not in (-1, rank - 1):
        return f"Softmax over axis {axis} of a rank-{rank} tensor (TFLite's SOFTMAX takes the last axis)"
    return Rewrite([Node("softmax", name, (x.name, x.scale, x.zp, out.scale, out.zp), (out.name,),
                         {"axis": -1, "opset": 13, "out_type": out.dtype, "beta": 1.0}, origin)])


def binary(op_type: str, bounds, a: QIn, b: QIn, out: QIn, name: str, origin: str):
    """Add / Sub / Mul as the reader's add (Sub: attr subtract) / mul."""
    why = wide(builtin(op_type), a.dtype, b.dtype, out.dtype)
    if why:
        return why
    attrs = {"out_type": out.dtype, "fused_activation": bounds, **({"subtract": True} if op_type == "Sub" else {})}
    return Rewrite([Node(_BINARY[op_type], name, (a.name, a.scale, a.zp, b.name, b.scale, b.zp, out.scale, out.zp),
                         (out.name,), attrs, origin)])


def reduce_mean(attrs: dict, axes, x: QIn, out: QIn, out_t: Tensor, name: str, origin: str, opset: int):
    """ReduceMean over the spatial axes of a 4-D tensor (NCHW [2, 3] or NHWC [1, 2]) as the
    reader's global_avgpool (MEAN over H, W), reshaped when keepdims = 0; keepdims is TFLite's
    keep_dims (tf2onnx writes it through), which selects tflite-builtin's MEAN kernel."""
    why = wide("MEAN", x.dtype, out.dtype)
    if why:
        return why
    if x.shape is None or len(x.shape) != 4 or axes is None or out_t.shape is None or None in out_t.shape[1:]:
        return "its input is not 4-D, or its axes or output shape are not known"
    ax = sorted({int(v) % 4 for v in np.asarray(axes).reshape(-1)})
    if ax not in ([1, 2], [2, 3]):
        return f"ReduceMean over axes {ax} (TFLite's MEAN is modelled over H, W only)"
    rw = Rewrite()
    keep = bool(attrs.get("keepdims", 1))
    y4 = out.name
    if not keep:
        shape4 = [x.shape[0], 1, 1, x.shape[3]] if ax == [1, 2] else [x.shape[0], x.shape[1], 1, 1]
        y4 = rw.tensor(out.name + "::keepdims", out_t, shape4)
    rw.nodes.append(Node("global_avgpool", name, (x.name, x.scale, x.zp, out.scale, out.zp), (y4,),
                         {"out_type": out.dtype, "channels_last": int(ax == [1, 2]), "keep_dims": int(keep)},
                         origin))
    if not keep:
        shape = out.name + "::shape"
        rw.constants[shape] = np.asarray([-1, *out_t.shape[1:]], np.int64)     # the batch stays free
        rw.tensors[shape] = Tensor(shape, rw.constants[shape].shape, IntType(64, True))
        proto = make_node("Reshape", [y4, shape], [out.name], name=out.name)
        rw.nodes.append(Node("onnx", out.name + "::reshape", (y4, shape), (out.name,),
                             {"node": proto, "opset": opset, "op_type": "Reshape"}, origin))
    return rw


def gap_keep_dims(consumer_op: str, axes=None, shape=None) -> int:
    """TFLite MEAN's keep_dims behind tf2onnx's GlobalAveragePool (N, C, 1, 1), from the op reading
    its quantized output: tf2onnx writes a MEAN without keep_dims as GlobalAveragePool -> Q ->
    Squeeze of axes [2, 3] (mean_fc) or a Reshape to rank 2, so such a consumer means 0; any other
    (or none) means 1."""
    if consumer_op == "Squeeze" and axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]:
        return 0
    return int(not (consumer_op == "Reshape" and shape is not None and len(shape) == 2))


def transpose_conv(attrs: dict, bounds, x: QIn, w: QIn, bias: str, out: QIn, out_t: Tensor, in_t: Tensor,
                   name: str, origin: str, opset: int):
    """ConvTranspose (NCHW, weights (I, O, KH, KW)) as the reader's transpose_conv on NHWC with
    weights (O, KH, KW, I): output pixel o = i*s + k - pad_begin, cropped to the output size,
    which is TFLite's TRANSPOSE_CONV with pads (top, left) = the ONNX begin pads."""
    why = wide("TRANSPOSE_CONV", x.dtype, out.dtype)
    if why:
        return why
    if w.value is None or w.value.ndim != 4:
        return "its weights are not a constant 4-D tensor"
    if int(attrs.get("group", 1)) != 1 or any(int(d) != 1 for d in attrs.get("dilations", [1, 1])) or \
            any(int(p) for p in attrs.get("output_padding", [0, 0])) or "output_shape" in attrs or \
            attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return "ConvTranspose with group, dilations, output_padding, output_shape or auto_pad (not TFLite's form)"
    if w.scale_value.size != 1 and w.axis != 1:
        return "its weights are quantized per channel along an axis other than the output channels"
    if x.shape is None or out_t.shape is None or len(out_t.shape) != 4 or None in out_t.shape[2:]:
        return "its input or output shape is unknown"
    strides = tuple(int(s) for s in attrs.get("strides", [1, 1]))
    pads = tuple(int(p) for p in attrs.get("pads", [0, 0, 0, 0]))
    rw = Rewrite()
    wn = w.name + "::ohwi"
    rw.constants[wn] = np.ascontiguousarray(w.value.transpose(1, 2, 3, 0))
    rw.tensors[wn] = Tensor(wn, rw.constants[wn].shape, w.dtype)
    xn = rw.tensor(x.name + "::nhwc", in_t, [x.shape[p] for p in TO_NHWC])
    yn = rw.tensor(out.name + "::nhwc", out_t, [out_t.shape[p] for p in TO_NHWC])
    rw.transpose(x.name, xn, TO_NHWC, origin, opset)
    rw.nodes.append(Node("transpose_conv", name, (xn, x.scale, x.zp, wn, w.scale, w.zp, out.scale, out.zp, bias),
                         (yn,), {"strides": strides, "pads": pads[:2], "out_hw": tuple(int(d) for d in out_t.shape[2:]),
                                 "out_type": out.dtype, "fused_activation": bounds, "pad_clamped": False}, origin))
    rw.transpose(yn, out.name, TO_NCHW, origin, opset)
    return rw


# coordinate_transformation_mode -> (align_corners, half_pixel_centers) of RESIZE_BILINEAR
_RESIZE_MODES = {"asymmetric": (False, False), "align_corners": (True, False), "half_pixel": (False, True)}


def resize_linear(attrs: dict, x: QIn, out: QIn, out_t: Tensor, in_t: Tensor, hw, name: str, origin: str,
                  opset: int):
    """Resize linear of NCHW codes, input and output quantization equal, as the reader's
    resize_bilinear on NHWC (size `hw`: the output's H, W as the importer sized it;
    align_corners / half_pixel_centers from the coordinate_transformation_mode)."""
    why = wide("RESIZE_BILINEAR", x.dtype, out.dtype)
    if why:
        return why
    mode = attrs.get("coordinate_transformation_mode", b"half_pixel")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode not in _RESIZE_MODES:
        return f"Resize linear with coordinate_transformation_mode {mode} (not one of RESIZE_BILINEAR's)"
    if x.shape is None or len(x.shape) != 4 or hw is None or None in hw or len(hw) != 2:
        return "it does not resize H, W of a 4-D NCHW tensor of known output size"
    if x.dtype != out.dtype or not np.array_equal(np.float32(x.scale_value), np.float32(out.scale_value)) or \
            not np.array_equal(np.asarray(x.zp_value), np.asarray(out.zp_value)):
        return "its input and output quantization differ (RESIZE_BILINEAR keeps them)"
    align, half = _RESIZE_MODES[mode]
    rw = Rewrite()
    xn = rw.tensor(x.name + "::nhwc", in_t, [x.shape[p] for p in TO_NHWC])
    hw = tuple(int(d) for d in hw)
    yn = rw.tensor(out.name + "::nhwc", out_t, [x.shape[0], *hw, x.shape[1]])
    rw.tensor(out.name, out_t, [x.shape[0], x.shape[1], *hw])
    rw.transpose(x.name, xn, TO_NHWC, origin, opset)
    rw.nodes.append(Node("resize_bilinear", name, (xn, x.scale, x.zp, out.scale, out.zp), (yn,),
                         {"out_type": out.dtype, "size": hw,
                          "align_corners": align, "half_pixel_centers": half}, origin))
    rw.transpose(yn, out.name, TO_NCHW, origin, opset)
    return rw
