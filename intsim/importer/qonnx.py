"""QONNX: Quant / IntQuant (bit width 1-16; up to 32 on constants, e.g. Brevitas' Int32Bias;
signed, narrow, every QONNX rounding mode), BipolarQuant and Trunc (v1, v2), in the domains
qonnx.custom_op.general and onnx.brevitas.

A Quant is a fake-quant op (float in, float out). It lowers to the integer IR as a pair:
`quantize` (QONNX order: round_mode(clamp(x / scale + zp))) then `dequantize`
((q - zp) * scale). On constant weights the codes are computed at import, leaving a
DequantizeLinear-like node on an integer constant, so the QDQ fusion pass turns
Quant(w) -> Conv -> Quant into one integer conv.
"""
from __future__ import annotations

import numpy as np

from ..errors import QuantParamError
from ..ir import FLOAT32, IntType, QParams
from ..numerics import ROUNDING, qonnx_quantize
from ..onnx_values import attributes
from .context import ImportContext
from .registry import QONNX_DOMAINS, lowering


def _str(v, default):
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else str(v)


def _axis_of(scale: np.ndarray, rank: int, node_name: str):
    """The channel axis of a broadcast scale of shape like (1, C, 1, 1) or (C, 1, 1, 1)."""
    if scale.size == 1:
        return None
    shape = (1,) * (rank - scale.ndim) + scale.shape
    big = [i for i, d in enumerate(shape) if d > 1]
    if len(big) != 1:
        raise QuantParamError(f"node '{node_name}': scale of shape {scale.shape} is neither per-tensor nor per-channel")
    return big[0]


def _range(bits: int, signed: bool, narrow: bool):
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def _emit_pair(ctx: ImportContext, node, x, q_name, qp, t, attrs, axis_scale):
    out = node.output[0]
    ctx.declare(q_name, t, shape=ctx.tensors[x].shape if x in ctx.tensors else None, qparams=qp)
    ctx.emit("quantize", (node.name or out) + "/quantize", [x, node.input[1], node.input[2] if len(node.input) > 2 else ""],
             [q_name], attrs, ctx.origin(node))
    _emit_dequantize(ctx, node, q_name, qp, axis_scale)


def _emit_dequantize(ctx: ImportContext, node, q_name, qp, axis):
    out = node.output[0]
    s_name, z_name = ctx.fresh(out + "__scale"), ctx.fresh(out + "__zp")
    ctx.add_constant(s_name, qp.scale.reshape(-1) if qp.scale.size > 1 else qp.scale.reshape(()))
    ctx.add_constant(z_name, qp.zero_point.reshape(-1) if qp.zero_point.size > 1 else qp.zero_point.reshape(()))
    ctx.declare(out, FLOAT32)
    ctx.emit("dequantize", (node.name or out) + "/dequantize", [q_name, s_name, z_name], [out],
             {"axis": axis if axis is not None else 1, "block_size": 0, "out_dtype": FLOAT32, "qonnx": 1},
             ctx.origin(node))


@lowering("Quant", "IntQuant", domain=QONNX_DOMAINS)
def lower_quant(ctx: ImportContext, node) -> None:
    a = attributes(node)
    x = node.input[0]
    for i, what in ((1, "scale"), (2, "zero point"), (3, "bit width")):
        if len(node.input) <= i or not ctx.is_const(node.input[i]):
            raise ctx.unsupported(node, f"{what} must be a constant")
    scale = ctx.constants[node.input[1]].astype(np.float32)
    zp = ctx.constants[node.input[2]].astype(np.float32)
    bw = np.asarray(ctx.constants[node.input[3]]).reshape(-1)
    if bw.size != 1:
        raise QuantParamError(f"node '{node.name}': bit width '{node.input[3]}' must be one value, got {bw.size}")
    bits = float(bw[0])
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    rounding = _str(a.get("rounding_mode"), "ROUND").upper()
    if not np.isfinite(bits) or bits != int(bits) or not 1 <= bits <= 32:
        raise QuantParamError(f"node '{node.name}': bit width {bits} must be an integer in 1..32")
    if bits > 16 and not ctx.is_const(x):
        raise ctx.unsupported(node, f"a {int(bits)}-bit Quant of a tensor computed at run time (wider than "
                                    "16 bits only on constants, e.g. Brevitas' Int32Bias)")
    if rounding not in ROUNDING:
        raise ctx.unsupported(node, f"rounding mode {rounding}")
    if np.any(zp != np.round(zp)):
        raise QuantParamError(f"node '{node.name}': zero point '{node.input[2]}' is not an integer")
    bits = int(bits)
    if bits == 1 and signed:
        return _bipolar(ctx, node, x, scale)
    qmin, qmax = _range(bits, signed, narrow)
    t = IntType(max(bits, 2) if signed else bits, signed)
    rank = len(ctx.tensors[x].shape) if x in ctx.tensors and ctx.tensors[x].shape is not None else scale.ndim
    axis = _axis_of(scale, rank, node.name or node.output[0])
    qp = QParams.make(scale.reshape(-1) if scale.size > 1 else scale.reshape(()),
                      zp.astype(np.int64).reshape(-1) if zp.size > 1 else zp.astype(np.int64).reshape(()),
                      axis, name=node.output[0])
    if ctx.is_const(x):
        # int64 first: past 24 bits qmax rounds up in float32 (qonnx clamps to that value too;
        # clipping the code back dequantizes to the same float32)
        codes = np.clip(qonnx_quantize(ctx.constants[x], scale, zp, qmin, qmax, rounding, np.int64),
                        qmin, qmax).astype(t.storage)
        q_name = ctx.fresh(node.output[0] + "__int")
        ctx.add_constant(q_name, codes)
        ctx.tensors[q_name] = ctx.tensors[q_name].with_(dtype=t, qparams=qp)
        _emit_dequantize(ctx, node, q_name, qp, axis)
        return
    attrs = {"axis": axis if axis is not None else 1, "block_size": 0, "out_type": t, "qmin": qmin, "qmax": qmax,
             "rounding": rounding, "order": "qonnx", "saturate": 1}
    _emit_pair(ctx, node, x, ctx.fresh(node.output[0] + "__int"), qp, t, attrs, axis)


def _bipolar(ctx: ImportContext, node, x, scale):
    t = IntType(2, True)
    rank = len(ctx.tensors[x].shape) if x in ctx.tensors and ctx.tensors[x].shape is not None else scale.ndim
    axis = _axis_of(scale, rank, node.name or node.output[0])
    qp = QParams.make(scale.reshape(-1) if scale.size > 1 else scale.reshape(()),
                      np.zeros(scale.size if scale.size > 1 else (), np.int64).reshape(-1 if scale.size > 1 else ()),
                      axis, name=node.output[0])
    if ctx.is_const(x):
        q_name = ctx.fresh(node.output[0] + "__int")
        ctx.add_constant(q_name, np.where(ctx.constants[x] >= 0, 1, -1).astype(np.int8))
        ctx.tensors[q_name] = ctx.tensors[q_name].with_(dtype=t, qparams=qp)
        _emit_dequantize(ctx, node, q_name, qp, axis)
        return
    attrs = {"axis": axis if axis is not None else 1, "block_size": 0, "out_type": t, "qmin": -1, "qmax": 1,
             "rounding": "BIPOLAR", "order": "qonnx", "saturate": 1}
    q_name = ctx.fresh(node.output[0] + "__int")
    ctx.declare(q_name, t, qparams=qp)
    ctx.emit("quantize", (node.name or node.output[0]) + "/quantize", [x, node.input[1], ""], [q_name], attrs,
             ctx.origin(node))
    _emit_dequantize(ctx, node, q_name, qp, axis)


@lowering("BipolarQuant", domain=QONNX_DOMAINS)
def lower_bipolar(ctx: ImportContext, node) -> None:
    if not ctx.is_const(node.input[1]):
        raise ctx.unsupported(node, "scale must be a constant")
    _bipolar(ctx, node, node.input[0], ctx.constants[node.input[1]].astype(np.float32))


@lowering("Trunc", domain=QONNX_DOMAINS)
def lower_trunc(ctx: ImportContext, node) -> None:
    a = attributes(node)
    version = 2 if len(node.input) >= 6 else 1
    codes = _trunc_codes(ctx, node) if version == 2 else None
    out = node.output[0] if codes is None else ctx.fresh(node.output[0] + "__trunc")
    ctx.declare(out, FLOAT32)
    ctx.emit("qonnx_trunc", node.name or node.output[0], list(node.input), [out],
             {"version": version, "rounding": _str(a.get("rounding_mode"), "FLOOR").upper(),
              "signed": int(a.get("signed", 1)), "narrow": int(a.get("narrow", 0))}, ctx.origin(node))
    if codes is not None:
        t, qp, lo, hi = codes
        attrs = {"axis": 1, "block_size": 0, "out_type": t, "qmin": lo, "qmax": hi, "rounding": "ROUND",
                 "order": "qonnx", "saturate": 1}
        q_name = ctx.fresh(node.output[0] + "__int")
        ctx.declare(q_name, t, qparams=qp)
        ctx.emit("quantize", (node.name or node.output[0]) + "/quantize", [out, node.input[4], ""], [q_name], attrs,
                 ctx.origin(node))
        _emit_dequantize(ctx, node, q_name, qp, None)


def _trunc_codes(ctx: ImportContext, node):
    """A Trunc v2 with constant parameters, zero point 0 and one output scale outputs
    y * out_scale, y an integer in the output range (Brevitas' TruncAvgPool): (type, qparams,
    qmin, qmax) of those codes, so the float output is re-read exactly as integers
    (f32(f32(y * s) / s) rounds back to y for |y| < 2^16) and the next layer can fuse; None
    for any other Trunc (it stays the float step)."""
    if not all(ctx.is_const(i) for i in node.input[1:6]):
        return None
    zp, out_scale = ctx.constants[node.input[2]], np.asarray(ctx.constants[node.input[4]], np.float32)
    bits = float(np.asarray(ctx.constants[node.input[5]]).reshape(-1)[0])
    if np.any(zp != 0) or out_scale.size != 1 or not float(out_scale.reshape(-1)[0]) > 0 or \
            bits != int(bits) or not 2 <= bits <= 16:
        return None
    a = attributes(node)
    signed = bool(a.get("signed", 1))
    lo, hi = _range(int(bits), signed, bool(a.get("narrow", 0)))
    qp = QParams.make(out_scale.reshape(()), np.zeros((), np.int64), None, name=node.output[0])
    return IntType(int(bits), signed), qp, lo, hi
