"""QuantizeLinear, DequantizeLinear (ONNX and com.microsoft) and DynamicQuantizeLinear."""
from __future__ import annotations

from ..errors import InvalidModelError, QuantParamError
from ..ir import FLOAT32, FloatType, IntType
from ..onnx_core import proto
from ..onnx_values import attributes, elem_name
from .context import ELEM_TYPES, ImportContext, check_zero_point
from .generic import fold_constant
from .registry import MS_DOMAIN, lowering


def _axis_and_block(ctx: ImportContext, node, rank):
    a = attributes(node)
    axis = int(a.get("axis", 1))
    s = node.input[1] if len(node.input) > 1 else ""
    per_axis = ctx.is_const(s) and ctx.constants[s].size > 1 if s else False
    if rank is not None and per_axis and not -rank <= axis < rank:
        raise QuantParamError(f"node '{node.name or node.output[0]}': {node.op_type} axis {axis} is outside "
                              f"[-{rank}, {rank - 1}] for the {rank}-D input '{node.input[0]}'")
    if rank is not None and rank > 0 and -rank <= axis < rank:
        axis %= rank
    return axis, int(a.get("block_size", 0))


def _rank(ctx: ImportContext, name: str):
    t = ctx.tensors.get(name)
    if t is not None and t.shape is not None:
        return len(t.shape)
    vt = ctx.value_types.get(name)
    return len(vt[1]) if vt and vt[1] is not None else None


def _input(node, i):
    return node.input[i] if len(node.input) > i else ""


@lowering("QuantizeLinear")
@lowering("QuantizeLinear", domain=MS_DOMAIN)
def lower_quantize(ctx: ImportContext, node) -> None:
    if fold_constant(ctx, node):     # a weight quantized in the graph (qonnx's QuantToQCDQ)
        return
    x, s, z = _input(node, 0), _input(node, 1), _input(node, 2)
    a = attributes(node)
    if "output_dtype" in a and a["output_dtype"]:
        out_elem = a["output_dtype"]
    elif z and ctx.type_of(z) is not None:
        out_elem = _elem_of(ctx, z)
    else:
        out_elem = proto.TensorProto.UINT8
    out_type = ELEM_TYPES.get(out_elem)
    if not isinstance(out_type, IntType):
        raise ctx.unsupported(node, f"output type {elem_name(out_elem)} is not an integer type")
    if out_type.bits > 16:
        raise InvalidModelError(f"node '{node.name or node.output[0]}': QuantizeLinear cannot produce "
                                f"{elem_name(out_elem)} (zero point '{z}'); ONNX allows 4-, 8- "
                                f"and 16-bit integers")
    axis, block = _axis_and_block(ctx, node, _rank(ctx, x))
    qp = ctx.qparams(s, z, axis, block, tensor=node.output[0])
    if qp is not None:
        check_zero_point(qp.zero_point, out_type, node.output[0])
    ctx.declare(node.output[0], out_type, qparams=qp)
    ctx.emit("quantize", node.name or node.output[0], [x, s, z], [node.output[0]],
             {"axis": axis, "block_size": block, "out_type": out_type,
              "saturate": int(a.get("saturate", 1))}, ctx.origin(node))


@lowering("DequantizeLinear")
@lowering("DequantizeLinear", domain=MS_DOMAIN)
def lower_dequantize(ctx: ImportContext, node) -> None:
    q, s, z = _input(node, 0), _input(node, 1), _input(node, 2)
    in_type = ctx.type_of(q)
    if not isinstance(in_type, IntType):
        raise ctx.unsupported(node, f"input '{q}' has type {in_type}, not an integer type")
    axis, block = _axis_and_block(ctx, node, _rank(ctx, q))
    qp = ctx.qparams(s, z, axis, block, tensor=q)
    if qp is not None:
        if in_type.bits < 32:
            check_zero_point(qp.zero_point, in_type, q)
        if ctx.tensors.get(q) is not None and ctx.tensors[q].qparams is None:
            ctx.tensors[q] = ctx.tensors[q].with_(qparams=qp)
    a = attributes(node)
    out_type = FLOAT32
    if a.get("output_dtype"):
        out_type = ELEM_TYPES[a["output_dtype"]]
    elif s and isinstance(ctx.type_of(s), FloatType):
        out_type = ctx.type_of(s)
    ctx.declare(node.output[0], out_type)
    ctx.emit("dequantize", node.name or node.output[0], [q, s, z], [node.output[0]],
             {"axis": axis, "block_size": block, "out_dtype": out_type}, ctx.origin(node))


@lowering("DynamicQuantizeLinear")
def lower_dynamic_quantize(ctx: ImportContext, node) -> None:
    y, ys, yz = node.output[0], node.output[1], node.output[2]
    ctx.declare(y, IntType(8, False))
    ctx.declare(ys, FLOAT32, shape=())
    ctx.declare(yz, IntType(8, False), shape=())
    ctx.emit("dynamic_quantize", node.name or y, [node.input[0]], [y, ys, yz], {}, ctx.origin(node))


def _elem_of(ctx: ImportContext, name: str) -> int:
    t = ctx.type_of(name)
    for e, tt in ELEM_TYPES.items():
        if tt == t:
            return e
    return proto.TensorProto.UINT8


