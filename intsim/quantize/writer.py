"""Writing the quantized model: QDQ (ONNX QuantizeLinear/DequantizeLinear) or QONNX (Quant).

QDQ form, as onnxruntime's quantizer writes it, so that onnxruntime fuses DQ -> Conv -> Q
into QLinearConv (and Gemm into QGemm, MatMul into QLinearMatMul):
- activations: QuantizeLinear -> DequantizeLinear pairs (int8 or int16, scale float32, zp);
- weights: DequantizeLinear on an int8 initializer holding 2..8-bit values (per tensor, or
  per channel along the output-channel axis), zero point 0;
- bias: DequantizeLinear on an int32 initializer, scale f32(a_scale * w_scale[c]), zp 0.
QONNX form (domain qonnx.custom_op.general): Quant(x, scale, zeropoint, bitwidth) with
signed=1, narrow=0, rounding_mode="ROUND" on the same tensors, weights stored as float q*s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir import IntType
from .graph import FloatGraph

QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_TYPES = {(8, True): TensorProto.INT8, (16, True): TensorProto.INT16,
              (8, False): TensorProto.UINT8, (16, False): TensorProto.UINT16}


@dataclass
class WeightPlan:
    q: np.ndarray            # int64, the weight's shape, values within the weight type
    scale: np.ndarray        # float32, () or (C,)
    axis: Optional[int]
    bits: int


@dataclass
class BiasPlan:
    q: np.ndarray            # int32 (C,)
    scale: np.ndarray        # float32 (C,) or ()


@dataclass
class QuantPlan:
    weights: dict            # initializer name -> WeightPlan
    biases: dict             # initializer name -> BiasPlan
    acts: dict               # tensor name -> (scale float32, zp int)
    act_type: IntType


def _rename_outputs(nodes, outputs: set, acts: dict) -> None:
    for n in nodes:
        for i, o in enumerate(n.output):
            if o in outputs and o in acts:
                n.output[i] = o + "_float"


def _dq_name(t: str, outputs: set) -> str:
    return t if t in outputs else t + "_dq"


def _raw_name(t: str, outputs: set) -> str:
    return t + "_float" if t in outputs else t


def write_qdq(fg: FloatGraph, plan: QuantPlan, opset: int = 21) -> onnx.ModelProto:
    """The QDQ ModelProto for `fg` under `plan`."""
    return _write(fg, plan, opset, qonnx=False)


def write_qonnx(fg: FloatGraph, plan: QuantPlan, opset: int = 21) -> onnx.ModelProto:
    """The QONNX ModelProto (Quant nodes) for `fg` under `plan`."""
    return _write(fg, plan, opset, qonnx=True)


def _write(fg: FloatGraph, plan: QuantPlan, opset: int, qonnx: bool) -> onnx.ModelProto:
    outputs = set(fg.outputs)
    inits: list = []
    nodes: list = []
    emit = _QonnxEmitter(inits, nodes, plan.act_type) if qonnx else _QdqEmitter(inits, nodes, plan.act_type)
    for name in fg.inputs:
        if name in plan.acts:
            emit.act(name, _raw_name(name, set()), _dq_name(name, set()), *plan.acts[name])
    for node in fg.nodes:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        for i, x in enumerate(n.input):
            if x in plan.weights:
                n.input[i] = emit.weight(x, plan.weights[x])
            elif x in plan.biases:
                n.input[i] = emit.bias(x, plan.biases[x])
            elif x in plan.acts:
                n.input[i] = _dq_name(x, outputs)
            elif x in fg.inits and not any(i.name == x for i in inits):
                inits.append(numpy_helper.from_array(np.asarray(fg.inits[x]), x))
        for i, o in enumerate(n.output):
            if o in plan.acts:
                n.output[i] = _raw_name(o, outputs)
        nodes.append(n)
        for o in node.output:
            if o in plan.acts:
                emit.act(o, _raw_name(o, outputs), _dq_name(o, outputs), *plan.acts[o])
    g = fg.model.graph
    graph = helper.make_graph(nodes, g.name or "quantized",
                              [i for i in g.input if i.name not in fg.inits], list(g.output), inits)
    imports = [helper.make_opsetid("", max(opset, fg.opset))]
    if qonnx:
        imports.append(helper.make_opsetid(QONNX_DOMAIN, 1))
    m = helper.make_model(graph, opset_imports=imports, producer_name="intsim.quantize")
    m.ir_version = max(fg.model.ir_version, 10 if opset >= 21 else fg.model.ir_version)
    return m


class _QdqEmitter:
    def __init__(self, inits, nodes, act_type: IntType):
        self.inits, self.nodes, self.t = inits, nodes, act_type

    def _init(self, name, arr, dtype=None):
        t = numpy_helper.from_array(np.asarray(arr), name)
        if dtype is not None:
            t = helper.make_tensor(name, dtype, np.shape(arr), np.asarray(arr).ravel().tolist())
        self.inits.append(t)
        return name

    def act(self, t, raw, dq, scale, zp):
        otype = ONNX_TYPES[(self.t.bits, self.t.signed)]
        s = self._init(t + "_scale", np.float32(scale))
        z = self._init(t + "_zero_point", np.array(int(zp)), otype)
        self.nodes.append(helper.make_node("QuantizeLinear", [raw, s, z], [t + "_q"], name=t + "_QuantizeLinear"))
        self.nodes.append(helper.make_node("DequantizeLinear", [t + "_q", s, z], [dq], name=t + "_DequantizeLinear"))

    def weight(self, name, wp: WeightPlan) -> str:
        q = self._init(name + "_quantized", wp.q.astype(np.int8))
        s = self._init(name + "_scale", np.asarray(wp.scale, np.float32))
        z = self._init(name + "_zero_point", np.zeros(np.shape(wp.scale), np.int8))
        attrs = {} if wp.axis is None else {"axis": int(wp.axis)}
        self.nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [name + "_dq"],
                                           name=name + "_DequantizeLinear", **attrs))
        return name + "_dq"

    def bias(self, name, bp: BiasPlan) -> str:
        q = self._init(name + "_quantized", bp.q.astype(np.int32))
        s = self._init(name + "_scale", np.asarray(bp.scale, np.float32))
        z = self._init(name + "_zero_point", np.zeros(np.shape(bp.scale), np.int32))
        attrs = {} if np.ndim(bp.scale) == 0 else {"axis": 0}
        self.nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [name + "_dq"],
                                           name=name + "_DequantizeLinear", **attrs))
        return name + "_dq"


class _QonnxEmitter:
    def __init__(self, inits, nodes, act_type: IntType):
        self.inits, self.nodes, self.bits = inits, nodes, act_type.bits

    def _quant(self, x, y, scale, zp, bits, tag):
        s = numpy_helper.from_array(np.asarray(scale, np.float32), tag + "_scale")
        z = numpy_helper.from_array(np.asarray(zp, np.float32), tag + "_zero_point")
        b = numpy_helper.from_array(np.float32(bits), tag + "_bitwidth")
        self.inits.extend([s, z, b])
        self.nodes.append(helper.make_node("Quant", [x, s.name, z.name, b.name], [y], name=tag + "_Quant",
                                           domain=QONNX_DOMAIN, signed=1, narrow=0, rounding_mode="ROUND"))

    def act(self, t, raw, dq, scale, zp):
        self._quant(raw, dq, scale, np.float32(zp), self.bits, t)

    def weight(self, name, wp: WeightPlan) -> str:
        shape = [1] * wp.q.ndim
        s = np.asarray(wp.scale, np.float32)
        if wp.axis is not None:
            shape[wp.axis] = -1
            s = s.reshape(shape)
        self.inits.append(numpy_helper.from_array((wp.q * s).astype(np.float32), name + "_float"))
        self._quant(name + "_float", name + "_q", s, np.zeros_like(s), wp.bits, name)
        return name + "_q"

    def bias(self, name, bp: BiasPlan) -> str:
        s = np.asarray(bp.scale, np.float32)
        self.inits.append(numpy_helper.from_array((bp.q.astype(np.float64) * s).astype(np.float32), name + "_float"))
        self._quant(name + "_float", name + "_q", s, np.zeros_like(s), 32, name)
        return name + "_q"
