"""`transpose_conv`: TFLite's TRANSPOSE_CONV of NHWC codes. Inputs (x, x_scale, x_zp, w,
w_scale, w_zp, y_scale, y_zp, bias), weights (O, KH, KW, I) as TFLite stores them, symmetric
(zero point 0), per-tensor or per-channel scales; attrs strides, pads (top, left), out_hw,
out_type, lo, hi.

    acc[n, oy, ox, o] = bias[o] + kernels.tflite_transpose_conv.transpose_conv_acc(...)
    y = the target's requantizer on acc (real[o] = sx * sw[o] / sy), clamped to lo..hi

The target's rule for the op names the requantizer (ta.requantizer: rules.AccRequant, the
target's own; rules.FixedRequant, a stated MultiplyByQuantizedMultiplier mode)."""
from __future__ import annotations

import numpy as np

from kernels import tflite_transpose_conv as tk

from ..errors import QuantParamError, ShapeError
from ..ir import Requant
from ..limits import check_shape
from ..targets.rules import AccRequant, FixedRequant
from . import target_arith as ta
from .params import ParamReader, check_scale, per_channel, scalar_scale, scalar_zp
from .registry import step


@step("transpose_conv")
def prepare_transpose_conv(node, ctx):
    ta.require(ctx, node, ctx.target.rule(node), AccRequant, FixedRequant)
    ins, t = node.inputs, node.attrs["out_type"]
    w = ctx.constants.get(ins[3])
    if w is None or np.ndim(w) != 4:
        raise QuantParamError(f"node '{node.name}': TRANSPOSE_CONV needs constant 4-D weights (O, KH, KW, I)")
    channels = int(w.shape[0])
    reader = ParamReader(node, ctx, (1, 2, 4, 5, 6, 7, 8))
    if not reader.static:
        raise QuantParamError(f"node '{node.name}': TRANSPOSE_CONV needs constant scales, zero points and bias")
    _, sx, zx, _, sw, zw, sy, zy, b = (reader.values({}) + [None] * 9)[:9]
    if np.any(per_channel(zw, channels, ins[5], node.name, np.int64) != 0):
        raise QuantParamError(f"node '{node.name}': TRANSPOSE_CONV weights '{ins[3]}' must be symmetric (zero point 0)")
    w_scale = check_scale(sw, ins[4], node.name).reshape(-1)
    if w_scale.size not in (1, channels):
        raise QuantParamError(f"node '{node.name}': weight scale '{ins[4]}' has {w_scale.size} values for "
                              f"{channels} channels")
    x_zp, bias = scalar_zp(zx, ins[2], node.name), per_channel(b, channels, ins[8], node.name, np.int64)
    lo, hi = node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)
    rq = Requant(np.float32(scalar_scale(sx, ins[1], node, "TRANSPOSE_CONV")),
                 w_scale if w_scale.size > 1 else w_scale[0],
                 np.float32(scalar_scale(sy, ins[6], node, "TRANSPOSE_CONV")),
                 scalar_zp(zy, ins[7], node.name), lo, hi, t, node.outputs[0])
    r = ta.requantizer(ctx, node, rq, channels)
    apply = r.apply_reference if ctx.kernels == "reference" else r.apply
    acc_fn = ctx.kernel(tk.transpose_conv_acc)
    strides, pads, out_hw = (tuple(int(v) for v in node.attrs[k]) for k in ("strides", "pads", "out_hw"))

    def run(env, tap):
        x = np.asarray(env[ins[0]])
        if x.ndim != 4 or x.shape[3] != w.shape[3]:
            raise ShapeError(f"node '{node.name}': input {x.shape} is not NHWC with {w.shape[3]} channels")
        shape = (x.shape[0], *out_hw, channels)
        check_shape(shape, 8, f"node '{node.name}' accumulator")
        acc = acc_fn(x, x_zp, w, strides, pads, out_hw) + bias
        out = np.empty(shape, t.storage)
        apply(acc.reshape(-1, channels, 1), out.reshape(-1, channels, 1))
        env[node.outputs[0]] = out
    return run
