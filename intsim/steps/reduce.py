"""`reduce_sum`: TFLite's SUM of 8-bit codes over constant axes, dimensions kept (rules.TfliteSum;
kernels.tflite_sum states the arithmetic). Inputs (x, x_scale, x_zp, y_scale, y_zp); attrs axes
(sorted, never the batch axis 0), out_type. The raw codes are summed exactly in int64, then
requantized per output."""
from __future__ import annotations

import numpy as np

from kernels import tflite_sum as sk

from ..errors import ShapeError
from ..targets.rules import TfliteSum
from . import target_arith as ta
from .params import ParamReader, out_type_8bit, scalar_scale, scalar_zp
from .registry import step


@step("reduce_sum")
def prepare_reduce_sum(node, ctx):
    ta.require(ctx, node, ctx.target.rule(node), TfliteSum)
    t = out_type_8bit(node, "SUM")
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
        out = np.empty(sums.shape, t.storage)
        kern(sums, scalar_scale(sx, ins[1], node, "SUM"), scalar_zp(zx, ins[2], node.name),
             scalar_scale(sy, ins[3], node, "SUM"), scalar_zp(zy, ins[4], node.name), n, out)
        env[node.outputs[0]] = out
    return run
