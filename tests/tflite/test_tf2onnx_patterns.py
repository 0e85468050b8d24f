"""QDQ fusion policy "tflite" (passes/qdq_tflite.py): each tf2onnx pattern, written by hand as
tf2onnx writes it (int8 NHWC graph input and output, Transposes around NCHW ops, DQ -> op -> Q),
next to the one-op .tflite it stands for with the same scales and zero points (hypothesis-drawn).
Under each `tflite*` target the .onnx equals the interpreter on the .tflite (ai-edge-litert, the
kernel path the target models) wherever the target computes the .tflite's op, and is refused
by name where it refuses it: the fused node takes the reader's op's rule."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.ir import IntType
from intsim.targets.rules import TargetRefusal
from kernels import tflite_act as tk

from .flatbuf import binary_options, conv_options, leaky_relu_options, reducer_options, single_op, table_options

pytest.importorskip("ai_edge_litert")
from models.build_tflite import interpreter  # noqa: E402

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scales = st.floats(2.0**-10, 0.5, allow_nan=False, allow_infinity=False, width=32)
zps = st.sampled_from([-128, 127, 0]) | st.integers(-128, 127)
KERNEL_PATHS = [("reference", "tflite"), ("builtin", "tflite-builtin"), ("xnnpack", "tflite-xnnpack")]
paths = pytest.mark.parametrize("path", KERNEL_PATHS, ids=[p for p, _ in KERNEL_PATHS])
_ELEM = {np.int8: TensorProto.INT8, np.int16: TensorProto.INT16, np.uint8: TensorProto.UINT8}
NCHW, NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class Onnx:
    """A QDQ graph as tf2onnx writes it, built node by node."""

    def __init__(self):
        self.nodes, self.inits, self.inputs, self.k = [], [], [], 0

    def const(self, value, dtype=None) -> str:
        self.k += 1
        name = f"c{self.k}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, ins, **attrs) -> str:
        self.k += 1
        out = f"t{self.k}"
        self.nodes.append(helper.make_node(op, list(ins), [out], name=out, **attrs))
        return out

    def input(self, name, shape, dtype=np.int8) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, _ELEM[dtype], list(shape)))
        return name

    def dq(self, x, s, z, dtype=np.int8, axis=None) -> str:
        extra = {} if axis is None else {"axis": axis}
        return self.node("DequantizeLinear", [x, self.const(s, np.float32), self.const(z, dtype)], **extra)

    def q(self, x, s, z, dtype=np.int8) -> str:
        return self.node("QuantizeLinear", [x, self.const(s, np.float32), self.const(z, dtype)])

    def model(self, y, shape, dtype=np.int8) -> bytes:
        self.nodes.append(helper.make_node("Identity", [y], ["y"], name="y"))
        g = helper.make_graph(self.nodes, "pattern", self.inputs,
                              [helper.make_tensor_value_info("y", _ELEM[dtype], list(shape))], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)]).SerializeToString()


def check(tfl: bytes, onnx: bytes, feeds: list, path, warns: str = ""):
    """The .onnx under path's target equals the interpreter on the .tflite (feeds: lists of input
    arrays, in the models' input order), or both forms are refused by name. Loading the .onnx
    warns of nothing (but `warns`, a message part) and leaves no float island: every `onnx`
    node writes integers."""
    kind, target = path
    try:
        ref = intsim.load(tfl, target=target)
        ref.run(dict(zip(ref.graph.inputs, feeds[0])))
    except TargetRefusal:
        with pytest.raises(TargetRefusal, match=f"target {target} has no rule for"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = intsim.load(onnx, target=target)
            prog.run(dict(zip(prog.graph.inputs, feeds[0])))
        return
    it = interpreter(tfl, kind)
    try:
        it.allocate_tensors()
    except RuntimeError as e:     # XNNPACK refuses requantization scales >= 256: no oracle there
        if kind == "xnnpack" and "XNNPACK" in str(e):
            return
        raise
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        prog = intsim.load(onnx, target=target)
    assert [str(w.message) for w in seen if not warns or warns not in str(w.message)] == []
    g = prog.graph
    assert [n.name for n in g.nodes if n.op == "onnx" and not all(isinstance(g.tensors[o].dtype, IntType)
                                                                 for o in n.outputs)] == []
    for feed in feeds:
        for d, x in zip(it.get_input_details(), feed):
            it.set_tensor(d["index"], x)
        it.invoke()
        want = it.get_tensor(it.get_output_details()[0]["index"])
        got = prog.run(dict(zip(prog.graph.inputs, feed)))["y"]
        np.testing.assert_array_equal(got.reshape(want.shape), want)


def _i8(rng, shape):
    v = rng.integers(-128, 128, shape)
    v.reshape(-1)[:2] = [-128, 127][:v.size]
    return v.astype(np.int8)


def _one(op, shape, sx, zx, sy, zy, options=None, out_shape=None):
    tensors = [{"name": "x", "shape": shape, "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "y", "shape": out_shape or shape, "type": "int8", "scale": sy, "zero_point": zy}]
    return single_op(op, tensors, [0], [1], [0], options)


_ONNX_ACT = {"TANH": ("Tanh", {}), "HARD_SWISH": ("HardSwish", {}), "RELU": ("Relu", {}),
             "RELU6": ("Clip", (0.0, 6.0)), "RELU_N1_TO_1": ("Clip", (-1.0, 1.0)), "LOGISTIC": ("Sigmoid", {}),
             "LEAKY_RELU": ("LeakyRelu", {}), "SOFTMAX": ("Softmax", {})}


@paths
@settings(SETTINGS, max_examples=80)
@given(op=st.sampled_from(sorted(_ONNX_ACT)), shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), sx=scales,
       zx=zps, sy=scales, zy=zps, alpha=st.floats(0.0, 1.0, width=32), seed=st.integers(0, 2**31 - 1))
def test_activation(path, op, shape, sx, zx, sy, zy, alpha, seed):
    """DQ -> Tanh / HardSwish / Relu / Clip(0, 6) / Clip(-1, 1) / Sigmoid / LeakyRelu / Softmax
    (last axis) -> Q: TANH, HARD_SWISH, RELU, RELU6, RELU_N1_TO_1, LOGISTIC, LEAKY_RELU, SOFTMAX (the
    converter's fixed output quantization for TANH 1/128, 0, for LOGISTIC and SOFTMAX 1/256, -128)."""
    if op == "TANH":
        sy, zy = 1 / 128, 0
    if op in ("LOGISTIC", "SOFTMAX"):
        sy, zy = 1 / 256, -128
    if op == "HARD_SWISH":
        try:
            tk.hard_swish_params(sx, sy)
        except ValueError:
            assume(False)
    b = Onnx()
    x = b.dq(b.input("x", shape), sx, zx)
    onnx_op, bounds = _ONNX_ACT[op]
    y = b.node(onnx_op, [x] + ([b.const(bounds[0], np.float32), b.const(bounds[1], np.float32)] if bounds else []),
               **({"alpha": float(alpha)} if op == "LEAKY_RELU" else {}))
    rng = np.random.default_rng(seed)
    options = leaky_relu_options(alpha) if op == "LEAKY_RELU" else \
        table_options("SoftmaxOptions", Beta=1.0) if op == "SOFTMAX" else None
    check(_one(op, shape, sx, zx, sy, zy, options), b.model(b.q(y, sy, zy), shape), [[_i8(rng, shape)] for _ in range(2)], path)


@paths
@settings(SETTINGS, max_examples=80)
@given(op=st.sampled_from(["ADD", "SUB", "MUL"]), shape=st.lists(st.integers(1, 5), min_size=4, max_size=4),
       sa=scales, za=zps, sb=scales, zb=zps, sy=scales, zy=zps, act=st.sampled_from([0, 1, 3]),
       seed=st.integers(0, 2**31 - 1))
def test_binary(path, op, shape, sa, za, sb, zb, sy, zy, act, seed):
    """DQ -> Add / Sub / Mul [-> Relu / Clip(0, 6)] -> Q: ADD, SUB, MUL with the fused activation."""
    tensors = [{"name": "a", "shape": shape, "type": "int8", "scale": sa, "zero_point": za},
               {"name": "b", "shape": shape, "type": "int8", "scale": sb, "zero_point": zb},
               {"name": "y", "shape": shape, "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op(op, tensors, [0, 1], [2], [0, 1], binary_options(op, act), version=2)
    b = Onnx()
    a_, b_ = b.dq(b.input("a", shape), sa, za), b.dq(b.input("b", shape), sb, zb)
    y = b.node(op.capitalize(), [a_, b_])
    if act == 1:
        y = b.node("Relu", [y])
    elif act == 3:
        y = b.node("Clip", [y, b.const(0.0, np.float32), b.const(6.0, np.float32)])
    rng = np.random.default_rng(seed)
    try:
        check(tfl, b.model(b.q(y, sy, zy), shape), [[_i8(rng, shape), _i8(rng, shape)] for _ in range(2)], path)
    except RuntimeError as e:     # the interpreter's own prepare refuses some drawn scales
        assume("failed to prepare" not in str(e).lower() and "ensure" not in str(e).lower())
        raise


@paths
@SETTINGS
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 4), keep=st.booleans(), sx=scales, zx=zps,
       sy=scales, zy=zps, nchw=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_reduce_mean(path, h, w, c, keep, sx, zx, sy, zy, nchw, seed):
    """DQ -> ReduceMean over H, W (NHWC axes [1, 2], or [2, 3] after a Transpose to NCHW) -> Q: MEAN."""
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "axes", "shape": [2], "type": "int32", "data": np.array([1, 2], np.int32)},
               {"name": "y", "shape": [1, 1, 1, c] if keep else [1, c], "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op("MEAN", tensors, [0], [2], [0, 1], reducer_options(keep))
    b = Onnx()
    x = b.input("x", [1, h, w, c])
    if nchw:
        x = b.node("Transpose", [x], perm=NCHW)
    y = b.q(b.node("ReduceMean", [b.dq(x, sx, zx)], axes=[2, 3] if nchw else [1, 2], keepdims=int(keep)), sy, zy)
    if nchw and keep:
        y = b.node("Transpose", [y], perm=NHWC)
    rng = np.random.default_rng(seed)
    check(tfl, b.model(y, [1, 1, 1, c] if keep else [1, c]), [[_i8(rng, (1, h, w, c))] for _ in range(2)], path)


@paths
@SETTINGS
@given(h=st.integers(1, 5), w=st.integers(1, 5), ci=st.integers(1, 4), co=st.integers(1, 4), k=st.integers(1, 4),
       stride=st.integers(1, 3), sx=scales, zx=zps, sy=scales, zy=zps, per_tensor=st.booleans(), bias=st.booleans(),
       act=st.sampled_from([0, 1, 3]), seed=st.integers(0, 2**31 - 1))
def test_transpose_conv(path, h, w, ci, co, k, stride, sx, zx, sy, zy, per_tensor, bias, act, seed):
    """DQ -> ConvTranspose (pads as tf2onnx writes TFLite's SAME: total = k - stride, the smaller
    half first, out = in * stride) [-> Relu / Clip] -> Q: TRANSPOSE_CONV."""
    assume(k >= stride)
    rng = np.random.default_rng(seed)
    oh, ow = h * stride, w * stride
    sw = rng.uniform(1e-4, 0.05, 1 if per_tensor else co).astype(np.float32)
    wt = rng.integers(-127, 128, (co, k, k, ci)).astype(np.int8)
    bt = rng.integers(-2**12, 2**12, co).astype(np.int32)
    tensors = [{"name": "output_shape", "shape": [4], "type": "int32", "data": np.array([1, oh, ow, co], np.int32)},
               {"name": "w", "shape": [co, k, k, ci], "type": "int8", "data": wt, "scale": sw,
                "zero_point": [0] * sw.size, "quantized_dimension": 0},
               {"name": "x", "shape": [1, h, w, ci], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "y", "shape": [1, oh, ow, co], "type": "int8", "scale": sy, "zero_point": zy}]
    op_inputs = [0, 1, 2]
    if bias:
        tensors.append({"name": "bias", "shape": [co], "type": "int32", "data": bt,
                        "scale": (np.float32(sx) * sw).astype(np.float32), "zero_point": [0] * sw.size})
        op_inputs.append(4)
    tfl = single_op("TRANSPOSE_CONV", tensors, [2], [3], op_inputs,
                    table_options("TransposeConvOptions", Padding=0, StrideH=stride, StrideW=stride,
                                  FusedActivationFunction=act), version=4)
    b = Onnx()
    x = b.dq(b.node("Transpose", [b.input("x", [1, h, w, ci])], perm=NCHW), sx, zx)
    wq = b.dq(b.const(wt.transpose(3, 0, 1, 2)), sw if not per_tensor else sw[0], np.zeros(sw.size if not per_tensor
                                                                                             else (), np.int8),
              axis=None if per_tensor else 1)
    ins = [x, wq]
    if bias:
        ins.append(b.node("DequantizeLinear", [b.const(bt), b.const((np.float32(sx) * sw).astype(np.float32)
                                                                     if not per_tensor else np.float32(sx) * sw[0]),
                                                b.const(np.zeros(sw.size if not per_tensor else (), np.int32))],
                          **({} if per_tensor else {"axis": 0})))
    total = k - stride
    y = b.node("ConvTranspose", ins, strides=[stride, stride], kernel_shape=[k, k],
               pads=[total // 2, total // 2, total - total // 2, total - total // 2])
    if act:
        y = b.node("Relu", [y]) if act == 1 else b.node("Clip", [y, b.const(0.0, np.float32), b.const(6.0, np.float32)])
    y = b.node("Transpose", [b.q(y, sy, zy)], perm=NHWC)
    check(tfl, b.model(y, [1, oh, ow, co]), [[_i8(rng, (1, h, w, ci))] for _ in range(2)], path)


@paths
@SETTINGS
@given(batch=st.lists(st.integers(1, 3), min_size=1, max_size=2), m=st.integers(1, 5), k=st.integers(1, 20),
       n=st.integers(1, 5), sa=scales, za=zps, sb=scales, zb=st.sampled_from([0, 0, 5, -128]), sy=scales, zy=zps,
       seed=st.integers(0, 2**31 - 1))
def test_batch_matmul(path, batch, m, k, n, sa, za, sb, zb, sy, zy, seed):
    """DQ(a) x DQ(b) -> MatMul -> Q with two activations: BATCH_MATMUL (XNNPACK takes it only with
    b's zero point 0)."""
    a_shape, b_shape = batch + [m, k], batch + [k, n]
    tensors = [{"name": "a", "shape": a_shape, "type": "int8", "scale": sa, "zero_point": za},
               {"name": "b", "shape": b_shape, "type": "int8", "scale": sb, "zero_point": zb},
               {"name": "y", "shape": batch + [m, n], "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op("BATCH_MATMUL", tensors, [0, 1], [2], [0, 1], table_options("BatchMatMulOptions"), version=4)
    b = Onnx()
    y = b.node("MatMul", [b.dq(b.input("a", a_shape), sa, za), b.dq(b.input("b", b_shape), sb, zb)])
    rng = np.random.default_rng(seed)
    check(tfl, b.model(b.q(y, sy, zy), batch + [m, n]), [[_i8(rng, a_shape), _i8(rng, b_shape)] for _ in range(2)], path)


# tf2onnx's Resize attributes (onnx_opset/nn.py) for TFLite's RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR
# by (align_corners, half_pixel_centers): (mode, coordinate_transformation_mode, nearest_mode); the
# importer rewrites tf_half_pixel_for_nn (not in opset 13+) with a warning
_RESIZE = {("RESIZE_BILINEAR", False, False): ("linear", "asymmetric", "floor"),
           ("RESIZE_BILINEAR", True, False): ("linear", "align_corners", "round_prefer_ceil"),
           ("RESIZE_BILINEAR", False, True): ("linear", "half_pixel", "floor"),
           ("RESIZE_NEAREST_NEIGHBOR", False, False): ("nearest", "asymmetric", "floor"),
           ("RESIZE_NEAREST_NEIGHBOR", True, False): ("nearest", "align_corners", "round_prefer_ceil"),
           ("RESIZE_NEAREST_NEIGHBOR", False, True): ("nearest", "tf_half_pixel_for_nn", "floor")}


@paths
@SETTINGS
@given(h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 3), oh=st.integers(1, 13), ow=st.integers(1, 13),
       case=st.sampled_from(sorted(_RESIZE)), s=scales, z=zps, seed=st.integers(0, 2**31 - 1))
def test_resize(path, h, w, c, oh, ow, case, s, z, seed):
    """DQ -> Resize linear / nearest (sizes) -> Q of equal quantization, as tf2onnx writes them:
    RESIZE_BILINEAR (policy "tflite"), RESIZE_NEAREST_NEIGHBOR (codes moved)."""
    op, align, half = case
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int8", "scale": s, "zero_point": z},
               {"name": "size", "shape": [2], "type": "int32", "data": np.array([oh, ow], np.int32)},
               {"name": "y", "shape": [1, oh, ow, c], "type": "int8", "scale": s, "zero_point": z}]
    options = "ResizeBilinearOptions" if op == "RESIZE_BILINEAR" else "ResizeNearestNeighborOptions"
    tfl = single_op(op, tensors, [0], [2], [0, 1], table_options(options, AlignCorners=align, HalfPixelCenters=half),
                    version=3)
    b = Onnx()
    x = b.dq(b.node("Transpose", [b.input("x", [1, h, w, c])], perm=NCHW), s, z)
    mode, ctm, nearest = _RESIZE[case]
    y = b.node("Resize", [x, "", "", b.const(np.array([1, c, oh, ow], np.int64))], mode=mode,
               coordinate_transformation_mode=ctm, nearest_mode=nearest)
    y = b.node("Transpose", [b.q(y, s, z)], perm=NHWC)
    rng = np.random.default_rng(seed)
    check(tfl, b.model(y, [1, oh, ow, c]), [[_i8(rng, (1, h, w, c))] for _ in range(2)], path,
          warns="tf_half_pixel_for_nn")


@paths
@SETTINGS
@given(rows=st.integers(1, 4), k=st.integers(1, 12), n=st.integers(1, 5), sx=scales, zx=zps, sy=scales, zy=zps,
       seed=st.integers(0, 2**31 - 1))
def test_matmul_add_bias_is_fully_connected(path, rows, k, n, sx, zx, sy, zy, seed):
    """tf2onnx's FULLY_CONNECTED of a rank-3 input (keep_num_dims): DQ -> MatMul(constant
    per-channel weights) -> Add(DQ int32 bias) -> Q."""
    rng = np.random.default_rng(seed)
    sw = rng.uniform(1e-4, 0.05, n).astype(np.float32)
    wt = rng.integers(-127, 128, (n, k)).astype(np.int8)
    bt = rng.integers(-2**12, 2**12, n).astype(np.int32)
    bs = (np.float32(sx) * sw).astype(np.float32)
    tensors = [{"name": "x", "shape": [1, rows, k], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "w", "shape": [n, k], "type": "int8", "data": wt, "scale": sw, "zero_point": [0] * n},
               {"name": "bias", "shape": [n], "type": "int32", "data": bt, "scale": bs, "zero_point": [0] * n},
               {"name": "y", "shape": [1, rows, n], "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op("FULLY_CONNECTED", tensors, [0], [3], [0, 1, 2],
                    table_options("FullyConnectedOptions", KeepNumDims=True), version=5)
    b = Onnx()
    mm = b.node("MatMul", [b.dq(b.input("x", [1, rows, k]), sx, zx),
                           b.dq(b.const(wt.T.copy()), sw, np.zeros(n, np.int8), axis=1)])
    y = b.node("Add", [mm, b.dq(b.const(bt), bs, np.zeros(n, np.int32), axis=0)])
    check(tfl, b.model(b.q(y, sy, zy), [1, rows, n]), [[_i8(rng, (1, rows, k))] for _ in range(2)], path)


@paths
@SETTINGS
@given(h=st.integers(1, 5), w=st.integers(1, 5), c=st.integers(1, 4), o=st.integers(1, 4), k=st.integers(1, 3),
       sx=st.floats(2.0**-20, 2.0**-8, width=32), sy=st.floats(2.0**-20, 2.0**-8, width=32),
       seed=st.integers(0, 2**31 - 1))
def test_16x8_conv_int64_bias(path, h, w, c, o, k, sx, sy, seed):
    """16x8 Conv whose bias DequantizeLinear is int64 (tf2onnx's form of TFLite's 16x8 bias):
    the 16x8 CONV_2D rule (XNNPACK does not take int16: the interpreter runs its builtin kernel)."""
    assume(k <= min(h, w))
    rng = np.random.default_rng(seed)
    sw = rng.uniform(1e-4, 0.05, o).astype(np.float32)
    wt = rng.integers(-127, 128, (o, k, k, c)).astype(np.int8)
    bs = (np.float32(sx) * sw).astype(np.float32)
    bt = rng.integers(-2**20, 2**20, o).astype(np.int64)
    oh, ow = h - k + 1, w - k + 1
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int16", "scale": sx, "zero_point": 0},
               {"name": "w", "shape": [o, k, k, c], "type": "int8", "data": wt, "scale": sw, "zero_point": [0] * o},
               {"name": "bias", "shape": [o], "type": "int64", "data": bt, "scale": bs, "zero_point": [0] * o},
               {"name": "y", "shape": [1, oh, ow, o], "type": "int16", "scale": sy, "zero_point": 0}]
    tfl = single_op("CONV_2D", tensors, [0], [3], [0, 1, 2], conv_options((1, 1), 1), version=4)      # VALID
    b = Onnx()
    x = b.dq(b.node("Transpose", [b.input("x", [1, h, w, c], np.int16)], perm=NCHW), sx, 0, np.int16)
    wq = b.dq(b.const(wt.transpose(0, 3, 1, 2).copy()), sw, np.zeros(o, np.int8), axis=0)
    bq = b.node("DequantizeLinear", [b.const(bt), b.const(bs), b.const(np.zeros(o, np.int64))], axis=0)
    y = b.node("Conv", [x, wq, bq], kernel_shape=[k, k])
    y = b.node("Transpose", [b.q(y, sy, 0, np.int16)], perm=NHWC)
    feeds = [[rng.integers(-32768, 32768, (1, h, w, c)).astype(np.int16)] for _ in range(2)]
    check(tfl, b.model(y, [1, oh, ow, o], np.int16), feeds, path)


@paths
@SETTINGS
@given(h=st.integers(1, 5), w=st.integers(1, 5), c=st.integers(1, 4), o=st.integers(1, 4), sx=scales, zx=zps,
       sy=scales | st.sampled_from([12.0, 4.0, 12.0 / 5]), zy=zps, act=st.sampled_from([1, 2, 3]),
       seed=st.integers(0, 2**31 - 1))
def test_conv_fused_activation(path, h, w, c, o, sx, zx, sy, zy, act, seed):
    """DQ -> Conv -> Relu / Clip(-1, 1) / Clip(0, 6) -> Q: CONV_2D with its fused activation, the
    bounds rounded by the target as for the .tflite (ties: sy = 12 puts 6 / sy at 0.5)."""
    rng = np.random.default_rng(seed)
    sw = rng.uniform(1e-4, 0.05, o).astype(np.float32)
    wt = rng.integers(-127, 128, (o, 1, 1, c)).astype(np.int8)
    bs = (np.float32(sx) * sw).astype(np.float32)
    bt = rng.integers(-2**12, 2**12, o).astype(np.int32)
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "w", "shape": [o, 1, 1, c], "type": "int8", "data": wt, "scale": sw, "zero_point": [0] * o},
               {"name": "bias", "shape": [o], "type": "int32", "data": bt, "scale": bs, "zero_point": [0] * o},
               {"name": "y", "shape": [1, h, w, o], "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op("CONV_2D", tensors, [0], [3], [0, 1, 2], conv_options((1, 1), 1, act), version=3)
    b = Onnx()
    x = b.dq(b.node("Transpose", [b.input("x", [1, h, w, c])], perm=NCHW), sx, zx)
    wq = b.dq(b.const(wt.transpose(0, 3, 1, 2).copy()), sw, np.zeros(o, np.int8), axis=0)
    y = b.node("Conv", [x, wq, b.dq(b.const(bt), bs, np.zeros(o, np.int32), dtype=np.int32, axis=0)],
               kernel_shape=[1, 1])
    bounds = {1: None, 2: (-1.0, 1.0), 3: (0.0, 6.0)}[act]
    y = b.node("Relu", [y]) if bounds is None else \
        b.node("Clip", [y, b.const(bounds[0], np.float32), b.const(bounds[1], np.float32)])
    y = b.node("Transpose", [b.q(y, sy, zy)], perm=NHWC)
    try:
        check(tfl, b.model(y, [1, h, w, o]), [[_i8(rng, (1, h, w, c))] for _ in range(2)], path)
    except Exception as e:   # the drawn output range leaves the activation no code (TFLite refuses it too)
        assume("fused activation range" not in str(e))
        raise


@paths
@SETTINGS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       pair=st.sampled_from([("int8", "int8"), ("int16", "int16"), ("int8", "uint8"), ("uint8", "int8"),
                             ("int16", "int8"), ("int8", "int16")]),
       sx=scales, zx=zps, sy=scales, zy=zps, seed=st.integers(0, 2**31 - 1))
def test_dequantize_quantize_is_requantize(path, shape, pair, sx, zx, sy, zy, seed):
    """DQ -> Q of codes to another scale: QUANTIZE of integer input, one type (int8, or int16
    with zero points 0, as in act_16x8) or another (int8 <-> uint8, int16 -> int8, int8 -> int16)."""
    assume(np.float32(sx) != np.float32(sy))
    src, dst = (np.dtype(t).type for t in pair)
    zx, zy = ((z + 128 if d == np.uint8 else 0 if d == np.int16 else z) for z, d in ((zx, src), (zy, dst)))
    tensors = [{"name": "x", "shape": shape, "type": pair[0], "scale": sx, "zero_point": zx},
               {"name": "y", "shape": shape, "type": pair[1], "scale": sy, "zero_point": zy}]
    b = Onnx()
    y = b.q(b.dq(b.input("x", shape, src), sx, zx, src), sy, zy, dst)
    rng = np.random.default_rng(seed)
    info = np.iinfo(src)
    feeds = [[rng.integers(info.min, info.max + 1, shape).astype(src)] for _ in range(2)]
    onnx = b.model(y, shape, dst)
    assert [n.attrs.get("kind") for n in intsim.load(onnx, target=path[1]).graph.nodes if n.op != "onnx"] == \
        ["requantize"]
    check(single_op("QUANTIZE", tensors, [0], [1], [0]), onnx, feeds, path)


@paths
@SETTINGS
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 40), keep=st.booleans(), sx=scales, zx=zps,
       sy=scales, zy=zps, seed=st.integers(0, 2**31 - 1))
def test_global_average_pool_keep_dims(path, h, w, c, keep, sx, zx, sy, zy, seed):
    """DQ -> GlobalAveragePool -> Q [-> Squeeze [2, 3]]: MEAN over H, W with keep_dims, or without
    it where the Squeeze follows (tf2onnx's form of mean_fc), which selects tflite-builtin's kernel."""
    tensors = [{"name": "x", "shape": [1, h, w, c], "type": "int8", "scale": sx, "zero_point": zx},
               {"name": "axes", "shape": [2], "type": "int32", "data": np.array([1, 2], np.int32)},
               {"name": "y", "shape": [1, 1, 1, c] if keep else [1, c], "type": "int8", "scale": sy, "zero_point": zy}]
    tfl = single_op("MEAN", tensors, [0], [2], [0, 1], reducer_options(keep))
    b = Onnx()
    x = b.node("Transpose", [b.input("x", [1, h, w, c])], perm=NCHW)
    y = b.q(b.node("GlobalAveragePool", [b.dq(x, sx, zx)]), sy, zy)
    y = b.node("Transpose", [y], perm=NHWC) if keep else b.node("Squeeze", [y, b.const([2, 3], np.int64)])
    onnx = b.model(y, [1, 1, 1, c] if keep else [1, c])
    assert [n.attrs["keep_dims"] for n in intsim.load(onnx, target=path[1]).graph.nodes
            if n.op == "global_avgpool"] == [int(keep)]
    rng = np.random.default_rng(seed)
    check(tfl, onnx, [[_i8(rng, (1, h, w, c))] for _ in range(2)], path)
