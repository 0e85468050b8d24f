"""onnxruntime's com.microsoft transformer ops, as its transformer optimizer
(`onnxruntime.transformers.optimizer`) and then `quantize_dynamic` write them.

Float ops (Attention, SkipLayerNormalization, BiasGelu, FastGelu, FusedMatMul...) become `onnx`
IR nodes tagged with their domain: only an onnxruntime float engine (the `ort*` targets' float
islands) runs them; the ONNX reference evaluator has no kernel for them, so other targets refuse
them by name at prepare.

QAttention (input uint8/int8 with a scale and zero point, int8 weights (D_in, 3*D) with theirs,
float bias) is split where onnxruntime's own kernel splits it (contrib_ops/cpu/quantization/
attention_quant.cc, `QAttention<T>::Compute`): an integer GEMM
    acc[m, j] = sum_k (x[m, k] - x_zp) * (w[k, j] - w_zp[j])           (int32, intsim's `matmul`)
whose output processor (MLAS_QGEMM_SCALE_BIAS_OUTPUT_PROCESSOR) writes
    qkv[m, j] = float(acc[m, j]) * (x_scale * w_scale[j]) + bias[j]    (float32, two roundings)
then the float attention of the Attention op (AttentionCPUBase::ApplyAttention) on qkv. That
last part is onnxruntime's com.microsoft Attention applied to qkv with an identity weight and a
zero bias: a float GEMM by the identity is exact (each output is one product by 1 plus exact
zeros), so it reproduces QAttention bit for bit (tests/clients/test_qattention.py).

That identity GEMM (S x 3D x 3D float products) is most of the Attention's time. Where the
QAttention has no mask and no attribute but num_heads (and unidirectional = 0), its float part
is written instead as Split(qkv) into q, k, v (D columns each) and MultiHeadAttention(q, k, v):
onnxruntime's CPU MultiHeadAttention transposes q, k, v to (B, N, S, H) and runs the same
AttentionCPUBase::ApplyAttention as Attention does on its GEMM output, unless it takes its
flash-attention path (contrib_ops/cpu/bert/multihead_attention.cc), which rounds differently;
the island's session is therefore built with that path off (intsim.steps.ort_island,
ORT_DISABLE_FLASH_ATTENTION). tests/clients/test_qattention_mha.py checks the two forms bit
for bit over drawn shapes, heads and values.
"""
from __future__ import annotations

import numpy as np

from ..ir import FLOAT32
from ..onnx_core import proto
from ..onnx_values import attributes, make_node
from ..ops import MS_FLOAT_OPS     # com.microsoft float ops an onnxruntime float island runs
from .context import ImportContext
from .generic import lower_generic
from .registry import MS_DOMAIN, find, lowering



@lowering(*MS_FLOAT_OPS, domain=MS_DOMAIN)
def lower_ms_float(ctx: ImportContext, node, integer_projection: bool = False) -> None:
    """A com.microsoft float op: an `onnx` node (domain recorded) with float32 outputs.
    integer_projection: an Attention carrying only QAttention's float part (not reported as
    compute left in float, intsim.ops.float_compute)."""
    for out in node.output:
        if out:
            ctx.declare(out, FLOAT32)
    attrs = {"node": node, "opset": ctx.opset(""), "ms_opset": max(ctx.opset(MS_DOMAIN), 1),
             "op_type": node.op_type, "domain": MS_DOMAIN,
             "float_reason": "a com.microsoft float op: onnxruntime computes it in float"}
    if integer_projection:
        attrs["integer_projection"] = True
    ctx.emit("onnx", node.name or node.output[0], list(node.input), list(node.output), attrs, ctx.origin(node))


def _lower(ctx: ImportContext, proto) -> None:
    fn = find(proto.domain or "", proto.op_type)
    (fn or lower_generic)(ctx, proto)


@lowering("QAttention", domain=MS_DOMAIN)
def lower_qattention(ctx: ImportContext, node) -> None:
    """QAttention -> MatMulInteger, Cast, Mul(x_scale, w_scale), Mul, Add(bias), Attention(qkv,
    identity, zeros) (see the module doc), each lowered as that op is."""
    ins = list(node.input) + [""] * (9 - len(node.input))
    x, w, bias, xs, ws, mask, xz, wz, past = ins[:9]
    if past or (len(node.output) > 1 and node.output[1]):
        raise ctx.unsupported(node, "QAttention with past/present state is not supported")
    if not ctx.is_const(w) or not ctx.is_const(bias):
        raise ctx.unsupported(node, "QAttention needs constant weights and bias")
    width = int(np.asarray(ctx.constants[w]).shape[-1])
    base = node.name or node.output[0]

    def t(suffix):
        return ctx.fresh(f"{base}/{suffix}")
    acc, accf, scale, y0, qkv, eye, zeros = (t(s) for s in ("acc", "acc_float", "scale", "scaled", "qkv",
                                                             "identity", "zero_bias"))
    n = make_node
    protos = [n("MatMulInteger", [x, w, xz, wz], [acc], name=f"{base}/MatMulInteger"),
              n("Cast", [acc], [accf], name=f"{base}/Cast", to=proto.TensorProto.FLOAT),
              n("Mul", [xs, ws], [scale], name=f"{base}/Scale"),
              n("Mul", [accf, scale], [y0], name=f"{base}/Mul"),
              n("Add", [y0, bias], [qkv], name=f"{base}/Add")]
    for p in protos:
        _lower(ctx, p)
    for name in (accf, scale, y0, qkv):     # float32 by construction (the generic lowering
        ctx.declare(name, FLOAT32)           # knows only declared value_info): a float island
    attrs = attributes(node)
    if not mask and width % 3 == 0 and set(attrs) <= {"num_heads", "unidirectional"} and \
            not attrs.get("unidirectional"):
        _split_mha(ctx, node, base, qkv, width // 3, int(attrs["num_heads"]))
        return
    ctx.add_constant(eye, np.eye(width, dtype=np.float32))
    ctx.add_constant(zeros, np.zeros(width, np.float32))
    att = n("Attention", [qkv, eye, zeros] + ([mask] if mask else []), [node.output[0]], name=f"{base}/Attention",
            domain=MS_DOMAIN)
    att.attribute.extend(node.attribute)
    lower_ms_float(ctx, att, integer_projection=True)


def _split_mha(ctx: ImportContext, node, base: str, qkv: str, d: int, heads: int) -> None:
    """QAttention's float part as Split + MultiHeadAttention (module doc)."""
    q, k, v, sizes = (ctx.fresh(f"{base}/{s}") for s in ("q", "k", "v", "split"))
    if ctx.opset("") >= 13:
        ctx.add_constant(sizes, np.array([d, d, d], np.int64))
        split = make_node("Split", [qkv, sizes], [q, k, v], name=f"{base}/Split", axis=-1)
    else:
        split = make_node("Split", [qkv], [q, k, v], name=f"{base}/Split", axis=-1, split=[d, d, d])
    _lower(ctx, split)
    for name in (q, k, v):
        ctx.declare(name, FLOAT32)
    mha = make_node("MultiHeadAttention", [q, k, v], [node.output[0]], name=f"{base}/MultiHeadAttention",
                    domain=MS_DOMAIN, num_heads=heads)
    lower_ms_float(ctx, mha, integer_projection=True)
