"""`softmax`: onnxruntime's com.microsoft QLinearSoftmax (QOperator, and what its optimizer
fuses DQ -> Softmax -> Q into), computed as `kernels.qsoftmax` states it. Inputs
(x, x_scale, x_zp, y_scale, y_zp); attrs axis, opset (< 13: the flattened dims from axis on
are reduced; >= 13: axis alone), out_type, beta (TFLite's SOFTMAX; 1 for the ONNX forms).
Rules: OrtArith (onnxruntime's QLinearSoftmax, beta 1 only) and TfliteSoftmax (TFLite's int8
SOFTMAX over the last axis, kernels.tflite_softmax, or the reference kernel's fixed point,
kernels.tflite_softmax_fixed; int16: kernels.tflite_softmax16); other
targets refuse it by name."""
from __future__ import annotations

import numpy as np

from kernels import qsoftmax as qk
from kernels import tflite_softmax as tsk
from kernels import tflite_softmax16 as tsk16
from kernels import tflite_softmax_fixed as tskf

from ..errors import QuantParamError
from ..targets.rules import OrtArith, TargetRefusal, TfliteSoftmax
from . import target_arith as ta
from .params import ParamReader, scalar_scale, scalar_zp
from .registry import step


def _scalar(v, name, node) -> float:
    return scalar_scale(v, name, node, "QLinearSoftmax")


@step("softmax")
def prepare_softmax(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), OrtArith, TfliteSoftmax)
    t = node.attrs["out_type"]
    in_t = ctx.graph.tensors[node.inputs[0]].dtype
    wide = isinstance(rule, TfliteSoftmax) and t.bits == 16
    if in_t != t or (t.bits != 8 and not wide):
        raise QuantParamError(f"node '{node.name}': QLinearSoftmax needs one 8-bit type in and out "
                              f"(or int16 under a TFLite target; got {in_t}, {t})")
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    axis, opset = int(node.attrs["axis"]), int(node.attrs["opset"])
    beta = float(node.attrs.get("beta", 1.0))
    if isinstance(rule, TfliteSoftmax):
        return _tflite_softmax(node, ctx, reader, t, beta, rule)
    if beta != 1.0:
        raise TargetRefusal(ctx.target.name, node, f"onnxruntime's QLinearSoftmax has no beta ({beta})")

    def params(vals):
        _, sx, _, sy, zy = (vals + [None] * 5)[:5]
        return (_scalar(sx, node.inputs[1], node), _scalar(sy, node.inputs[3], node),
                scalar_zp(zy, node.inputs[4] if len(node.inputs) > 4 else "", node.name))

    static = params(reader.values({})) if reader.static else None
    rows = ctx.kernel(qk.softmax_rows)
    tables: dict = {}   # (x_scale, reduced length, signed) -> the exponential table
    ys_cache: dict = {}  # y_scale -> Y

    def run(env, tap):
        vals = reader.values(env)
        x = np.asarray(vals[0])
        sx, sy, zy = static if static is not None else params(vals)
        if x.ndim == 0 or x.size == 0:
            env[node.outputs[0]] = qk.qlinear_softmax_ref(x, sx, sy, zy, axis, opset)
            return
        ax = axis % x.ndim
        moved = x if opset < 13 or ax == x.ndim - 1 else np.moveaxis(x, ax, -1)
        d = int(np.prod(x.shape[ax:], dtype=np.int64)) if opset < 13 else moved.shape[-1]
        key = (sx, d, x.dtype == np.int8)
        if key not in tables:
            tables[key] = qk.softmax_table(sx, d, key[2])
        if sy not in ys_cache:
            ys_cache[sy] = qk.big_y(sy)
        x2 = np.ascontiguousarray(moved).reshape(-1, d)
        out = np.empty(x2.shape, x.dtype)
        rows(x2, tables[key], ys_cache[sy], zy, out)
        env[node.outputs[0]] = out.reshape(x.shape) if moved is x else np.moveaxis(out.reshape(moved.shape), -1, ax)

    def freeze(env, fixed):
        """call(env) of the rows kernel bound to the recorded input (a C-contiguous fixed buffer
        reduced over its trailing axes, as the last run read it) and the output the step just
        stored (intsim.runtime.frozen); None otherwise (static parameters only)."""
        src, x, y = node.inputs[0], env.get(node.inputs[0]), env.get(node.outputs[0])
        if static is None or src not in fixed or any(type(v) is not np.ndarray or not v.flags.c_contiguous
                                                     for v in (x, y)) or x.ndim == 0 or x.size == 0:
            return None
        sx, sy, zy = static
        ax = axis % x.ndim
        d = int(np.prod(x.shape[ax:], dtype=np.int64)) if opset < 13 else x.shape[-1]
        key = (sx, d, x.dtype == np.int8)
        if (opset >= 13 and ax != x.ndim - 1) or y.shape != x.shape or y.dtype != x.dtype or key not in tables \
                or sy not in ys_cache:
            return None
        args = (x.reshape(-1, d), tables[key], ys_cache[sy], zy, y.reshape(-1, d))
        return lambda env: rows(*args)
    run.freeze = freeze
    return run


def _tflite_softmax(node, ctx, reader, t, beta, rule):
    """TFLite 8-bit SOFTMAX over the last axis (rules.TfliteSoftmax): the optimized kernel's one
    float32 table per input scale, rows through kernels.tflite_softmax.softmax_rows; the
    reference kernel's fixed point through kernels.tflite_softmax_fixed.softmax_fixed_rows."""
    if int(node.attrs["axis"]) != -1:
        raise QuantParamError(f"node '{node.name}': TFLite's SOFTMAX reduces the last axis, got axis "
                              f"{node.attrs['axis']}")
    if t.bits == 16:
        return _tflite_softmax16(node, ctx, reader, t, beta)
    rows = _fixed_rows(node, ctx, beta) if rule.kernel == "reference" else _table_rows(ctx, beta)
    if reader.static:
        _tflite_output_quant(node, ctx, reader.values({}), t)

    def run(env, tap):
        vals = reader.values(env)
        if not reader.static:
            _tflite_output_quant(node, ctx, vals, t)
        x, sx, _, sy, zy = (vals + [None] * 5)[:5]
        x = np.asarray(x)
        d = x.shape[-1] if x.ndim else 1
        out = np.empty(x.shape, t.storage)
        if x.size:
            rows(x.reshape(-1, d), _scalar(sx, node.inputs[1], node), _scalar(sy, node.inputs[3], node),
                 scalar_zp(zy, node.inputs[4] if len(node.inputs) > 4 else "", node.name), out.reshape(-1, d))
        env[node.outputs[0]] = out
    return run


def _table_rows(ctx, beta):
    """The optimized kernel: one float32 table per input scale (kernels.tflite_softmax)."""
    kern = ctx.kernel(tsk.softmax_rows)
    tables: dict = {}

    def rows(x, sx, sy, zy, out):
        if sx not in tables:
            tables[sx] = tsk.softmax_table(sx, beta)
        kern(x, tables[sx], sy, zy, out)
    return rows


def _fixed_rows(node, ctx, beta):
    """The reference kernel's fixed point (kernels.tflite_softmax_fixed): its multiplier, shift
    and diff_min come from the input scale and beta alone (the output quantization is fixed)."""
    kern = ctx.kernel(tskf.softmax_fixed_rows)

    def rows(x, sx, sy, zy, out):
        try:
            kern(x, sx, beta, out)
        except ValueError as e:
            raise TargetRefusal(ctx.target.name, node, str(e)) from None
    return rows


def _tflite_output_quant(node, ctx, vals, t) -> None:
    """TFLite's SOFTMAX takes only its fixed output quantization (SoftmaxPrepare: scale 1/256,
    zero point -128 for int8, 0 for uint8); any other is refused by name."""
    sy, zy = (list(vals) + [None] * 5)[3:5]
    want = -128 if t.storage == np.int8 else 0
    zy = 0 if zy is None else int(np.asarray(zy).reshape(-1)[0])
    if float(np.asarray(sy).reshape(-1)[0]) != 1 / 256 or zy != want:
        raise TargetRefusal(ctx.target.name, node, f"TFLite's SOFTMAX needs output scale 1/256 and zero "
                            f"point {want} (got {float(np.asarray(sy).reshape(-1)[0])!r}, {zy})")


def _tflite_softmax16(node, ctx, reader, t, beta):
    """TFLite int16 SOFTMAX over the last axis (kernels.tflite_softmax16): an output quantization
    TFLite's prepare refuses (zero point not 0, scale not near 2**-15) is refused by name; rank
    1..4 as the interpreter takes."""
    kern = ctx.kernel(tsk16.softmax16_rows)

    def run(env, tap):
        x, sx, _, sy, zy = (reader.values(env) + [None] * 5)[:5]
        try:
            tsk16.check_params(_scalar(sy, node.inputs[3], node),
                               scalar_zp(zy, node.inputs[4] if len(node.inputs) > 4 else "", node.name))
        except ValueError as e:
            raise TargetRefusal(ctx.target.name, node, str(e)) from None
        x = np.asarray(x)
        if not 1 <= x.ndim <= 4:
            raise TargetRefusal(ctx.target.name, node, f"TFLite's int16 SOFTMAX takes rank 1 to 4, got {x.ndim}")
        d = x.shape[-1]
        out = np.empty(x.shape, t.storage)
        if x.size:
            kern(x.reshape(-1, d), _scalar(sx, node.inputs[1], node), beta, out.reshape(-1, d))
        env[node.outputs[0]] = out
    return run
