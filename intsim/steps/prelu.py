"""`prelu`: TFLite's PRELU of 8-bit or int16 codes (rules.TflitePrelu; kernels.tflite_prelu states the
arithmetic). Inputs (x, x_scale, x_zp, alpha, alpha_scale, alpha_zp, y_scale, y_zp), per-tensor
scales; alpha broadcasts to x (numpy rules) and the output has x's shape."""
from __future__ import annotations

import numpy as np

from kernels import tflite_prelu as pk

from ..errors import ShapeError
from ..targets.rules import TflitePrelu
from . import target_arith as ta
from .params import ParamReader, out_type_8bit, scalar_scale, scalar_zp
from .registry import step


def _scale(v, name, node) -> float:
    return scalar_scale(v, name, node, "PRELU")


@step("prelu")
def prepare_prelu(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), TflitePrelu)
    t = node.attrs["out_type"]
    if not (t.bits == 16 and t.signed):         # int16 PRELU: the same arithmetic (kernels.tflite_prelu)
        t = out_type_8bit(node, "PRELU")
    reader = ParamReader(node, ctx, (1, 2, 4, 5, 6, 7))
    ins = node.inputs
    kern = ctx.kernel(pk.tflite_prelu)
    cache: dict = {}

    def run(env, tap):
        x, sx, zx, alpha, sa, za, sy, zy = reader.values(env)[:8]
        p = (_scale(sx, ins[1], node), _scale(sa, ins[4], node), _scale(sy, ins[6], node))
        if p not in cache:
            cache[p] = pk.prelu_multipliers(*p)
        x = np.asarray(x)
        try:
            np.broadcast_to(np.asarray(alpha), x.shape)
        except ValueError:
            raise ShapeError(f"node '{node.name}': alpha {np.shape(alpha)} does not broadcast to input {x.shape}") \
                from None
        out = np.empty(x.shape, t.storage)
        kern(x, np.asarray(alpha), scalar_zp(zx, ins[2], node.name), scalar_zp(za, ins[5], node.name),
             scalar_zp(zy, ins[7], node.name), cache[p], rule.mode, out)
        env[node.outputs[0]] = out
    return run
