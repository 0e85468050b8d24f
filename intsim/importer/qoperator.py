"""QOperator form: QLinearConv, QLinearMatMul, QGemm, QLinearAdd/Mul, QLinearConcat,
QLinearAveragePool, QLinearGlobalAveragePool, QLinearSigmoid/LeakyRelu, ConvInteger,
MatMulInteger. Each becomes one integer IR node whose inputs follow the QLinearConv layout

    (x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias)       ("" where absent)
"""
from __future__ import annotations

from ..ir import INT32, IntType
from ..onnx_values import attributes
from .context import ImportContext, check_zero_point
from .registry import MS_DOMAIN, lowering


def _in(node, i):
    return node.input[i] if len(node.input) > i else ""


def conv_attrs(ctx: ImportContext, node, a: dict) -> dict:
    out = {k: a[k] for k in ("strides", "pads", "dilations", "kernel_shape") if k in a}
    out["group"] = int(a.get("group", 1))
    ap = a.get("auto_pad", b"NOTSET")
    out["auto_pad"] = ap.decode() if isinstance(ap, bytes) else str(ap)
    return out


def declare_quantized_output(ctx: ImportContext, node, y: str, ys: str, yz: str, default_signed=False):
    t = ctx.type_of(yz) if yz else None
    if not isinstance(t, IntType):
        t = IntType(8, default_signed)
    if t.bits != 8:
        raise ctx.unsupported(node, f"output zero point '{yz}' is {t}; QOperator ops produce 8-bit integers")
    qp = ctx.qparams(ys, yz, tensor=y)
    if qp is not None:
        check_zero_point(qp.zero_point, t, y)
    ctx.declare(y, t, qparams=qp)
    return t


def _note_input_qparams(ctx: ImportContext, x: str, s: str, z: str, axis=None):
    qp = ctx.qparams(s, z, axis, tensor=x)
    t = ctx.tensors.get(x)
    if qp is not None and t is not None and t.qparams is None:
        ctx.tensors[x] = t.with_(qparams=qp)


@lowering("QLinearConv")
@lowering("QLinearConv", domain=MS_DOMAIN)
def lower_qlinear_conv(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(9)]
    t = declare_quantized_output(ctx, node, node.output[0], ins[6], ins[7])
    _note_input_qparams(ctx, ins[0], ins[1], ins[2])
    _note_input_qparams(ctx, ins[3], ins[4], ins[5], axis=0)
    attrs = conv_attrs(ctx, node, attributes(node))
    attrs.update(out_type=t, requant=True, lo=t.qmin, hi=t.qmax)
    ctx.emit("conv", node.name or node.output[0], ins, [node.output[0]], attrs, ctx.origin(node))


@lowering("ConvInteger")
def lower_conv_integer(ctx: ImportContext, node) -> None:
    x, w, xz, wz = (_in(node, i) for i in range(4))
    ctx.declare(node.output[0], INT32)
    attrs = conv_attrs(ctx, node, attributes(node))
    attrs.update(out_type=INT32, requant=False)
    ctx.emit("conv", node.name or node.output[0], [x, "", xz, w, "", wz, "", "", ""],
             [node.output[0]], attrs, ctx.origin(node))


@lowering("QLinearMatMul")
def lower_qlinear_matmul(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(8)] + [""]
    t = declare_quantized_output(ctx, node, node.output[0], ins[6], ins[7])
    attrs = {"out_type": t, "requant": True, "lo": t.qmin, "hi": t.qmax, "transA": 0, "transB": 0, "alpha": 1.0}
    ctx.emit("matmul", node.name or node.output[0], ins, [node.output[0]], attrs, ctx.origin(node))


@lowering("MatMulInteger")
def lower_matmul_integer(ctx: ImportContext, node) -> None:
    a, b, az, bz = (_in(node, i) for i in range(4))
    ctx.declare(node.output[0], INT32)
    attrs = {"out_type": INT32, "requant": False, "transA": 0, "transB": 0, "alpha": 1.0}
    ctx.emit("matmul", node.name or node.output[0], [a, "", az, b, "", bz, "", "", ""],
             [node.output[0]], attrs, ctx.origin(node))


@lowering("QGemm", domain=MS_DOMAIN)
def lower_qgemm(ctx: ImportContext, node) -> None:
    a_, a_s, a_z, b_, b_s, b_z, c_, y_s, y_z = (_in(node, i) for i in range(9))
    a = attributes(node)
    if not y_s:
        raise ctx.unsupported(node, "QGemm with a float output (no y_scale) is not supported")
    t = declare_quantized_output(ctx, node, node.output[0], y_s, y_z)
    attrs = {"out_type": t, "requant": True, "lo": t.qmin, "hi": t.qmax,
             "transA": int(a.get("transA", 0)), "transB": int(a.get("transB", 0)),
             "alpha": float(a.get("alpha", 1.0))}
    ctx.emit("matmul", node.name or node.output[0], [a_, a_s, a_z, b_, b_s, b_z, y_s, y_z, c_],
             [node.output[0]], attrs, ctx.origin(node))


@lowering("QLinearAdd", "QLinearMul", domain=MS_DOMAIN)
def lower_qlinear_binary(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(8)]
    t = declare_quantized_output(ctx, node, node.output[0], ins[6], ins[7])
    op = "add" if node.op_type == "QLinearAdd" else "mul"
    ctx.emit(op, node.name or node.output[0], ins, [node.output[0]],
             {"out_type": t, "lo": t.qmin, "hi": t.qmax}, ctx.origin(node))


@lowering("QLinearConcat", domain=MS_DOMAIN)
def lower_qlinear_concat(ctx: ImportContext, node) -> None:
    ins = list(node.input)
    if len(ins) < 5 or (len(ins) - 2) % 3:
        raise ctx.unsupported(node, f"expects Y_scale, Y_zero_point and triples, got {len(ins)} inputs")
    t = declare_quantized_output(ctx, node, node.output[0], ins[0], ins[1])
    ctx.emit("concat", node.name or node.output[0], ins, [node.output[0]],
             {"axis": int(attributes(node).get("axis", 0)), "out_type": t}, ctx.origin(node))


@lowering("QLinearAveragePool", "QLinearGlobalAveragePool", domain=MS_DOMAIN)
def lower_qlinear_pool(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(5)]
    t = declare_quantized_output(ctx, node, node.output[0], ins[3], ins[4])
    a = attributes(node)
    ap = a.get("auto_pad", b"NOTSET")
    attrs = {"out_type": t, "channels_last": int(a.get("channels_last", 0)),
             "kernel_shape": tuple(a.get("kernel_shape", ())), "strides": tuple(a.get("strides", ())),
             "pads": tuple(a.get("pads", ())), "count_include_pad": int(a.get("count_include_pad", 0)),
             "ceil_mode": int(a.get("ceil_mode", 0)),
             "auto_pad": ap.decode() if isinstance(ap, bytes) else str(ap)}
    op = "avgpool" if node.op_type == "QLinearAveragePool" else "global_avgpool"
    ctx.emit(op, node.name or node.output[0], ins, [node.output[0]], attrs, ctx.origin(node))


@lowering("QLinearSoftmax", domain=MS_DOMAIN)
def lower_qlinear_softmax(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(5)]
    t = declare_quantized_output(ctx, node, node.output[0], ins[3], ins[4])
    a = attributes(node)
    if "opset" not in a:
        raise ctx.unsupported(node, "QLinearSoftmax needs its 'opset' attribute")
    opset = int(a["opset"])
    ctx.emit("softmax", node.name or node.output[0], ins, [node.output[0]],
             {"axis": int(a.get("axis", 1 if opset < 13 else -1)), "opset": opset, "out_type": t}, ctx.origin(node))


@lowering("QLinearSigmoid", "QLinearLeakyRelu", domain=MS_DOMAIN)
def lower_qlinear_lut(ctx: ImportContext, node) -> None:
    ins = [_in(node, i) for i in range(5)]
    t = declare_quantized_output(ctx, node, node.output[0], ins[3], ins[4])
    kind = "sigmoid" if node.op_type == "QLinearSigmoid" else "leaky_relu"
    ctx.emit("lut", node.name or node.output[0], ins, [node.output[0]],
             {"kind": kind, "alpha": float(attributes(node).get("alpha", 0.01)), "out_type": t},
             ctx.origin(node))
