"""TFLite flatbuffers -> intsim IR, read with the `tflite` schema package (never TensorFlow).

    graph = import_tflite("model.tflite")        # path or bytes (magic "TFL3" at offset 4)

Tensors keep their TFLite names, int8/int16/int32 types and quantization (per tensor, or per
channel along `quantized_dimension`). Graph inputs and outputs keep TFLite's NHWC shapes.
The IR's conv and MaxPool are NCHW: each CONV_2D / DEPTHWISE_CONV_2D / MAX_POOL_2D is wrapped
in explicit `onnx` Transpose nodes (NHWC -> NCHW before, back after), its weights stored
OIHW (TFLite OHWI; depthwise [1, KH, KW, C*m] -> (C*m, 1, KH, KW) with group = C). Pools
read channels-last directly (`channels_last=1`). A fused activation (and the standalone
RELU / RELU6 / RELU_N1_TO_1) is kept as attr "fused_activation", its float bounds
(targets.activation.ACTIVATION_BOUNDS); the target turns it into lo / hi at prepare
(passes.fused_activation), since TFLite's kernels and XNNPACK quantize the bounds differently.

Builtin ops and their IR lowering:

    CONV_2D, DEPTHWISE_CONV_2D  conv (QLinearConv input layout), fused activation bounds,
                                SAME / VALID padding as explicit pads (TFLite puts the odd
                                pixel after: pad_before = total // 2)
    FULLY_CONNECTED             matmul (transB = 1: TFLite weights are (O, K)); an input of
                                rank != 2 is reshaped to (-1, K) first
    ADD, MUL                    add, mul (fused activation bounds)
    SUB                         add with attr subtract (TFLite's SUB; int8)
    PAD, PADV2                  `onnx` Pad, the output zero point (or PADV2's constant) as value
    AVERAGE_POOL_2D             avgpool (channels-last, in-image taps counted)
    MAX_POOL_2D                 `onnx` MaxPool between Transposes
    MEAN over H, W of NHWC      global_avgpool (channels-last, attr keep_dims: the optimized kernel
                                runs only with it), Reshape when keep_dims = 0
    SUM (int8, uint8, int16;    reduce_sum (dimensions kept), Reshape when keep_dims = 0
      constant axes other than the batch's)
    CONCATENATION               concat (QLinearConcat layout)
    RESHAPE, SQUEEZE, EXPAND_DIMS  `onnx` Reshape to the stored output shape
    TRANSPOSE, STRIDED_SLICE, SLICE  `onnx` Transpose / Slice (importer.tflite_movement)
    QUANTIZE (float input)      quantize;  DEQUANTIZE  dequantize
    QUANTIZE (integer input,    `onnx` Cast, Add, Clip, Cast: the zero point moves, exactly
      same scale)               (another scale, one 8- or 16-bit type: lut kind requantize)
    RELU, RELU6, RELU_N1_TO_1,  lut (kind relu with the activation bounds, leaky_relu,
    LEAKY_RELU, LOGISTIC, TANH, sigmoid, tanh, hard_swish), int8; RELU, RELU6, LEAKY_RELU,
    HARD_SWISH                  LOGISTIC, TANH also int16 (RELU_N1_TO_1 and HARD_SWISH on int16
                                are refused: the interpreter fails to invoke them)
    PRELU                       prelu (x, alpha; alpha broadcast), 8-bit, or int16 with int8 alpha
    SOFTMAX                     softmax over the last axis with attr beta, 8-bit or int16
    RESIZE_NEAREST_NEIGHBOR     two `onnx` Gathers (rows, then columns) of the source indices
                                TFLite's GetNearestNeighbor picks (float32), codes moved as they are
    RESIZE_BILINEAR             resize_bilinear (NHWC codes, align_corners / half_pixel_centers),
                                8-bit or int16
    BATCH_MATMUL                matmul of two activations (adj_y as transB; adj_x as an `onnx`
                                Transpose of the last two axes first), 8-bit or int16
    TRANSPOSE_CONV              transpose_conv (NHWC, weights as stored; SAME padding as TFLite
                                computes it for the op: a forward conv from the output size)

16x8 (int16 activations, int8 weights, int64 bias) CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, TRANSPOSE_CONV, and int16 ADD, SUB, MUL, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, CONCATENATION,
QUANTIZE (float input), BATCH_MATMUL, PRELU, SOFTMAX, RESIZE_*, the activations lower as their
int8 forms (the targets hold the 16-bit arithmetic); ADD / SUB with pot_scale_int16 and
power-of-two scales (TFLite's shift-only int16 path), int16 RELU_N1_TO_1 and HARD_SWISH (the
interpreter cannot run them) are refused.
Any other builtin (or a fused activation not listed above) is refused: UnsupportedOpError
naming the op, the operator index and its output tensor.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from ..errors import InvalidModelError, QuantParamError, ResourceLimitError, UnsupportedOpError
from ..ir import FLOAT32, INT8, FloatType, Graph, IntType, Node, QParams, Tensor
from ..limits import current
from ..onnx_core import proto
from ..onnx_values import elem_of, make_node
from ..targets.activation import ACTIVATION_BOUNDS, tflite_range
from .tflite_movement import LOWERINGS as MOVEMENT_LOWERINGS

ONNX_OPSET = 17     # the opset the `onnx` movement nodes (Transpose, Reshape, MaxPool) are written for
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)

# tflite.TensorType values -> IR types
_TYPES = {0: FLOAT32, 1: FloatType(16), 2: IntType(32, True), 3: IntType(8, False), 4: IntType(64, True),
          6: IntType(1, False), 7: IntType(16, True), 9: IntType(8, True), 17: IntType(4, True)}
_NP = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8}


def is_tflite(source) -> bool:
    """A TFLite flatbuffer: bytes with the "TFL3" identifier, or a path ending in .tflite."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[4:8]) == b"TFL3"
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.suffix.lower() == ".tflite":
            return True
        try:
            with open(p, "rb") as f:
                return f.read(8)[4:8] == b"TFL3"
        except OSError:
            return False
    return False


def _read(source) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    p = Path(source)
    if not p.is_file():
        raise InvalidModelError(f"model file '{p}' does not exist")
    if p.stat().st_size > current().max_bytes:
        raise ResourceLimitError(f"model file '{p}' is larger than {current().max_bytes} bytes")
    return p.read_bytes()


def activation_range(act: int, qp: QParams, t: IntType) -> tuple:
    """(lo, hi) of a fused activation in output codes under TFLite's own rule
    (targets.activation.tflite_range, CalculateActivationRangeQuantized). act:
    tflite.ActivationFunctionType (0 NONE, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6); other values: None."""
    return tflite_range(ACTIVATION_BOUNDS[act], qp, t) if act in ACTIVATION_BOUNDS else None


def same_pads(in_hw, kernel, strides, dilations) -> list:
    """TFLite SAME padding as ONNX pads [top, left, bottom, right]: total = max((out-1)*s + (k-1)*d
    + 1 - in, 0), out = ceil(in / s), the smaller half before (ComputePaddingHeightWidth)."""
    before, after = [], []
    for n, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _check_window(r, key, in_hw, out_hw, kernel, strides, dilations, same: bool) -> None:
    """Strides, dilations and kernel >= 1, and the stored output size equal to TFLite's
    (SAME: ceil(in / s); VALID: (in - (k-1)*d - 1) // s + 1); else InvalidModelError."""
    if min(list(kernel) + list(strides) + list(dilations)) < 1:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): kernel {list(kernel)}, strides {list(strides)} and "
                                f"dilations {list(dilations)} must be >= 1")
    want = [-(-n // s) if same else (n - (k - 1) * d - 1) // s + 1
            for n, k, s, d in zip(in_hw, kernel, strides, dilations)]
    if list(out_hw) != want:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): output '{key[2]}' is {list(out_hw)} spatially, the "
                                f"window gives {want}")


class _Reader:
    def __init__(self, data: bytes):
        import tflite   # the schema package (flatbuffers accessors), imported on first use

        self.tfl = tflite
        try:
            self.model = tflite.Model.GetRootAsModel(data, 0)
            if self.model.SubgraphsLength() < 1:
                raise InvalidModelError("the TFLite model has no subgraph")
            self.sg = self.model.Subgraphs(0)
            self.graph_inputs = {int(i) for i in self.sg.InputsAsNumpy()}
        except InvalidModelError:
            raise
        except Exception as e:  # noqa: BLE001 - a corrupt flatbuffer raises anything
            raise InvalidModelError(f"not a valid TFLite file: {e}") from None
        self.data = data
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.tensors: dict = {}
        self.constants: dict = {}
        self.nodes: list = []
        self.names: list = []
        self._used: set = set()

    # --- tensors ---------------------------------------------------------------------------
    def tensor_name(self, i: int) -> str:
        if i < 0:
            return ""
        while len(self.names) <= i:
            self.names.append(None)
        if self.names[i] is None:
            raw = self.sg.Tensors(i).Name()
            name = raw.decode("utf-8", "replace") if raw else f"tensor_{i}"
            base, k = name, 0
            while name in self._used:
                k += 1
                name = f"{base}__{k}"
            self._used.add(name)
            self.names[i] = name
        return self.names[i]

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self._used or name in self.tensors:
            k += 1
            name = f"{base}__{k}"
        self._used.add(name)
        return name

    def qparams(self, t, name: str):
        q = t.Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        s = q.ScaleAsNumpy().astype(np.float32)
        z = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(s.shape, np.int64)
        z = np.asarray(z, np.int64)
        if s.size == 1:
            return QParams.make(s.reshape(()), z.reshape(-1)[:1].reshape(()), name=name)
        return QParams.make(s, z, axis=int(q.QuantizedDimension()), name=name)

    def declare(self, i: int) -> str:
        """Declare TFLite tensor i (with its constant data, if any); returns its IR name."""
        name = self.tensor_name(i)
        if name in self.tensors:
            return name
        t = self.sg.Tensors(i)
        ttype = t.Type()
        if ttype not in _TYPES:
            raise UnsupportedOpError("tensor", name, 0, f"TFLite tensor type {ttype} is not supported")
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if any(d < 0 for d in shape):
            raise InvalidModelError(f"tensor '{name}': negative dimension in shape {list(shape)}")
        if t.ShapeSignatureLength() == len(shape) and i in self.graph_inputs:   # -1: a dynamic dimension
            shape = tuple(None if int(s) == -1 else d for s, d in zip(t.ShapeSignatureAsNumpy(), shape))
        qp = self.qparams(t, name)
        dt = _TYPES[ttype]
        if qp is not None and isinstance(dt, IntType) and dt.bits <= 16 and \
                (qp.zero_point.min() < dt.qmin or qp.zero_point.max() > dt.qmax):
            raise QuantParamError(f"tensor '{name}': zero point outside the {dt} range")
        self.tensors[name] = Tensor(name, shape, dt, qp)
        data = self.buffer(t.Buffer(), name)
        if data is not None:
            if ttype not in _NP:
                raise UnsupportedOpError("tensor", name, 0, f"constant of TFLite type {ttype} is not supported")
            arr = np.frombuffer(data, _NP[ttype])
            if arr.size != math.prod(shape):
                raise InvalidModelError(f"tensor '{name}': buffer holds {arr.size} values for shape {list(shape)}")
            self.constants[name] = arr.reshape(shape).copy()
        return name

    def buffer(self, idx: int, name: str):
        if idx <= 0 or idx >= self.model.BuffersLength():
            return None
        b = self.model.Buffers(idx)
        off, size = int(b.Offset()), int(b.Size())
        if off > 1:
            if off + size > len(self.data):
                raise InvalidModelError(f"tensor '{name}': buffer {idx} lies outside the file")
            return self.data[off:off + size] if size else None
        if b.DataLength() == 0:
            return None
        return b.DataAsNumpy().tobytes()

    def const(self, name: str, value: np.ndarray) -> str:
        name = self.fresh(name)
        self.constants[name] = value
        dt = FLOAT32 if value.dtype.kind == "f" else IntType(value.dtype.itemsize * 8, value.dtype.kind == "i")
        self.tensors[name] = Tensor(name, tuple(value.shape), dt)
        return name

    def scale_zp(self, name: str, what: str, op) -> tuple:
        """Names of constants holding tensor `name`'s scale and zero point."""
        t = self.tensors[name]
        if t.qparams is None:
            raise self.refuse(op, f"{what} '{name}' is not quantized")
        qp = t.qparams
        zdt = t.dtype.storage if isinstance(t.dtype, IntType) and t.dtype.bits <= 16 else np.int32
        return (self.const(f"{name}::scale", qp.scale.astype(np.float32)),
                self.const(f"{name}::zero_point", qp.zero_point.astype(zdt)))

    def derived(self, name: str, base: str, shape) -> str:
        """A new tensor like `base` (type, quantization) with another shape."""
        n = self.fresh(name)
        self.tensors[n] = self.tensors[base].with_(name=n, shape=tuple(shape))
        return n

    # --- nodes -------------------------------------------------------------------------------
    def emit(self, op, name, inputs, outputs, attrs, origin):
        self.nodes.append(Node(op, name, tuple(inputs), tuple(outputs), attrs, origin))

    def onnx_node(self, op_type, inputs, output, origin, **attrs):
        node = make_node(op_type, list(inputs), [output], name=output, **attrs)
        self.emit("onnx", output, inputs, [output], {"node": node, "opset": ONNX_OPSET, "op_type": op_type}, origin)

    def transpose(self, x: str, perm, origin, suffix) -> str:
        shape = self.tensors[x].shape
        y = self.derived(f"{x}::{suffix}", x, [shape[p] for p in perm])
        self.onnx_node("Transpose", [x], y, origin, perm=list(perm))
        return y

    def reshape(self, x: str, y: str, shape, origin) -> None:
        """`onnx` Reshape of x to `shape`; a leading batch dimension that x and the result share
        becomes -1, so that a batch of samples runs through a batch-1 model."""
        shape, xs = list(shape), self.tensors[x].shape
        if shape and xs and shape[0] == xs[0] and shape[0] != -1:
            shape[0] = -1
        s = self.const(f"{y}::shape", np.asarray(shape, np.int64))
        self.onnx_node("Reshape", [x, s], y, origin)

    def refuse(self, op, why: str) -> UnsupportedOpError:
        code, idx, out = op
        return UnsupportedOpError(code, f"operator {idx}", 0, f"output tensor '{out}': {why}")

    def options(self, op, cls):
        o = cls()
        table = op.BuiltinOptions()
        if table is None:
            return None
        o.Init(table.Bytes, table.Pos)
        return o


# ------------------------------------------------------------------------------------ lowerings
def _io(r: _Reader, op):
    ins = [r.declare(int(i)) if i >= 0 else "" for i in op.InputsAsNumpy()] if op.InputsLength() else []
    outs = [r.declare(int(i)) for i in op.OutputsAsNumpy()]
    return ins, outs


def _act(r, key, act, out) -> dict:
    """The attrs of a fused activation: its float bounds (targets.activation.ACTIVATION_BOUNDS),
    turned into lo / hi by the target at prepare (passes.fused_activation); TFLite's own range
    checked here, so a model whose range is empty fails at import."""
    t = r.tensors[out]
    rng = activation_range(int(act), t.qparams, t.dtype) if t.qparams is not None else None
    if rng is None:
        raise r.refuse(key, f"fused activation {act} is not supported")
    if not t.dtype.qmin <= rng[0] <= rng[1] <= t.dtype.qmax:
        raise QuantParamError(f"tensor '{out}': fused activation range {list(rng)} is empty or outside {t.dtype}")
    return {"fused_activation": ACTIVATION_BOUNDS[int(act)]}


def _lower_conv(r, key, op, ins, outs, depthwise: bool):
    tfl = r.tfl
    o = r.options(op, tfl.DepthwiseConv2DOptions if depthwise else tfl.Conv2DOptions)
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else ""
    y = outs[0]
    if w not in r.constants:
        raise r.refuse(key, f"weights '{w}' are not constant")
    wt = r.constants[w]
    xs = r.tensors[x].shape
    if depthwise:       # [1, KH, KW, C*m] -> (C*m, 1, KH, KW)
        w_oihw, group = np.ascontiguousarray(wt.transpose(3, 0, 1, 2)), int(xs[3])
    else:               # [O, KH, KW, I] -> (O, I, KH, KW)
        w_oihw, group = np.ascontiguousarray(wt.transpose(0, 3, 1, 2)), 1
    wq = r.tensors[w].qparams
    w_src, w = w, r.const(f"{w}::oihw", w_oihw)
    r.tensors[w] = r.tensors[w].with_(dtype=r.tensors[w_src].dtype, qparams=None if wq is None else
                                      QParams.make(wq.scale, wq.zero_point, axis=0 if wq.axis is not None else None,
                                                   name=w))
    kernel = [int(w_oihw.shape[2]), int(w_oihw.shape[3])]
    strides = [int(o.StrideH()), int(o.StrideW())]
    dil = [int(o.DilationHFactor()), int(o.DilationWFactor())]
    if len(xs) != 4 or len(r.tensors[y].shape) != 4:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): input and output must be 4-D NHWC")
    _check_window(r, key, xs[1:3], r.tensors[y].shape[1:3], kernel, strides, dil, o.Padding() == tfl.Padding.SAME)
    pads = same_pads(xs[1:3], kernel, strides, dil) if o.Padding() == tfl.Padding.SAME else [0, 0, 0, 0]
    act = _act(r, key, o.FusedActivationFunction(), y)
    origin = f"{key[0]} (operator {key[1]})"
    xn = r.transpose(x, TO_NCHW, origin, "nchw")
    ys = r.tensors[y].shape
    yn = r.derived(f"{y}::nchw", y, [ys[p] for p in TO_NCHW])
    xsn, xzn = r.scale_zp(x, "input", key)
    wsn, wzn = r.scale_zp(w, "weights", key)
    ysn, yzn = r.scale_zp(y, "output", key)
    t = r.tensors[y].dtype
    r.emit("conv", f"{y}::conv", [xn, xsn, xzn, w, wsn, wzn, ysn, yzn, b], [yn],
           {"strides": strides, "pads": pads, "dilations": dil, "kernel_shape": kernel, "group": group,
            "auto_pad": "NOTSET", "out_type": t, "requant": True, **act}, origin)
    r.onnx_node("Transpose", [yn], y, origin, perm=list(TO_NHWC))


def _lower_fc(r, key, op, ins, outs):
    o = r.options(op, r.tfl.FullyConnectedOptions)
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else ""
    y = outs[0]
    if w not in r.constants:
        raise r.refuse(key, f"weights '{w}' are not constant")
    if o is not None and o.WeightsFormat() != 0:
        raise r.refuse(key, "shuffled weights format is not supported")
    origin = f"{key[0]} (operator {key[1]})"
    k = int(r.constants[w].shape[1])
    xs = r.tensors[x].shape
    if len(xs) != 2:
        x2 = r.derived(f"{x}::2d", x, [math.prod(xs) // k, k])
        r.reshape(x, x2, [-1, k], origin)
        x = x2
    ys = r.tensors[y].shape
    y2 = y if len(ys) == 2 else r.derived(f"{y}::2d", y, [math.prod(ys) // int(r.constants[w].shape[0]),
                                                         int(r.constants[w].shape[0])])
    act = _act(r, key, o.FusedActivationFunction() if o is not None else 0, y)
    xsn, xzn = r.scale_zp(x, "input", key)
    wsn, wzn = r.scale_zp(w, "weights", key)
    ysn, yzn = r.scale_zp(y, "output", key)
    t = r.tensors[y].dtype
    r.emit("matmul", f"{y}::fc", [x, xsn, xzn, w, wsn, wzn, ysn, yzn, b], [y2],
           {"out_type": t, "requant": True, **act, "transA": 0, "transB": 1, "alpha": 1.0}, origin)
    if y2 != y:
        r.reshape(y2, y, list(ys), origin)


def _near_pot(qp) -> bool:
    """A per-tensor scale TFLite's CheckedLog2 takes for a power of two (|log2 s - round| < 1e-3)."""
    if qp is None or qp.scale.size != 1:
        return False
    v = math.log2(float(qp.scale.reshape(-1)[0]))
    return abs(v - round(v)) < 1e-3


def _lower_binary(r, key, op, ins, outs, kind):
    """ADD, MUL, SUB (kind "sub": an `add` node with attr subtract, which only TFLite's ADD
    rule, rules.TfliteAdd, computes)."""
    tfl = r.tfl
    o = r.options(op, {"add": tfl.AddOptions, "mul": tfl.MulOptions, "sub": tfl.SubOptions}[kind])
    a, b = ins
    y = outs[0]
    if kind != "mul" and r.tensors[y].dtype.bits == 16 and (o is None or o.PotScaleInt16()) and \
            all(_near_pot(r.tensors[n].qparams) for n in (a, b, y)):
        raise r.refuse(key, "int16 with power-of-two scales and pot_scale_int16 (TFLite's shift-only path) "
                            "is not modelled")
    act = _act(r, key, o.FusedActivationFunction() if o is not None else 0, y)
    t = r.tensors[y].dtype
    attrs = {"out_type": t, **act, **({"subtract": True} if kind == "sub" else {})}
    r.emit("add" if kind == "sub" else kind, f"{y}::{kind}", [a, *r.scale_zp(a, "input", key), b,
                                                            *r.scale_zp(b, "input", key),
                                                            *r.scale_zp(y, "output", key)], [y],
           attrs, f"{key[0]} (operator {key[1]})")


def _lower_pool(r, key, op, ins, outs, kind):
    tfl = r.tfl
    o = r.options(op, tfl.Pool2DOptions)
    x, y = ins[0], outs[0]
    kernel = [int(o.FilterHeight()), int(o.FilterWidth())]
    strides = [int(o.StrideH()), int(o.StrideW())]
    xs = r.tensors[x].shape
    if len(xs) != 4 or len(r.tensors[y].shape) != 4:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): input and output must be 4-D NHWC")
    _check_window(r, key, xs[1:3], r.tensors[y].shape[1:3], kernel, strides, [1, 1], o.Padding() == tfl.Padding.SAME)
    pads = same_pads(xs[1:3], kernel, strides, [1, 1]) if o.Padding() == tfl.Padding.SAME else [0, 0, 0, 0]
    origin = f"{key[0]} (operator {key[1]})"
    t = r.tensors[y].dtype
    if kind == "avg":
        act = _act(r, key, o.FusedActivationFunction(), y)
        r.emit("avgpool", f"{y}::avgpool", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [y],
               {"out_type": t, "channels_last": 1, "kernel_shape": tuple(kernel), "strides": tuple(strides),
                "pads": tuple(pads), "count_include_pad": 0, "ceil_mode": 0, "auto_pad": "NOTSET",
                **act}, origin)
        return
    if o.FusedActivationFunction() != 0:
        raise r.refuse(key, f"fused activation {o.FusedActivationFunction()} on MAX_POOL_2D is not supported")
    if not r.tensors[x].qparams or not r.tensors[x].qparams.same_as(r.tensors[y].qparams):
        raise r.refuse(key, "input and output quantization differ")
    xn = r.transpose(x, TO_NCHW, origin, "nchw")
    ys = r.tensors[y].shape
    yn = r.derived(f"{y}::nchw", y, [ys[p] for p in TO_NCHW])
    r.onnx_node("MaxPool", [xn], yn, origin, kernel_shape=kernel, strides=strides, pads=pads)
    r.onnx_node("Transpose", [yn], y, origin, perm=list(TO_NHWC))


def _lower_mean(r, key, op, ins, outs):
    o = r.options(op, r.tfl.ReducerOptions)
    x, axes, y = ins[0], ins[1], outs[0]
    xs = r.tensors[x].shape
    if axes not in r.constants or len(xs) != 4:
        raise r.refuse(key, "MEAN is modelled over H and W of a 4-D NHWC tensor with constant axes")
    ax = sorted({int(a) % 4 for a in r.constants[axes].reshape(-1)})
    if ax != [1, 2]:
        raise r.refuse(key, f"MEAN over axes {ax} is not supported (only H, W = [1, 2])")
    origin = f"{key[0]} (operator {key[1]})"
    keep = bool(o.KeepDims()) if o is not None else False
    y4 = y if keep else r.derived(f"{y}::keepdims", y, [xs[0], 1, 1, xs[3]])
    t = r.tensors[y].dtype
    r.emit("global_avgpool", f"{y}::mean", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [y4],
           {"out_type": t, "channels_last": 1, "keep_dims": int(keep)}, origin)
    if not keep:
        r.reshape(y4, y, list(r.tensors[y].shape), origin)


def _lower_sum(r, key, op, ins, outs):
    """SUM of int8, uint8 or int16 codes (one type in and out) over constant axes (not the batch
    axis 0): reduce_sum with the dimensions kept, then a Reshape when keep_dims = 0."""
    o = r.options(op, r.tfl.ReducerOptions)
    x, axes, y = ins[0], ins[1], outs[0]
    xs, t = r.tensors[x].shape, r.tensors[y].dtype
    if t != r.tensors[x].dtype or not isinstance(t, IntType) or t.bits not in (8, 16) or (t.bits == 16 and not t.signed):
        raise r.refuse(key, f"SUM of {r.tensors[x].dtype} to {t} is not modelled (int8, uint8 or int16, one type)")
    if axes not in r.constants:
        raise r.refuse(key, f"axes '{axes}' are not constant")
    ax = sorted({int(a) % max(len(xs), 1) for a in r.constants[axes].reshape(-1)})
    if not ax or 0 in ax:
        raise r.refuse(key, f"SUM over axes {ax} (the batch axis, or none) is not modelled")
    origin = f"{key[0]} (operator {key[1]})"
    keep = bool(o.KeepDims()) if o is not None else False
    kept = [1 if i in ax else d for i, d in enumerate(xs)]
    yk = y if keep else r.derived(f"{y}::keepdims", y, kept)
    r.emit("reduce_sum", f"{y}::sum", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [yk],
           {"out_type": t, "axes": tuple(ax)}, origin)
    if not keep:
        r.reshape(yk, y, list(r.tensors[y].shape), origin)


def _lower_concat(r, key, op, ins, outs):
    o = r.options(op, r.tfl.ConcatenationOptions)
    y = outs[0]
    if o is not None and o.FusedActivationFunction() != 0:
        raise r.refuse(key, "fused activation on CONCATENATION is not supported")
    rank = len(r.tensors[y].shape)
    if rank == 0:
        raise r.refuse(key, "CONCATENATION of scalars")
    axis = int(o.Axis()) % rank if o is not None else 0
    args = list(r.scale_zp(y, "output", key))
    for x in ins:
        args += [x, *r.scale_zp(x, "input", key)]
    r.emit("concat", f"{y}::concat", args, [y], {"axis": axis, "out_type": r.tensors[y].dtype},
           f"{key[0]} (operator {key[1]})")


def _lower_reshape(r, key, op, ins, outs):
    x, y = ins[0], outs[0]
    qx, qy = r.tensors[x].qparams, r.tensors[y].qparams
    if (qx is None) != (qy is None) or (qx is not None and not qx.same_as(qy)):
        raise r.refuse(key, "input and output quantization differ")
    r.reshape(x, y, list(r.tensors[y].shape), f"{key[0]} (operator {key[1]})")


def _lower_pad(r, key, op, ins, outs):
    """PAD / PADV2 of quantized codes (pad.cc: the pad value is the output zero point, or PADV2's
    constant; input and output quantization equal): an `onnx` Pad, mode constant."""
    x, paddings, y = ins[0], ins[1], outs[0]
    qx, qy = r.tensors[x].qparams, r.tensors[y].qparams
    if qx is None or qy is None or not qx.same_as(qy):
        raise r.refuse(key, "input and output quantization differ")
    if paddings not in r.constants:
        raise r.refuse(key, f"paddings '{paddings}' are not constant")
    pads = np.asarray(r.constants[paddings], np.int64).reshape(-1, 2)
    if len(pads) != len(r.tensors[x].shape) or pads.min(initial=0) < 0:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): paddings {pads.tolist()} do not fit input rank "
                                f"{len(r.tensors[x].shape)}")
    t = r.tensors[y].dtype
    if len(ins) > 2 and ins[2]:
        if ins[2] not in r.constants:
            raise r.refuse(key, f"pad value '{ins[2]}' is not constant")
        value = np.asarray(r.constants[ins[2]]).reshape(-1)[:1].astype(t.storage).reshape(())
    else:
        value = np.asarray(int(qy.zero_point.reshape(-1)[0]), t.storage)
    pn = r.const(f"{y}::pads", np.concatenate([pads[:, 0], pads[:, 1]]))
    vn = r.const(f"{y}::pad_value", value)
    r.tensors[vn] = r.tensors[vn].with_(dtype=t)
    r.onnx_node("Pad", [x, pn, vn], y, f"{key[0]} (operator {key[1]})", mode="constant")


def _lower_quantize(r, key, op, ins, outs):
    x, y = ins[0], outs[0]
    origin = f"{key[0]} (operator {key[1]})"
    if not isinstance(r.tensors[x].dtype, FloatType):
        _lower_zero_point_shift(r, key, x, y, origin)
        return
    s, z = r.scale_zp(y, "output", key)
    r.emit("quantize", f"{y}::quantize", [x, s, z], [y],
           {"axis": None, "block_size": 0, "out_type": r.tensors[y].dtype, "saturate": 1}, origin)


# (input, output) integer types of a QUANTIZE the interpreter requantizes (quantize.cc Prepare/Eval;
# int16 -> uint8 fails to prepare, measured; the int32 forms are for applications only)
REQUANTIZE_TYPES = frozenset([(IntType(8, a), IntType(8, b)) for a in (True, False) for b in (True, False)] +
                             [(IntType(16, True), IntType(8, True)), (IntType(16, True), IntType(16, True)),
                              (IntType(8, True), IntType(16, True)), (IntType(8, False), IntType(16, True))])


def requantizes(in_t: IntType, out_t: IntType, sx, sy) -> bool:
    """A QUANTIZE of integer codes that the reader lowers as a `lut` of kind requantize: a pair of
    REQUANTIZE_TYPES (one 8- or 16-bit type, int8 <-> uint8, int16 -> int8, int8 / uint8 ->
    int16), per-tensor scales sx != sy (float32). The target's rule computes it per kernel path
    (quantize.cc Requantize: reference_ops::Requantize, optimized_ops::Requantize's 16-lane loop
    for 8-bit codes, XNNPACK's convert); passes/qdq_tflite.py lowers tf2onnx's DequantizeLinear
    -> QuantizeLinear of such codes the same way."""
    return (in_t, out_t) in REQUANTIZE_TYPES and np.asarray(sx).size == 1 and np.asarray(sy).size == 1 and \
        np.float32(np.asarray(sx).reshape(-1)[0]) != np.float32(np.asarray(sy).reshape(-1)[0])


def _lower_zero_point_shift(r, key, x, y, origin):
    """QUANTIZE of integer codes to the same scale (what the converter writes for uint8 model
    input and output: uint8 <-> int8, zero point +-128): y = clamp(x - zx + zy), exact on every
    kernel path (quantize.cc Requantize with effective scale 1: MultiplyByQuantizedMultiplier
    by 2^30 << 1 is the identity), as `onnx` Cast -> Add -> Clip -> Cast. A requantize that
    changes the scale (`requantizes`) is a `lut` of kind requantize; other type pairs with a
    new scale, and per-channel quantization, are refused by name."""
    qx, qy = r.tensors[x].qparams, r.tensors[y].qparams
    t = r.tensors[y].dtype
    if qx is not None and qy is not None and qx.axis is None and qy.axis is None and \
            requantizes(r.tensors[x].dtype, t, qx.scale, qy.scale):
        r.emit("lut", f"{y}::requantize", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [y],
               {"out_type": t, "kind": "requantize"}, origin)
        return
    if qx is None or qy is None or qx.axis is not None or qy.axis is not None or \
            np.float32(qx.scale) != np.float32(qy.scale):
        raise r.refuse(key, f"QUANTIZE of integer input that changes the scale from {r.tensors[x].dtype} to {t} "
                            f"(or per channel) is not supported")
    shape = r.tensors[x].shape
    wide = [r.fresh(f"{y}::{k}") for k in ("int32", "shifted", "clipped")]
    for n in wide:
        r.tensors[n] = Tensor(n, shape, IntType(32, True))
    r.onnx_node("Cast", [x], wide[0], origin, to=int(proto.TensorProto.INT32))
    d = r.const(f"{y}::zero_point_shift", np.asarray(int(qy.zero_point) - int(qx.zero_point), np.int32))
    r.onnx_node("Add", [wide[0], d], wide[1], origin)
    lo, hi = (r.const(f"{y}::{k}", np.asarray(v, np.int32)) for k, v in (("qmin", t.qmin), ("qmax", t.qmax)))
    r.onnx_node("Clip", [wide[1], lo, hi], wide[2], origin)
    r.onnx_node("Cast", [wide[2]], y, origin, to=int(elem_of(t.storage)))


def _lower_dequantize(r, key, op, ins, outs):
    x, y = ins[0], outs[0]
    s, z = r.scale_zp(x, "input", key)
    r.emit("dequantize", f"{y}::dequantize", [x, s, z], [y],
           {"axis": None, "block_size": 0, "out_dtype": r.tensors[y].dtype}, f"{key[0]} (operator {key[1]})")


_ACT_CODES = {"RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3}


def _lower_activation(r, key, op, ins, outs, name):
    """An int8 activation as a `lut` node (x, sx, zx, sy, zy)."""
    x, y = ins[0], outs[0]
    t = r.tensors[y].dtype
    attrs = {"out_type": t, "kind": {"LOGISTIC": "sigmoid", "TANH": "tanh", "LEAKY_RELU": "leaky_relu",
                                           "HARD_SWISH": "hard_swish"}.get(name, "relu")}
    if name in _ACT_CODES:
        attrs.update(_act(r, key, _ACT_CODES[name], y))
    if name == "LEAKY_RELU":
        o = r.options(op, r.tfl.LeakyReluOptions)
        attrs["alpha"] = float(np.float32(o.Alpha() if o is not None else 0.0))
    r.emit("lut", f"{y}::{attrs['kind']}", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [y],
           attrs, f"{key[0]} (operator {key[1]})")


def _lower_transpose_conv(r, key, op, ins, outs):
    """TRANSPOSE_CONV (inputs: output_shape, weights, input[, bias]): pads as
    transpose_conv.cc ResizeAndTransposeWeights/Prepare computes them, ComputePaddingHeightWidth
    with the roles of input and output swapped: SAME total = max((ceil(out / s) - 1)*s + k - out, 0),
    the smaller half before (a negative total counts as 0: attr pad_clamped); VALID 0."""
    o = r.options(op, r.tfl.TransposeConvOptions)
    shape_in, w, x = ins[0], ins[1], ins[2]
    b = ins[3] if len(ins) > 3 else ""
    y = outs[0]
    if w not in r.constants:
        raise r.refuse(key, f"weights '{w}' are not constant")
    xs, ys, wt = r.tensors[x].shape, r.tensors[y].shape, r.constants[w]
    if len(xs) != 4 or len(ys) != 4 or wt.ndim != 4:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): input, weights and output must be 4-D")
    if shape_in in r.constants and [int(v) for v in r.constants[shape_in].reshape(-1)][1:] != list(ys[1:]):
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): output_shape {r.constants[shape_in].tolist()} "
                                f"differs from output '{y}' {list(ys)}")
    strides = [int(o.StrideH()), int(o.StrideW())] if o is not None else [1, 1]
    if min(strides) < 1:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): strides {strides} must be >= 1")
    same = o is not None and o.Padding() == r.tfl.Padding.SAME
    pads, raw = [], []
    for out, k, s in zip(ys[1:3], wt.shape[1:3], strides):
        raw.append((-(-out // s) - 1) * s + k - out if same else 0)
        pads.append(max(raw[-1], 0) // 2)
    act = o.FusedActivationFunction() if o is not None else 0
    r.emit("transpose_conv", f"{y}::transpose_conv",
           [x, *r.scale_zp(x, "input", key), w, *r.scale_zp(w, "weights", key), *r.scale_zp(y, "output", key), b],
           [y], {"strides": tuple(strides), "pads": tuple(pads), "out_hw": tuple(int(v) for v in ys[1:3]),
                 "out_type": r.tensors[y].dtype, **_act(r, key, act, y),
                 # SAME padding TFLite clamped up from a negative total (kernel smaller than stride)
                 "pad_clamped": min(raw) < 0}, f"{key[0]} (operator {key[1]})")


def _lower_batch_matmul(r, key, op, ins, outs):
    o = r.options(op, r.tfl.BatchMatMulOptions)
    a, b, y = ins[0], ins[1], outs[0]
    origin = f"{key[0]} (operator {key[1]})"
    ranks = [len(r.tensors[t].shape) for t in (a, b, y)]
    if min(ranks) < 2:
        raise InvalidModelError(f"{origin}: operands and output must have rank >= 2, got ranks {ranks}")
    if o is not None and o.AdjX():
        shape = r.tensors[a].shape
        perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
        a = r.transpose(a, perm, origin, "adj_x")
    t = r.tensors[y].dtype
    r.emit("matmul", f"{y}::batch_matmul", [a, *r.scale_zp(a, "input", key), b, *r.scale_zp(b, "input", key),
                                          *r.scale_zp(y, "output", key), ""], [y],
           {"out_type": t, "requant": True, "lo": t.qmin, "hi": t.qmax, "transA": 0,
            "transB": int(bool(o.AdjY())) if o is not None else 0, "alpha": 1.0, "batch_matmul": True,
            # the right operand's zero points are all 0 (XNNPACK takes only such a BATCH_MATMUL)
            "symmetric_b": bool(r.tensors[b].qparams is not None and not r.tensors[b].qparams.zero_point.any())},
           origin)


def _lower_prelu(r, key, op, ins, outs):
    """PRELU; int16 input takes int8 alpha (16x8): an int16 alpha is refused, the interpreter
    reads its buffer as int8 bytes (activations.cc PreluEval for int16; measured on every path)."""
    x, alpha, y = ins[0], ins[1], outs[0]
    if r.tensors[x].dtype.bits == 16 and r.tensors[alpha].dtype.bits != 8:
        raise r.refuse(key, f"alpha '{alpha}' is {r.tensors[alpha].dtype}: TFLite's int16 PRELU reads alpha as int8 "
                            f"bytes (an interpreter defect, measured), so only int8 alpha is modelled")
    r.emit("prelu", f"{y}::prelu", [x, *r.scale_zp(x, "input", key), alpha, *r.scale_zp(alpha, "alpha", key),
                                    *r.scale_zp(y, "output", key)], [y],
           {"out_type": r.tensors[y].dtype}, f"{key[0]} (operator {key[1]})")


def _lower_softmax(r, key, op, ins, outs):
    o = r.options(op, r.tfl.SoftmaxOptions)
    x, y = ins[0], outs[0]
    if not r.tensors[x].shape:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): input '{x}' must have rank >= 1")
    r.emit("softmax", f"{y}::softmax", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)], [y],
           {"axis": -1, "opset": 13, "out_type": r.tensors[y].dtype,
            "beta": float(np.float32(o.Beta() if o is not None else 1.0))}, f"{key[0]} (operator {key[1]})")


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """The source index of each output row (column) of TFLite's RESIZE_NEAREST_NEIGHBOR
    (reference_ops::GetNearestNeighbor, float32): scale = in / out (align_corners and out > 1:
    (in - 1) / (out - 1)); v = (o + (half_pixel ? 0.5 : 0)) * scale; index = min(align_corners ?
    round_half_away(v) : floor(v), in - 1), and >= 0 with half_pixel."""
    f = np.float32
    scale = f(in_size - 1) / f(out_size - 1) if align_corners and out_size > 1 else f(in_size) / f(out_size)
    v = ((np.arange(out_size, dtype=np.float32) + f(0.5 if half_pixel else 0.0)) * f(scale)).astype(np.float32)
    v64 = v.astype(np.float64)
    idx = np.copysign(np.floor(np.abs(v64) + 0.5), v64) if align_corners else np.floor(v64)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    return np.maximum(idx, 0) if half_pixel else idx


def _lower_resize(r, key, op, ins, outs, bilinear: bool):
    o = r.options(op, r.tfl.ResizeBilinearOptions if bilinear else r.tfl.ResizeNearestNeighborOptions)
    x, size, y = ins[0], ins[1], outs[0]
    xs, ys = r.tensors[x].shape, r.tensors[y].shape
    if len(xs) != 4 or len(ys) != 4:
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): input and output must be 4-D NHWC")
    if size not in r.constants:
        raise r.refuse(key, f"size '{size}' is not constant")
    hw = [int(v) for v in np.asarray(r.constants[size]).reshape(-1)]
    if hw != list(ys[1:3]):
        raise InvalidModelError(f"{key[0]} (operator {key[1]}): size {hw} differs from output '{y}' {list(ys)}")
    qx, qy = r.tensors[x].qparams, r.tensors[y].qparams
    if qx is None or qy is None or not qx.same_as(qy):
        raise r.refuse(key, "input and output quantization differ")
    align = bool(o.AlignCorners()) if o is not None else False
    half = bool(o.HalfPixelCenters()) if o is not None else False
    origin = f"{key[0]} (operator {key[1]})"
    if bilinear:
        r.emit("resize_bilinear", f"{y}::resize", [x, *r.scale_zp(x, "input", key), *r.scale_zp(y, "output", key)],
               [y], {"out_type": r.tensors[y].dtype, "size": tuple(hw), "align_corners": align,
                     "half_pixel_centers": half}, origin)
        return
    rows = r.derived(f"{y}::rows", x, [xs[0], hw[0], xs[2], xs[3]])
    r.onnx_node("Gather", [x, r.const(f"{y}::row_index", nearest_indices(xs[1], hw[0], align, half))], rows, origin,
                axis=1)
    r.onnx_node("Gather", [rows, r.const(f"{y}::col_index", nearest_indices(xs[2], hw[1], align, half))], y, origin,
                axis=2)


_LOWERINGS = {
    "CONV_2D": lambda r, k, op, i, o: _lower_conv(r, k, op, i, o, False),
    "DEPTHWISE_CONV_2D": lambda r, k, op, i, o: _lower_conv(r, k, op, i, o, True),
    "FULLY_CONNECTED": _lower_fc,
    "ADD": lambda r, k, op, i, o: _lower_binary(r, k, op, i, o, "add"),
    "MUL": lambda r, k, op, i, o: _lower_binary(r, k, op, i, o, "mul"),
    "SUB": lambda r, k, op, i, o: _lower_binary(r, k, op, i, o, "sub"),
    "AVERAGE_POOL_2D": lambda r, k, op, i, o: _lower_pool(r, k, op, i, o, "avg"),
    "MAX_POOL_2D": lambda r, k, op, i, o: _lower_pool(r, k, op, i, o, "max"),
    "MEAN": _lower_mean,
    "SUM": _lower_sum,
    "CONCATENATION": _lower_concat,
    "RESHAPE": _lower_reshape, "SQUEEZE": _lower_reshape, "EXPAND_DIMS": _lower_reshape,
    "QUANTIZE": _lower_quantize,
    "PAD": _lower_pad, "PADV2": _lower_pad,
    "DEQUANTIZE": _lower_dequantize,
    "PRELU": _lower_prelu,
    "TRANSPOSE_CONV": _lower_transpose_conv,
    "BATCH_MATMUL": _lower_batch_matmul,
    "SOFTMAX": _lower_softmax,
    "RESIZE_NEAREST_NEIGHBOR": lambda r, k, op, i, o: _lower_resize(r, k, op, i, o, False),
    "RESIZE_BILINEAR": lambda r, k, op, i, o: _lower_resize(r, k, op, i, o, True),
    **MOVEMENT_LOWERINGS,
    **{n: (lambda n: lambda r, k, op, i, o: _lower_activation(r, k, op, i, o, n))(n)
       for n in ("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "LOGISTIC", "TANH", "HARD_SWISH")},
}


# int16 builtins the interpreter (ai-edge-litert 2.3, every kernel path) fails to invoke
_INT16_FAILS = {"RELU_N1_TO_1": "Relu1Eval", "HARD_SWISH": "HardSwishEval"}


def import_tflite(source) -> Graph:
    """A TFLite flatbuffer (path or bytes) as an intsim IR Graph (first subgraph). A corrupt
    flatbuffer (offsets outside the file, bad enum values) is an InvalidModelError."""
    r = _Reader(_read(source))
    try:
        return _import(r)
    except (struct.error, TypeError, IndexError, KeyError, ValueError, UnicodeDecodeError, OverflowError) as e:
        raise InvalidModelError(f"not a valid TFLite file (corrupt flatbuffer): {type(e).__name__}: "
                                f"{str(e)[:120]}") from None


def _import(r: _Reader) -> Graph:
    sg = r.sg
    inputs = [r.declare(int(i)) for i in sg.InputsAsNumpy()]
    for idx in range(sg.OperatorsLength()):
        op = sg.Operators(idx)
        code = r.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        name = r.op_names.get(builtin, f"builtin {builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM {code.CustomCode().decode('utf-8', 'replace') if code.CustomCode() else '?'}"
        ins, outs = _io(r, op)
        key = (name, idx, outs[0] if outs else "?")
        fn = _LOWERINGS.get(name)
        if fn is None:
            raise r.refuse(key, f"TFLite builtin {name} is not supported")
        if name in _INT16_FAILS:
            wide = [t for t in ins + outs if t and isinstance(r.tensors[t].dtype, IntType)
                    and r.tensors[t].dtype.bits == 16]
            if wide:
                raise r.refuse(key, f"tensor '{wide[0]}' is int16: TFLite's {_INT16_FAILS[name]} takes float32, uint8 "
                                    f"and int8 only (the interpreter fails to invoke it on int16)")
        try:
            fn(r, key, op, ins, outs)
        except QuantParamError as e:
            raise QuantParamError(f"{name} (operator {idx}): {e}") from None
    outputs = [r.tensor_name(int(i)) for i in sg.OutputsAsNumpy()]
    for o in outputs:
        if o not in r.tensors:
            raise InvalidModelError(f"graph output '{o}' is not produced by any operator")
    raw = sg.Name()
    return Graph(r.tensors, tuple(r.nodes), tuple(inputs), tuple(outputs), r.constants,
                 name=raw.decode("utf-8", "replace") if raw else "tflite", opset=ONNX_OPSET)


def int16_modelled(builtin: str) -> bool:
    """The reader takes TFLite builtin `builtin` (a BuiltinOperator name) on int16 tensors,
    rather than refusing it by name; passes/qdq_tflite.py fuses tf2onnx's 16-bit patterns of
    exactly those ops."""
    return builtin not in _INT16_FAILS
