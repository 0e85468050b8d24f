"""`reduce_sum`: TFLite's SUM of int8, uint8 or int16 codes over constant axes, dimensions kept
(rules.TfliteSum, kernels.tflite_sum states the arithmetic; rules.FoldedSum, the reference kernel's
MultiplyByQuantizedMultiplier through kernels.fixedpoint; rules.XnnpackSum, XNNPACK's float32
conversion, kernels.xnnpack_mean). Inputs (x, x_scale, x_zp, y_scale,
y_zp); attrs axes (sorted, never the batch axis 0), out_type. The raw codes are summed exactly in
int64, then requantized per output; a reduction whose sum can leave the interpreter's int32
accumulator is refused by name."""
from __future__ import annotations

import numpy as np

from kernels import fixedpoint as fk
from kernels import tflite_sum as sk
from kernels import xnnpack_mean as xm

from ..errors import QuantParamError, ShapeError
from ..targets.rules import FoldedSum, TargetRefusal, TfliteSum, XnnpackSum
from . import target_arith as ta
from .params import ParamReader, scalar_scale, scalar_zp
from .registry import step


@step("reduce_sum")
def prepare_reduce_sum(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), TfliteSum, FoldedSum, XnnpackSum)
    t = node.attrs["out_type"]
    if np.dtype(t.storage) not in (np.int8, np.uint8, np.int16) or t.bits != 8 * np.dtype(t.storage).itemsize:
        raise QuantParamError(f"node '{node.name}': SUM is modelled for int8, uint8 and int16 codes, output is {t}")
    if isinstance(rule, XnnpackSum) and t.bits != 8:
        raise TargetRefusal(ctx.target.name, node, "XNNPACK's SUM takes 8-bit codes only")
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    axes = tuple(int(a) for a in node.attrs["axes"])
    ins = node.inputs
    kern = ctx.kernel(sk.sum_requant)

    def run(env, tap):
        x, sx, zx, sy, zy = reader.values(env)[:5]
        x = np.asarray(x)
        if not axes or max(axes) >= x.ndim:
            raise ShapeError(f"node '{node.name}': SUM axes {list(axes)} do not fit input {x.shape}")
        sums = x.astype(np.int64).sum(axis=axes, keepdims=True)
        n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        if not sk.sum_fits_int32(x.dtype, n):
            raise TargetRefusal(ctx.target.name, node, f"a sum of {n} {x.dtype} codes can leave the interpreter's "
                                                       f"int32 accumulator (wraps there): not modelled")
        out = np.empty(sums.shape, t.storage)
        p = (scalar_scale(sx, ins[1], node, "SUM"), scalar_zp(zx, ins[2], node.name),
             scalar_scale(sy, ins[3], node, "SUM"), scalar_zp(zy, ins[4], node.name))
        if isinstance(rule, FoldedSum):
            folded_sum(ctx, node, rule, sums - np.int64(p[1]) * n, p, out)
        elif isinstance(rule, XnnpackSum):
            (xm.xnn_mean_ref if ctx.kernels == "reference" else xm.xnn_mean)(sums, *xm.sum_params(*p, n), out)
        else:
            kern(sums, p[0], p[1], p[2], p[3], n, out)
        env[node.outputs[0]] = out
    return run


def folded_sum(ctx, node, rule, acc, p, out) -> None:
    """rules.FoldedSum: acc = sum(x) - zx*n requantized by MultiplyByQuantizedMultiplier with
    QuantizeMultiplier(double(sx) / double(sy)) (kernels.fixedpoint.requant_fixedpoint)."""
    sx, _, sy, zy = p
    m0, shift = fk.quantize_multiplier(np.array([np.float64(np.float32(sx)) / np.float64(np.float32(sy))]))
    info = np.iinfo(out.dtype)
    fn = fk.requant_fixedpoint_ref if ctx.kernels == "reference" else fk.requant_fixedpoint
    fn(acc.reshape(1, 1, -1), m0, shift, int(zy), int(info.min), int(info.max), rule.mode, out.reshape(1, 1, -1))
