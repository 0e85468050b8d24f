"""Helpers for comparing intsim with onnxruntime: sessions with the integer (fused) path on,
or all optimizations off (fake-quant float), and small float graphs quantized by
onnxruntime's own quantizer."""
from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def session(model, optimized: bool = True, threads: int = 1) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def run_ort(model, feeds: dict, optimized: bool = True) -> dict:
    s = session(model, optimized)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def _qtypes():
    from onnxruntime.quantization import QuantType
    return {"u8": QuantType.QUInt8, "s8": QuantType.QInt8, "u16": QuantType.QUInt16, "s16": QuantType.QInt16,
            "s4": QuantType.QInt4, "u4": QuantType.QUInt4}


class _LazyTypes(dict):
    def __missing__(self, key):
        self.update(_qtypes())
        return dict.__getitem__(self, key)


_QTYPES = _LazyTypes()


class _Reader:
    def __init__(self, feeds_list):
        self._it = iter(feeds_list)

    def get_next(self):
        return next(self._it, None)


def quantize(model: onnx.ModelProto, calib: list, fmt: str = "qdq", act: str = "u8",
             per_channel: bool = True, extra: dict | None = None, weight: str = "s8") -> onnx.ModelProto:
    """onnxruntime.quantization.quantize_static on an in-memory float model."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "f.onnx"), os.path.join(d, "q.onnx")
        onnx.save(model, src)
        quantize_static(src, dst, _Reader(calib),
                        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                        activation_type=_QTYPES[act], weight_type=_QTYPES[weight], per_channel=per_channel,
                        extra_options=extra or {})
        return onnx.load(dst)


def const(name: str, a: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(a), name)


def float_model(nodes, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                          [const(k, v) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def optimized_op_types(model: onnx.ModelProto) -> list:
    """The op types of onnxruntime's fully optimized graph of `model` (int8 QDQ allowed): what
    it fused, e.g. QLinearConv."""
    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.add_session_config_entry("session.qdqisint8allowed", "1")
        so.optimized_model_filepath = os.path.join(d, "opt.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
