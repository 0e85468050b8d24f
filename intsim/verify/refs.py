"""Reference runners for `intsim verify`: the same ONNX model executed by another engine,
with every integer tensor that intsim also holds exposed as an extra graph output.

    ort-fakequant   onnxruntime, ORT_DISABLE_ALL: Q/DQ run as written, compute ops in float32
    ort-int8        onnxruntime, ORT_ENABLE_ALL + session.qdqisint8allowed=1: fused integer kernels
    onnx-reference  onnx.reference.ReferenceEvaluator (the spec's NumPy semantics)
    qonnx           qonnx.core.onnx_exec.execute_onnx, when the qonnx package is installed

A reference returns {tensor name: array}; exposed integer tensors come back as the integers
the engine itself computed (its own QuantizeLinear / QLinear* outputs).

Extra graph outputs can change what onnxruntime computes (its optimizer's layout and fusion
choices, a float reduction's summation order), so for the references in PLAIN_SESSION verify
also runs the unmodified model in a second session with the same options (the deployed
session): final outputs are judged against it, the tapped session only localizes. The ONNX
reference evaluator runs node by node whatever the outputs are; qonnx's executor returns every
tensor of the unmodified model (return_full_exec_context), so neither needs a second run.

QONNX models hold their integers only implicitly: a Quant node outputs the dequantized float
y = (q - zp) * scale. `qonnx_taps` maps each Quant output to the integer tensor intsim's
importer names after it (`<output>__int`, see intsim.importer.qonnx), and the qonnx reference
returns that tensor's codes, q = rint(y / scale) + zp, so every quantized activation is
compared layer by layer.
"""
from __future__ import annotations

import re

import numpy as np

from ..errors import IntsimError
from ..importer.context import INT_ELEM
from ..ir import Graph, IntType
from ..numerics import expand_param
from ..onnx_core import proto

REFERENCES = ("ort-fakequant", "ort-int8", "onnx-reference", "qonnx", "tflite")   # tflite: verify.tflite_ref
PLAIN_SESSION = ("ort-fakequant", "ort-int8")
QONNX_QUANT_OPS = ("Quant", "IntQuant", "BipolarQuant")


def exposed_tensors(graph: Graph, model: proto.ModelProto) -> list:
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


def with_outputs(model: proto.ModelProto, graph: Graph, names: list) -> proto.ModelProto:
    """A copy of `model` whose graph also outputs `names`; their element types are taken from
    intsim's tensor dtypes (shapes left unknown)."""
    from onnx import helper     # deferred: heavy (ml_dtypes); `intsim run` never needs it
    m = proto.ModelProto()
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


def float_to_codes(y: np.ndarray, qp) -> np.ndarray:
    """Integer codes of a dequantized float tensor y = (q - zp) * scale: rint(y / scale) + zp,
    in float64 (exact for such y)."""
    y = np.asarray(y)
    sc = expand_param(qp.scale.astype(np.float64), y.shape, qp.axis, qp.block_size)
    zp = expand_param(qp.zero_point, y.shape, qp.axis, qp.block_size)
    return np.rint(y.astype(np.float64) / sc).astype(np.int64) + zp


def qonnx_taps(graph: Graph, model: proto.ModelProto) -> dict:
    """{intsim integer tensor: the QONNX Quant output whose codes it holds}, in intsim's
    topological order: every computed (not constant) quantized activation."""
    quant_outs = {n.output[0] for n in model.graph.node
                  if n.op_type in QONNX_QUANT_OPS and n.output and n.output[0]}
    taps = {}
    for node in graph.nodes:
        for o in node.outputs:
            t = graph.tensors.get(o)
            m = re.fullmatch(r"(.*)__int(?:__\d+)?", o or "")
            if (m and m.group(1) in quant_outs and m.group(1) not in taps.values() and t is not None
                    and isinstance(t.dtype, IntType) and t.qparams is not None):
                taps[o] = m.group(1)
    return taps


class _OrtReference:
    def __init__(self, model: proto.ModelProto, optimized: bool):
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
    def __init__(self, model: proto.ModelProto):
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


def _opset_at_least(model: proto.ModelProto, version: int) -> proto.ModelProto:
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    if current >= version:
        return model
    from onnx import version_converter   # deferred: heavy, needed only for old opsets
    return version_converter.convert_version(model, version)


class _QonnxReference:
    """qonnx's executor on the unmodified model; returns the graph outputs, every other tensor
    intsim's graph also holds by name, and for every tensor of `taps` (see qonnx_taps) the
    codes of its Quant output."""

    def __init__(self, model: proto.ModelProto, graph: Graph | None = None, taps: dict | None = None):
        try:
            from qonnx.core.onnx_exec import execute_onnx   # deferred: qonnx is optional
        except ImportError:
            raise IntsimError("reference 'qonnx' needs the qonnx package (pip install qonnx)") from None
        self.execute = execute_onnx
        self.base, self.graph, self.taps = model, graph, dict(taps or {})
        self.names = [o.name for o in model.graph.output]
        self.models: dict = {}   # input shapes -> shape-inferred ModelWrapper

    def _model(self, feeds: dict):
        """The model with every graph input's dims set from the feeds (qonnx reads a symbolic
        dim, e.g. a dynamic batch, as 0 and refuses the feed), shape-inferred by qonnx."""
        key = tuple(sorted((k, np.shape(v)) for k, v in feeds.items()))
        if key not in self.models:
            from qonnx.core.modelwrapper import ModelWrapper   # deferred: qonnx is optional
            from qonnx.transformation.infer_shapes import InferShapes
            m = proto.ModelProto()
            m.CopyFrom(self.base)
            for vi in m.graph.input:
                if vi.name in feeds and vi.type.HasField("tensor_type"):
                    shape = vi.type.tensor_type.shape
                    shape.ClearField("dim")
                    for d in np.shape(feeds[vi.name]):
                        shape.dim.add().dim_value = int(d)
            del m.graph.value_info[:]   # symbolic intermediate shapes: inferred again below
            for vi in m.graph.output:
                if vi.type.HasField("tensor_type"):
                    vi.type.tensor_type.ClearField("shape")
            try:  # qonnx's executor needs every tensor shape, as its own InferShapes gives them
                self.models[key] = ModelWrapper(m).transform(InferShapes())
            except Exception as e:  # noqa: BLE001
                raise IntsimError(f"qonnx cannot infer the shapes of this model: {str(e).splitlines()[0]}") from None
        return self.models[key]

    def run(self, feeds: dict) -> dict:
        try:
            ctx = self.execute(self._model(feeds), dict(feeds), return_full_exec_context=True)
        except IntsimError:
            raise
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"qonnx failed: {str(e).splitlines()[0]}") from None
        out = {n: np.asarray(ctx[n]) for n in self.names}
        if self.graph is not None:   # float tensors intsim shares by name: inputs of isolated runs
            out.update((n, np.asarray(v)) for n, v in ctx.items()
                       if n not in out and v is not None and n in self.graph.tensors and n not in self.graph.constants)
        for t, q in self.taps.items():
            if ctx.get(q) is not None:
                out[t] = float_to_codes(ctx[q], self.graph.tensors[t].qparams)
        return out


def qonnx_available() -> bool:
    try:
        import qonnx  # noqa: F401  (deferred: optional; this probes for it)
    except ImportError:
        return False
    return True


def make_reference(name: str, model: proto.ModelProto, graph: Graph | None = None, taps: dict | None = None):
    """A runner of `model` (already carrying the extra outputs) for reference `name`; the
    qonnx reference runs the unmodified model and also returns the codes of `taps`."""
    if name == "ort-fakequant":
        return _OrtReference(model, optimized=False)
    if name == "ort-int8":
        return _OrtReference(model, optimized=True)
    if name == "onnx-reference":
        return _OnnxReference(model)
    if name == "qonnx":
        return _QonnxReference(model, graph, taps)
    raise IntsimError(f"unknown reference '{name}' (known: {', '.join(REFERENCES)})")
