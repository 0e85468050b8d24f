"""`softmax`: onnxruntime's com.microsoft QLinearSoftmax (QOperator, and what its optimizer
fuses DQ -> Softmax -> Q into), computed as `kernels.qsoftmax` states it. Inputs
(x, x_scale, x_zp, y_scale, y_zp); attrs axis, opset (< 13: the flattened dims from axis on
are reduced; >= 13: axis alone), out_type. Only onnxruntime defines this arithmetic: a target
lists the rule OrtArith for it or refuses it."""
from __future__ import annotations

import numpy as np

from kernels import qsoftmax as qk

from ..errors import QuantParamError
from ..targets.rules import OrtArith
from . import target_arith as ta
from .params import ParamReader, check_scale, scalar_zp
from .registry import step


def _scalar(v, name, node) -> float:
    s = check_scale(v, name, node.name).reshape(-1)
    if s.size != 1:
        raise QuantParamError(f"node '{node.name}': QLinearSoftmax needs a per-tensor scale, '{name}' has {s.size}")
    return float(s[0])


@step("softmax")
def prepare_softmax(node, ctx):
    ta.require(ctx, node, ctx.target.rule(node), OrtArith)
    t = node.attrs["out_type"]
    in_t = ctx.graph.tensors[node.inputs[0]].dtype
    if in_t != t or t.bits != 8:
        raise QuantParamError(f"node '{node.name}': QLinearSoftmax needs one 8-bit type in and out "
                              f"(got {in_t}, {t})")
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    axis, opset = int(node.attrs["axis"]), int(node.attrs["opset"])

    def run(env, tap):
        x, sx, _, sy, zy = (reader.values(env) + [None] * 5)[:5]
        env[node.outputs[0]] = qk.qlinear_softmax_ref(
            np.asarray(x), _scalar(sx, node.inputs[1], node), _scalar(sy, node.inputs[3], node),
            scalar_zp(zy, node.inputs[4] if len(node.inputs) > 4 else "", node.name), axis, opset)
    return run
