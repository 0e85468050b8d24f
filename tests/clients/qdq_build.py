"""Small QDQ graphs as quantization tools write them (onnx.helper), for tests/clients."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ELEM = {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
        np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


class Builder:
    """Nodes and initializers of one graph; q/dq/qdq add QuantizeLinear/DequantizeLinear."""

    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, name, a):
        self.inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def fresh(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def node(self, op, ins, outs=None, name=None, **attrs):
        outs = outs or [self.fresh(op.lower())]
        self.nodes.append(helper.make_node(op, ins, outs, name=name or self.fresh("n_" + op), **attrs))
        return outs[0]

    def q(self, x, scale, zp):
        s = self.const(self.fresh("s"), np.float32(scale))
        z = self.const(self.fresh("z"), np.asarray(zp))
        return self.node("QuantizeLinear", [x, s, z])

    def dq(self, x, scale, zp, axis=None):
        s = self.const(self.fresh("s"), np.asarray(scale, np.float32))
        z = self.const(self.fresh("z"), np.asarray(zp))
        kw = {} if axis is None else {"axis": axis}
        return self.node("DequantizeLinear", [x, s, z], **kw)

    def qdq(self, x, scale, zp):
        return self.dq(self.q(x, scale, zp), scale, zp)

    def model(self, inputs, outputs, opset=17, out_types=None):
        """inputs: [(name, shape)] float; outputs: [(name, shape)] (element type from out_types)."""
        out_types = out_types or {}
        g = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, out_types.get(n, TensorProto.FLOAT), s) for n, s in outputs],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m
