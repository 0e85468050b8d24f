"""Reference runners for `intsim verify`: the same ONNX model executed by another engine,
with every integer tensor that intsim also holds exposed as an extra graph output.

    ort-fakequant   onnxruntime, ORT_DISABLE_ALL: Q/DQ run as written, compute ops in float32
    ort-int8        onnxruntime, ORT_ENABLE_ALL + session.qdqisint8allowed=1: fused integer kernels
    onnx-reference  onnx.reference.ReferenceEvaluator (the spec's NumPy semantics)
    qonnx           qonnx.core.onnx_exec.execute_onnx, when the qonnx package is installed

A reference returns {tensor name: array}; exposed integer tensors come back as the integers
the engine itself computed (its own QuantizeLinear / QLinear* outputs).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..errors import IntsimError
from ..importer.context import INT_ELEM
from ..ir import Graph, IntType

REFERENCES = ("ort-fakequant", "ort-int8", "onnx-reference", "qonnx")


def exposed_tensors(graph: Graph, model: onnx.ModelProto) -> list:
    """Names of intsim's integer node outputs that the ONNX model also computes, in intsim's
    topological order (QDQ: the QuantizeLinear outputs; QOperator: every QLinear* output)."""
    computed = {o for n in model.graph.node for o in n.output if o}
    names, seen = [], set()
    for node in graph.nodes:
        for o in node.outputs:
            t = graph.tensors.get(o)
            if o and o in computed and o not in seen and t is not None and isinstance(t.dtype, IntType):
                names.append(o)
                seen.add(o)
    return names


def with_outputs(model: onnx.ModelProto, graph: Graph, names: list) -> onnx.ModelProto:
    """A copy of `model` whose graph also outputs `names`; their element types are taken from
    intsim's tensor dtypes (shapes left unknown)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name in have:
            continue
        elem = INT_ELEM.get(graph.tensors[name].dtype)
        if elem is None:
            raise IntsimError(f"tensor '{name}' has type {graph.tensors[name].dtype}, which ONNX cannot output")
        m.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    return m


class _OrtReference:
    def __init__(self, model: onnx.ModelProto, optimized: bool):
        import onnxruntime as ort   # deferred: heavy, needed only by the ort references
        so = ort.SessionOptions()
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                       else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.qdqisint8allowed", "1")
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - any session failure is an unusable model
            raise IntsimError(f"onnxruntime cannot load the model: {str(e).splitlines()[0]}") from None
        self.names = [o.name for o in self.sess.get_outputs()]

    def run(self, feeds: dict) -> dict:
        try:
            return dict(zip(self.names, self.sess.run(self.names, feeds)))
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"onnxruntime failed: {str(e).splitlines()[0]}") from None


class _OnnxReference:
    def __init__(self, model: onnx.ModelProto):
        from onnx.reference import ReferenceEvaluator   # deferred: heavy, one reference only
        self.names = [o.name for o in model.graph.output]
        try:
            self.ev = ReferenceEvaluator(model)
        except RuntimeError:
            # onnx.reference implements QuantizeLinear/DequantizeLinear from opset 19 on; their
            # int8/uint8 semantics are unchanged since opset 13, so convert the opset up.
            try:
                self.ev = ReferenceEvaluator(_opset_at_least(model, 21))
            except Exception as e:  # noqa: BLE001
                raise IntsimError(f"onnx reference evaluator cannot load the model: {str(e).splitlines()[0]}") from None

    def run(self, feeds: dict) -> dict:
        try:
            return dict(zip(self.names, (np.asarray(v) for v in self.ev.run(None, feeds))))
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"onnx reference evaluator failed: {str(e).splitlines()[0]}") from None


def _opset_at_least(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    if current >= version:
        return model
    from onnx import version_converter   # deferred: heavy, needed only for old opsets
    return version_converter.convert_version(model, version)


class _QonnxReference:
    def __init__(self, model: onnx.ModelProto):
        try:
            from qonnx.core.modelwrapper import ModelWrapper   # deferred: qonnx is optional
            from qonnx.core.onnx_exec import execute_onnx
            from qonnx.transformation.infer_shapes import InferShapes
        except ImportError:
            raise IntsimError("reference 'qonnx' needs the qonnx package (pip install qonnx)") from None
        try:  # qonnx's executor needs every tensor shape, as its own InferShapes gives them
            self.model = ModelWrapper(model).transform(InferShapes())
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"qonnx cannot infer the shapes of this model: {str(e).splitlines()[0]}") from None
        self.execute = execute_onnx
        self.names = [o.name for o in model.graph.output]

    def run(self, feeds: dict) -> dict:
        ctx = self.execute(self.model, dict(feeds), return_full_exec_context=True)
        return {n: np.asarray(ctx[n]) for n in self.names}


def qonnx_available() -> bool:
    try:
        import qonnx  # noqa: F401  (deferred: optional; this probes for it)
    except ImportError:
        return False
    return True


def make_reference(name: str, model: onnx.ModelProto):
    """A runner of `model` (already carrying the extra outputs) for reference `name`."""
    if name == "ort-fakequant":
        return _OrtReference(model, optimized=False)
    if name == "ort-int8":
        return _OrtReference(model, optimized=True)
    if name == "onnx-reference":
        return _OnnxReference(model)
    if name == "qonnx":
        return _QonnxReference(model)
    raise IntsimError(f"unknown reference '{name}' (known: {', '.join(REFERENCES)})")
