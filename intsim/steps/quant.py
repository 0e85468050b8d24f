"""quantize (float -> int), dequantize (int -> float), dynamic_quantize: ONNX semantics,
float32 arithmetic, round half to even, saturation."""
from __future__ import annotations

import numpy as np

from kernels import dynamic_quant as dq
from kernels import eltwise as ek

from ..errors import QuantParamError, ShapeError
from ..limits import check_shape
from ..numerics import (ROUNDING, as_channels3, dequantize_linear, dequantize_planned, kernel_dequantizes,
                         kernel_quantizes, qonnx_quantize, quantize_linear, quantize_planned)
from ..targets.rules import OrtArith, QuantizeRound, TargetRefusal
from .registry import step
from .target_arith import require
from .params import ParamReader, check_scale


def _check_params(node, x_shape, s, z, axis, block):
    if np.asarray(s).size == 1:
        if z is not None and np.asarray(z).size != 1:
            raise QuantParamError(f"node '{node.name}': zero point '{node.inputs[2]}' has {np.asarray(z).size} "
                                  f"values for a per-tensor scale '{node.inputs[1]}'")
        return
    if axis is None or not 0 <= axis < len(x_shape):
        raise ShapeError(f"node '{node.name}': axis {axis} does not fit input shape {x_shape}")
    want = -(-x_shape[axis] // block) if block else x_shape[axis]
    got = np.asarray(s).shape[axis] if block else np.asarray(s).size
    if got != want:
        raise QuantParamError(f"node '{node.name}': scale '{node.inputs[1]}' has {got} values along axis {axis}, "
                              f"expected {want}")
    if z is not None and np.asarray(z).shape != np.asarray(s).shape and np.asarray(z).size != 1:
        raise QuantParamError(f"node '{node.name}': zero point '{node.inputs[2]}' shape {np.asarray(z).shape} "
                              f"differs from scale shape {np.asarray(s).shape}")


def _scale_zp(node, s, z, float32: bool = False):
    """(scale, zero point) of a QuantizeLinear/DequantizeLinear node: the scale checked (finite,
    > 0; params.check_scale), as float32 (QuantizeLinear) or in its own dtype (DequantizeLinear,
    whose output may follow it); the zero point int64 of the scale's shape, zeros when absent."""
    checked = check_scale(s, node.inputs[1], node.name)
    s = checked if float32 else np.asarray(s)
    return s, np.zeros(s.shape, np.int64) if z is None else np.asarray(z).astype(np.int64)


def _read(node, reader, env, axis, block, float32: bool = False):
    """(x, scale, zero point) read at run time (_scale_zp), checked against x's shape."""
    x, s, z = reader.values(env)[:3]
    s, z = _scale_zp(node, s, z, float32)
    _check_params(node, np.shape(x), s, z, axis, block)
    return x, s, z


@step("quantize")
def prepare_quantize(node, ctx):
    reader = ParamReader(node, ctx, (1, 2))
    t = node.attrs["out_type"]
    axis, block = node.attrs["axis"], node.attrs["block_size"]

    if node.attrs.get("order") == "qonnx":
        return _prepare_qonnx(node, reader, t)
    rounding = require(ctx, node, ctx.target.rule(node), QuantizeRound).rounding
    if rounding == "tflite-builtin" and (block or _per_channel(reader)):
        raise TargetRefusal(ctx.target.name, node, "per-channel QUANTIZE of float input is not modelled for "
                                                   "TFLite's optimized kernel")
    reference = ctx.kernels == "reference"
    fast = None if reference else _static_plan(node, reader, t, block, rounding)

    def run(env, tap):
        x, s, z = _read(node, reader, env, axis, block, float32=True)
        env[node.outputs[0]] = quantize_linear(np.asarray(x), s, z, axis, block, t.qmin, t.qmax, t.storage,
                                               rounding, reference)

    fn = fast if fast is not None else run
    if rounding == "tflite-builtin":    # vector blocks and tail of the flat tensor: no batch split
        fn.flat_positions = True
    return fn


def _per_channel(reader) -> bool:
    """The node's scale has more than one value (or is not constant: unknown at prepare)."""
    if not reader.static:
        return True
    return np.asarray(reader.values({})[1]).size > 1


def _static_plan(node, reader, t, block, rounding):
    """The run function for constant scale/zero point on a whole 8/16-bit type: parameters
    checked and planned once (kernels.eltwise.quantize_plan); None when not applicable."""
    if not reader.static or not kernel_quantizes(t.storage, t.qmin, t.qmax, block, rounding):
        return None
    _, s, z = reader.values({})[:3]
    s, z = _scale_zp(node, s, z, float32=True)
    axis = node.attrs["axis"]
    if s.size != 1 and axis is None:
        return None
    if s.size == 1:
        _check_params(node, (), s, z, axis, block)
    try:
        plan = ek.quantize_plan(s, z, t.qmin, t.qmax, t.storage)
    except ValueError as e:
        raise QuantParamError(f"node '{node.name}': {e}") from None
    src, dst, consts = node.inputs[0], node.outputs[0], reader.ctx.constants

    def run(env, tap):
        x = consts[src] if src in consts else env[src]
        if plan.scale.size != 1:
            _check_params(node, x.shape, s, z, axis, block)
        env[dst] = quantize_planned(x, plan, axis)

    def freeze(env, fixed):
        """call(env) quantizing the step's input (of the recorded shape) into the output it just
        stored (intsim.frozen): no allocation, parameters checked once."""
        y = env[dst]
        x = consts[src] if src in consts else env[src]
        if not y.flags.c_contiguous or y.dtype != plan.dtype or np.shape(x) != y.shape:
            return None
        c = plan.scale.size
        yv = as_channels3(y, axis, c) if c > 1 else y
        if (src in fixed or src in consts) and type(x) is np.ndarray and x.dtype == np.float32 \
                and x.flags.c_contiguous:      # a recorded buffer: the kernel bound to it
            bound = ek.bind_quantize_planned(as_channels3(x, axis, c) if c > 1 else x, plan, yv)
            return lambda env: bound()

        if c == 1:          # one scale: x's checks and the kernel, bound to the output
            into = ek.bind_quantize_into(plan, yv)
            return lambda env: into(np.ascontiguousarray(consts[src] if src in consts else env[src],
                                                         dtype=np.float32))

        def call(env):
            xs = np.ascontiguousarray(consts[src] if src in consts else env[src], dtype=np.float32)
            ek.quantize_linear_planned(as_channels3(xs, axis, c) if c > 1 else xs, plan, yv)
        return call
    run.freeze = freeze
    return run


@step("dequantize")
def prepare_dequantize(node, ctx):
    reader = ParamReader(node, ctx, (1, 2))
    axis, block = node.attrs["axis"], node.attrs["block_size"]
    out_dtype = node.attrs["out_dtype"].storage
    reference = ctx.kernels == "reference"
    fast = None if reference else _static_dequantize(node, reader, axis, block, out_dtype)
    if fast is not None:
        return fast

    def run(env, tap):
        q, s, z = _read(node, reader, env, axis, block)
        _check_output(node, np.shape(q), out_dtype)
        env[node.outputs[0]] = dequantize_linear(np.asarray(q), s, z, axis, block, out_dtype, reference)

    return run


def _check_output(node, shape, dtype) -> None:
    """The float output (wider than its integer input) within the limits, before it is allocated."""
    check_shape(shape, np.dtype(dtype).itemsize, f"node '{node.name}': output '{node.outputs[0]}'")


def _static_dequantize(node, reader, axis, block, out_dtype):
    """The run function for constant float32 scale/zero point (checked and planned once), or
    None. The input's dtype is checked per run (kernel_dequantizes), else the general path."""
    if not reader.static:
        return None
    _, s, z = reader.values({})[:3]
    s, z = _scale_zp(node, s, z)
    if s.dtype != np.float32 or (s.size != 1 and axis is None) or block:
        return None
    if s.size == 1:
        _check_params(node, (), s, z, axis, block)
    plan = ek.dequantize_plan(s, z)
    src, dst, consts = node.inputs[0], node.outputs[0], reader.ctx.constants

    def run(env, tap):
        q = np.asarray(consts[src] if src in consts else env[src])
        if s.size != 1:
            _check_params(node, q.shape, s, z, axis, block)
        _check_output(node, q.shape, out_dtype)
        if kernel_dequantizes(q.dtype, s, axis, block, out_dtype):
            env[dst] = dequantize_planned(q, plan, axis)
        else:
            env[dst] = dequantize_linear(q, s, z, axis, block, out_dtype)

    def freeze(env, fixed):
        """call(env) dequantizing the step's input (of the recorded shape and dtype) into the
        output it just stored (intsim.frozen); None off the kernel's path."""
        y = env[dst]
        q = np.asarray(consts[src] if src in consts else env[src])
        if not kernel_dequantizes(q.dtype, s, axis, block, out_dtype) or not y.flags.c_contiguous \
                or y.dtype != np.float32 or q.shape != y.shape:
            return None
        c = plan.scale.size
        yv = as_channels3(y, axis, c) if c > 1 else y
        if (src in fixed or src in consts) and q.flags.c_contiguous:     # a recorded buffer: the kernel bound to it
            bound = ek.bind_dequantize_planned(as_channels3(q, axis, c) if c > 1 else q, plan, yv)
            return lambda env: bound()

        def call(env):     # (the input's dtype is the recording's: the frozen key fixes the feeds' dtypes)
            q = np.ascontiguousarray(consts[src] if src in consts else env[src])
            ek.dequantize_linear_planned(as_channels3(q, axis, c) if c > 1 else q, plan, yv)
        return call
    run.freeze = freeze
    return run


def dynamic_params(x: np.ndarray) -> tuple:
    """(scale, zp) of ONNX DynamicQuantizeLinear (uint8) for float32 x, as float32 and uint8:
    scale = (max(0, max x) - min(0, min x)) / 255, or 1 when both are 0 (an all-zero x:
    onnxruntime's GetQuantizationParameter, core/util/qmath.h; the ONNX reference takes 1/255
    there), zp = saturate(rint(0 - min/scale)); scale 0 (a range that underflows) gives zp 0."""
    lo = np.float32(min(0.0, float(x.min()) if x.size else 0.0))
    hi = np.float32(max(0.0, float(x.max()) if x.size else 0.0))
    scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255.0))
    if scale == 0:
        return scale, np.uint8(0)
    return scale, np.uint8(min(max(np.rint(np.float32(0) - lo / scale), 0), 255))    # (np.clip on a scalar: 3x the time)


def dynamic_quantize(x: np.ndarray):
    """ONNX DynamicQuantizeLinear (uint8): (scale, zp) = dynamic_params(x), then
    y = saturate(rint(x / scale) + zp); float32 throughout (kernels.dynamic_quant's formula;
    a zero scale gives all-zero codes)."""
    x = np.asarray(x, np.float32)
    scale, zp = dynamic_params(x)
    if scale == 0:
        return np.zeros(x.shape, np.uint8), np.float32(0), np.uint8(0)
    t = np.divide(x, scale, out=np.empty(x.shape, np.float32))    # the same float32 steps, in place
    np.rint(t, out=t)
    t += np.float32(zp)
    np.minimum(np.maximum(t, np.float32(0), out=t), np.float32(255), out=t)
    return t.astype(np.uint8), scale, zp


@step("dynamic_quantize")
def prepare_dynamic_quantize(node, ctx):
    """The codes through kernels.dynamic_quant (one pass) after dynamic_params; the NumPy
    dynamic_quantize where that kernel reports a NaN, and under kernels="reference"."""
    require(ctx, node, ctx.target.rule(node), OrtArith)
    codes = dq.dynamic_quantize_codes if ctx.kernels == "fast" else None

    def run(env, tap):
        x = env[node.inputs[0]]
        y = None
        if codes is not None and type(x) is np.ndarray and x.dtype == np.float32:
            x = np.ascontiguousarray(x)
            s, z = dynamic_params(x)
            if s != 0:
                y = np.empty(x.shape, np.uint8)
                if codes(x, s, np.float32(z), y):
                    y = None
        if y is None:
            y, s, z = dynamic_quantize(x)
        env[node.outputs[0]], env[node.outputs[1]], env[node.outputs[2]] = y, np.array(s, np.float32), np.array(z, np.uint8)

    def freeze(env, fixed):
        """call(env) recomputing the step into the outputs it just stored (codes, 0-d scale and
        zero point) from the recorded input (a C-contiguous float32 fixed buffer, or the run's
        feed when it is a graph input), as run does:
        the kernel, or dynamic_quantize where it reports a NaN or the scale is 0
        (intsim.runtime.frozen); None otherwise."""
        src = node.inputs[0]
        x, (y, sb, zb) = env.get(src), (env.get(o) for o in node.outputs[:3])
        live = src in ctx.graph.inputs      # the run's feed (shape and dtype: the feed key's), read per call
        if codes is None or (src not in fixed and not live) or len(node.outputs) < 3 or any(
                type(v) is not np.ndarray for v in (x, y, sb, zb)) or x.dtype != np.float32 or \
                not (x.flags.c_contiguous and y.flags.c_contiguous) or y.shape != x.shape or y.dtype != np.uint8 \
                or sb.shape != () or zb.shape != () or sb.dtype != np.float32 or zb.dtype != np.uint8:
            return None

        def call(env, x=x):
            if live:
                x = np.ascontiguousarray(env[src])
            s, z = dynamic_params(x)
            if s == 0 or codes(x, s, np.float32(z), y):
                v, s, z = dynamic_quantize(x)
                np.copyto(y, v)
            sb[()], zb[()] = s, z
        return call
    run.freeze = freeze
    return run


def _prepare_qonnx(node, reader, t):
    """QONNX Quant codes: round_mode(clamp(x / scale + zp, qmin, qmax)); BipolarQuant: x >= 0 ? 1 : -1."""
    qmin, qmax, rounding = node.attrs["qmin"], node.attrs["qmax"], node.attrs["rounding"]

    def run(env, tap):
        x, s, z = reader.values(env)[:3]
        check_scale(s, node.inputs[1], node.name)
        if rounding == "BIPOLAR":
            env[node.outputs[0]] = np.where(np.asarray(x) >= 0, 1, -1).astype(t.storage)
            return
        z = np.float32(0) if z is None else z
        try:
            env[node.outputs[0]] = qonnx_quantize(np.asarray(x), s, z, qmin, qmax, rounding, t.storage)
        except ValueError as e:
            raise ShapeError(f"node '{node.name}': {e}") from None
    return run


@step("qonnx_trunc")
def prepare_qonnx_trunc(node, ctx):
    """QONNX Trunc: y = round(x / scale + zp) / 2^(in_bits - out_bits) (v1) or / trunc_scale (v2),
    clamped (v2) and rounded with the node's mode, then rescaled; float32 as qonnx computes it."""
    a = node.attrs
    reader = ParamReader(node, ctx, range(1, len(node.inputs)))

    def run(env, tap):
        vals = reader.values(env)
        x, s, z = (np.asarray(v, np.float32) for v in vals[:3])
        y = np.round(x / s + z)
        if a["version"] == 1:
            ts = np.float32(2.0) ** (np.asarray(vals[3], np.float32) - np.asarray(vals[4], np.float32))
            y = ROUNDING[a["rounding"]](y / ts)
            env[node.outputs[0]] = ((y - z) * s).astype(np.float32)
            return
        out_scale, out_bits = np.asarray(vals[4], np.float32), int(np.asarray(vals[5]).reshape(-1)[0])
        ts = np.float32(2.0) ** np.round(np.log2(out_scale / s))
        y = y / ts
        if a["signed"]:
            lo, hi = -(1 << (out_bits - 1)) + a["narrow"], (1 << (out_bits - 1)) - 1
        else:
            lo, hi = 0, (1 << out_bits) - 1 - a["narrow"]
        y = ROUNDING[a["rounding"]](np.clip(y, lo, hi))
        env[node.outputs[0]] = ((y - z / ts) * out_scale).astype(np.float32)
    return run
