"""maxpool (integers, exact), avgpool and global_avgpool with onnxruntime's geometry. The
averages ask the target for their rule at prepare (targets.rules): onnxruntime's arithmetic
runs through kernels/pool.py (formulas in its docstring), the others through target_arith.py."""
from __future__ import annotations

from functools import partial

import numpy as np

from kernels import pool as pk

from ..errors import ShapeError
from ..geometry import auto_pads
from ..layout import held_nhwc, nhwc_of, planes_view
from ..limits import check_shape
from ..targets.rules import AccRequant, DivideRound, FoldedMean, OptimizedMean, OrtArith, RawAverage, XnnpackMean
from .registry import step
from . import target_arith as ta
from .params import ParamReader, check_scale, scalar_zp


def _geometry(x, kernel, a_strides, a_pads, a_dil, auto_pad):
    ns = x.ndim - 2
    if len(kernel) != ns:
        raise ShapeError(f"kernel {list(kernel)} does not fit input {x.shape}")
    strides = list(a_strides) or [1] * ns
    dilations = list(a_dil) or [1] * ns
    pads = list(a_pads) or [0] * (2 * ns)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = auto_pads(auto_pad, x.shape[2:], kernel, strides, dilations)
    return strides, pads, dilations


def window_2d(kernel, strides, pads, dilations):
    """A 1-D pool's window as the 2-D one over images of one row (H = 1: kernel, stride and
    dilation 1, no pads on H); a 2-D window as it is. pads in ONNX order (begins, then ends)."""
    if len(kernel) == 2:
        return kernel, strides, pads, dilations
    return [1, kernel[0]], [1, strides[0]], [0, pads[0], 0, pads[1]], [1, dilations[0]]


def maxpool_fn(node, ctx, a, get):
    """The integer MaxPool used by `onnx` nodes on 8-bit tensors."""
    kernel = list(a["kernel_shape"])
    ap = a.get("auto_pad", b"NOTSET")
    ap = ap.decode() if isinstance(ap, bytes) else ap
    if int(a.get("storage_order", 0)):
        raise ShapeError(f"node '{node.name}': MaxPool storage_order=1 is not supported")

    keep_nhwc = node.outputs[0] in getattr(ctx, "channels_last", ())
    maxpool, maxpool_nhwc = ctx.kernel(pk.maxpool), ctx.kernel(pk.maxpool_nhwc)

    def run(env):
        x = get(env, 0)
        xh = held_nhwc(x) if len(kernel) in (1, 2) and np.ndim(x) == len(kernel) + 2 else None
        x = x if xh is not None else np.ascontiguousarray(x)
        try:
            st, pads, di = _geometry(x, kernel, a.get("strides", ()), a.get("pads", ()), a.get("dilations", ()), ap)
            shape = x.shape[:2] + pk.pool_output_shape(x.shape[2:], kernel, st, pads, di, int(a.get("ceil_mode", 0)))
            check_shape(shape, x.dtype.itemsize, f"node '{node.name}': output of MaxPool")
            if xh is None:
                out = np.empty(shape, x.dtype)
                maxpool(x, kernel, st, pads, di, int(a.get("ceil_mode", 0)), out)
                return [out]
            out = np.empty((shape[0],) + (1,) * (4 - len(shape)) + shape[2:] + (shape[1],), x.dtype)  # channels-last
            maxpool_nhwc(xh, *window_2d(kernel, st, pads, di), int(a.get("ceil_mode", 0)), out)
        except ValueError as e:
            raise ShapeError(f"node '{node.name}': {e}") from None
        y = planes_view(out, len(shape))
        return [y if keep_nhwc else np.ascontiguousarray(y)]

    def freeze(env, fixed):
        """call(env) redoing the last run in place (intsim.frozen): on NCHW (or 1-D) arrays the
        pool bound to them; read channels-last, the pool into the output, or into a
        channels-last buffer then copied to an NCHW output; else None."""
        x, y = get(env, 0), env[node.outputs[0]]
        xh = held_nhwc(x) if len(kernel) in (1, 2) and np.ndim(x) == len(kernel) + 2 else None
        if ctx.kernels == "fast" and node.inputs[0] in fixed and xh is None and isinstance(x, np.ndarray) and \
                x.flags.c_contiguous and isinstance(y, np.ndarray) and y.flags.c_contiguous:
            # NCHW (or 1-D) in and out: the pool bound to the recorded arrays
            st, pads, di = _geometry(x, kernel, a.get("strides", ()), a.get("pads", ()), a.get("dilations", ()), ap)
            call = pk.bind_maxpool(x, kernel, st, pads, di, int(a.get("ceil_mode", 0)), y)
            return lambda env: call()
        if ctx.kernels != "fast" or node.inputs[0] not in fixed or xh is None or not isinstance(y, np.ndarray) or \
                y.ndim != x.ndim:
            return None
        yh = held_nhwc(y) if keep_nhwc else np.empty((y.shape[0],) + (1,) * (4 - y.ndim) + y.shape[2:] + (y.shape[1],),
                                                     y.dtype)
        if yh is None or (not keep_nhwc and not y.flags.c_contiguous):
            return None
        st, pads, di = _geometry(x, kernel, a.get("strides", ()), a.get("pads", ()), a.get("dilations", ()), ap)
        call = pk.bind_maxpool_nhwc(xh, *window_2d(kernel, st, pads, di), int(a.get("ceil_mode", 0)), yh)
        if keep_nhwc:
            return lambda env: call()
        planes = planes_view(yh, y.ndim)

        def pool_then_planes(env):
            call()
            np.copyto(y, planes)
        return pool_then_planes
    run.freeze = freeze
    return run


def _scales(node, vals):
    x, sx, zx, sy, zy = vals[:5]
    return (np.asarray(x), float(check_scale(sx, node.inputs[1], node.name).reshape(-1)[0]),
            scalar_zp(zx, node.inputs[2], node.name),
            float(check_scale(sy, node.inputs[3], node.name).reshape(-1)[0]), scalar_zp(zy, node.inputs[4], node.name))


def _channels_first(node, x):
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if node.attrs.get("channels_last") else np.ascontiguousarray(x)


def _restore(node, y):
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)) if node.attrs.get("channels_last") else y


def _reference_global(node, x, p):
    """QLinearGlobalAveragePool on kernels.pool.global_avgpool_ref (kernels="reference")."""
    out = np.empty(x.shape[:2] + (1,) * (x.ndim - 2), node.attrs["out_type"].storage)
    try:
        pk.global_avgpool_ref(x, *p, out)
    except ValueError as e:
        raise ShapeError(f"node '{node.name}': {e}") from None
    return out


def _per_call(node, reader, pool):
    """run(env, tap) reading the parameters at each call: y = pool(NCHW x, (sx, zx, sy, zy))."""
    def run(env, tap):
        x, sx, zx, sy, zy = _scales(node, reader.values(env))
        env[node.outputs[0]] = _restore(node, pool(_channels_first(node, x), (sx, zx, sy, zy)))
    return run


def _target_average(node, ctx, reader, attrs):
    """The run of an average pool under the target's own averaging rule (ta.average on the NCHW
    x; attrs: the window's, None for a global pool), or None for onnxruntime's arithmetic (the
    planned paths below). A target without a rule for the op is refused here, by name."""
    rule = ta.require(ctx, node, ctx.target.rule(node), OrtArith, RawAverage, DivideRound, AccRequant, FoldedMean,
                      OptimizedMean, XnnpackMean)
    if isinstance(rule, OrtArith):
        return None
    return _per_call(node, reader, lambda x, p: ta.average(ctx, node, rule, x, p, attrs))


def _held_channels_last(node, x):
    """The C-contiguous (N, H, W, C) array of an NCHW x held channels-last (intsim.layout; more
    than one pixel), else None (a TFLite channels_last node's x is NHWC data, not a view)."""
    if node.attrs.get("channels_last") or x.ndim != 4 or x.flags.c_contiguous:
        return None
    return nhwc_of(x)


@step("global_avgpool")
def prepare_global_avgpool(node, ctx):
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    own = _target_average(node, ctx, reader, None)
    if own is not None:
        return own
    if ctx.kernels == "reference":
        return _per_call(node, reader, partial(_reference_global, node))
    t = node.attrs["out_type"]
    src, consts = node.inputs[0], ctx.constants
    static = _scales(node, [None] + reader.values({})[1:5])[1:] if reader.static else None
    plans: dict = {}

    def plan(hw, dtype, params):
        key = (hw, dtype, params)
        if key not in plans:
            sx, zx, sy, zy = params
            plans[key] = pk.global_avgpool_plan(sx, zx, sy, zy, hw, dtype)
        return plans[key]

    def run(env, tap):
        if static is not None:
            x, params = consts[src] if src in consts else env[src], static
        else:
            x, *params = _scales(node, reader.values(env))
            params = tuple(params)
        x = np.asarray(x)
        xh = _held_channels_last(node, x)
        if xh is not None:
            out = np.empty(x.shape[:2] + (1, 1), t.storage)
            try:
                pk.bind_global_avgpool_nhwc(xh, plan(xh.shape[1] * xh.shape[2], x.dtype, params), out)()
            except ValueError as e:
                raise ShapeError(f"node '{node.name}': {e}") from None
            env[node.outputs[0]] = out
            return
        x = _channels_first(node, x)
        out = np.empty(x.shape[:2] + (1,) * (x.ndim - 2), t.storage)
        try:
            if x.ndim < 3:
                raise ValueError(f"input must be (N, C, *spatial), got shape {x.shape}")
            hw = x.size // max(x.shape[0] * x.shape[1], 1) if x.size else int(np.prod(x.shape[2:]))
            pk.global_avgpool_planned(x, plan(hw, x.dtype, params), out)
        except ValueError as e:
            raise ShapeError(f"node '{node.name}': {e}") from None
        env[node.outputs[0]] = _restore(node, out)

    def freeze(env, fixed):
        """call(env) redoing the last run in place (intsim.frozen): constant parameters, an NCHW
        input (or one held channels-last) in a fixed buffer read as it is; else None."""
        x, out = env.get(src), env[node.outputs[0]]
        xh = _held_channels_last(node, x) if isinstance(x, np.ndarray) else None
        if static is not None and xh is not None and src in fixed:
            call = pk.bind_global_avgpool_nhwc(xh, plan(xh.shape[1] * xh.shape[2], x.dtype, static), out)
            return lambda env: call()
        if static is None or node.attrs.get("channels_last") or src not in fixed or \
                not isinstance(x, np.ndarray) or x.ndim < 3 or not x.flags.c_contiguous or not out.flags.c_contiguous:
            return None
        hw = x.size // max(x.shape[0] * x.shape[1], 1) if x.size else int(np.prod(x.shape[2:]))
        call = pk.bind_global_avgpool_planned(x, plan(hw, x.dtype, static), out)     # checked now
        return lambda env: call()
    run.freeze = freeze
    return run


@step("avgpool")
def prepare_avgpool(node, ctx):
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    own = _target_average(node, ctx, reader, node.attrs)
    if own is not None:
        return own
    avgpool = ctx.kernel(pk.avgpool)
    t = node.attrs["out_type"]
    a = node.attrs

    def run(env, tap):
        x, sx, zx, sy, zy = _scales(node, reader.values(env))
        x = _channels_first(node, x)
        kernel = list(a["kernel_shape"])
        try:
            st, pads, di = _geometry(x, kernel, a["strides"], a["pads"], (), a["auto_pad"])
            shape = x.shape[:2] + pk.pool_output_shape(x.shape[2:], kernel, st, pads, di, a["ceil_mode"])
            check_shape(shape, t.storage.itemsize, f"node '{node.name}': output of AveragePool")
            out = np.empty(shape, t.storage)
            avgpool(x, sx, zx, sy, zy, kernel, st, pads, a["count_include_pad"], a["ceil_mode"], out)
        except ValueError as e:
            raise ShapeError(f"node '{node.name}': {e}") from None
        env[node.outputs[0]] = _restore(node, out)

    def freeze(env, fixed):
        """call(env) redoing the last run in place (intsim.frozen): constant parameters, an NCHW
        input in a fixed buffer read as it is; else None."""
        x, out = env.get(node.inputs[0]), env[node.outputs[0]]
        if ctx.kernels != "fast" or not reader.static or a.get("channels_last") or node.inputs[0] not in fixed or \
                not isinstance(x, np.ndarray) or not x.flags.c_contiguous or not out.flags.c_contiguous:
            return None
        _, sx, zx, sy, zy = _scales(node, [x] + reader.values({})[1:5])
        kernel = list(a["kernel_shape"])
        st, pads, di = _geometry(x, kernel, a["strides"], a["pads"], (), a["auto_pad"])
        call = pk.bind_avgpool(x, sx, zx, sy, zy, kernel, st, pads, a["count_include_pad"], a["ceil_mode"], out)
        return lambda env: call()
    run.freeze = freeze
    return run
