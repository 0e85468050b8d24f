"""The float ONNX graph as the quantizer sees it: a mutable working copy with NumPy weights.

`FloatGraph` wraps a float32 ONNX model (read once, shape-inferred) and exposes what the
quantizer needs: constant weights as NumPy arrays, producer/consumer maps, the list of
weighted layers (`Layer`: Conv, Gemm, MatMul with a constant weight) with the activation
that follows each, and float execution on onnxruntime to collect activations.

BatchNormalization folding (`fold_batchnorm`) happens here because it is a graph rewrite of
this float graph; the arithmetic is `passes.fold_bn.fold_bn_params`, the IR pass's own:

    w'[c] = w[c] * gamma[c] / sqrt(var[c] + eps)
    b'[c] = (b[c] - mean[c]) * gamma[c] / sqrt(var[c] + eps) + beta[c]

computed in float64 and stored as float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ShapeError, UnsupportedOpError
from ..geometry import auto_pads
from ..loader import load_model
from ..passes.fold_bn import fold_bn_params

WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
ACTIVATION_OPS = ("Relu", "Clip")


@dataclass
class Layer:
    """One weighted layer. `weight`/`bias` are initializer names (bias may be None).

    kind: "conv" (weight OIHW, groups), "gemm" (weight stored (N, K) when transB=1, else (K, N)),
    or "matmul" (weight (K, N)). `act` is the Relu/Clip node that is the single consumer of
    the layer's output, with its bounds `act_lo`/`act_hi` (None when absent).
    """

    node: onnx.NodeProto
    kind: str
    weight: str
    bias: Optional[str]
    groups: int = 1
    trans_b: bool = False
    act: Optional[onnx.NodeProto] = None
    act_lo: float = -np.inf
    act_hi: float = np.inf

    @property
    def name(self) -> str:
        return self.node.name or self.node.output[0]

    @property
    def out_axis(self) -> int:
        """The weight axis of the output channels."""
        return 1 if (self.kind == "matmul" or (self.kind == "gemm" and not self.trans_b)) else 0

    @property
    def output(self) -> str:
        """The tensor after the fused activation (or the layer's own output)."""
        return self.act.output[0] if self.act is not None else self.node.output[0]


def read_model(model) -> onnx.ModelProto:
    """Path, bytes or ModelProto -> shape-inferred float ModelProto (a copy), read by
    `loader.load_model` (size limits, external data confined, checker, shape inference)."""
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        model = m
    return load_model(model)


class FloatGraph:
    """A mutable float ONNX graph with weights as NumPy arrays."""

    def __init__(self, model):
        self.model = read_model(model)
        g = self.model.graph
        self.inits = {t.name: numpy_helper.to_array(t).copy() for t in g.initializer}
        for n in g.node:  # Constant nodes become initializers
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
                self.inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).copy()
        self.nodes = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] in self.inits)]
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.outputs = [o.name for o in g.output]
        for i, n in enumerate(self.nodes):
            if not n.name:
                n.name = f"{n.op_type}_{i}"

    # -- structure -------------------------------------------------------------------------
    def producers(self) -> dict:
        return {o: n for n in self.nodes for o in n.output}

    def consumers(self) -> dict:
        out: dict = {}
        for n in self.nodes:
            for i in n.input:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def input_shape(self, name: str) -> tuple:
        for vi in list(self.model.graph.input) + list(self.model.graph.value_info):
            if vi.name == name:
                return tuple(d.dim_value if d.HasField("dim_value") else None
                             for d in vi.type.tensor_type.shape.dim)
        raise ShapeError(f"tensor '{name}': shape unknown")

    def layers(self) -> list:
        """The weighted layers in graph order (topological, as ONNX requires)."""
        cons = self.consumers()
        out = []
        for n in self.nodes:
            layer = self._layer(n)
            if layer is None:
                continue
            users = cons.get(n.output[0], [])
            if len(users) == 1 and users[0].op_type in ACTIVATION_OPS and n.output[0] not in self.outputs:
                layer.act = users[0]
                layer.act_lo, layer.act_hi = self.act_bounds(users[0])
            out.append(layer)
        return out

    def _layer(self, n) -> Optional[Layer]:
        if n.op_type not in WEIGHTED_OPS or len(n.input) < 2 or n.input[1] not in self.inits:
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if bias is not None and bias not in self.inits:
            return None
        w = self.inits[n.input[1]]
        if n.op_type == "Conv":
            if w.ndim != 4:
                raise UnsupportedOpError("Conv", n.name, self.opset, f"only 2-D convolution, weight rank {w.ndim}")
            return Layer(n, "conv", n.input[1], bias, groups=int(attrs.get("group", 1)))
        if n.op_type == "Gemm":
            if attrs.get("transA", 0) or float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
                raise UnsupportedOpError("Gemm", n.name, self.opset, "transA, alpha or beta other than the default")
            if bias is not None and self.inits[bias].ndim != 1:
                return None
            return Layer(n, "gemm", n.input[1], bias, trans_b=bool(attrs.get("transB", 0)))
        if w.ndim != 2:
            return None
        return Layer(n, "matmul", n.input[1], None)

    def act_bounds(self, n) -> tuple:
        if n.op_type == "Relu":
            return 0.0, np.inf
        lo, hi = -np.inf, np.inf
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if "min" in attrs:
            lo, hi = float(attrs["min"]), float(attrs.get("max", np.inf))
        if len(n.input) > 1 and n.input[1]:
            lo = float(self.inits[n.input[1]])
        if len(n.input) > 2 and n.input[2]:
            hi = float(self.inits[n.input[2]])
        return lo, hi

    @property
    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)

    # -- rewriting -------------------------------------------------------------------------
    def remove_node(self, node, keep_output: bool = True) -> None:
        """Drop a single-input pass-through node, rewiring its consumers to its input. When
        its output is a graph output, the producer of its input is renamed instead."""
        src, dst = node.input[0], node.output[0]
        self.nodes = [n for n in self.nodes if n is not node]
        if dst in self.outputs:
            for n in self.nodes:
                for i, o in enumerate(n.output):
                    if o == src:
                        n.output[i] = dst
                for i, x in enumerate(n.input):
                    if x == src:
                        n.input[i] = dst
        else:
            for n in self.nodes:
                for i, x in enumerate(n.input):
                    if x == dst:
                        n.input[i] = src

    def to_model(self) -> onnx.ModelProto:
        """The current float graph as a ModelProto (initializers from `inits`)."""
        used = {i for n in self.nodes for i in n.input if i}
        g = self.model.graph
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in self.inits.items() if k in used]
        outs = [o for o in g.output]
        graph = helper.make_graph(list(self.nodes), g.name, [i for i in g.input if i.name not in self.inits],
                                  outs, inits)
        m = helper.make_model(graph, opset_imports=list(self.model.opset_import),
                              producer_name="intsim.quantize")
        m.ir_version = self.model.ir_version
        return m

    # -- execution -------------------------------------------------------------------------
    def run(self, feeds: dict, names=None, batch: int = 256) -> dict:
        """Float outputs `names` (any tensors of the graph) on onnxruntime, batched."""
        import onnxruntime as ort   # deferred: heavy, needed only to run the float graph
        m = self.to_model()
        names = list(names) if names is not None else list(self.outputs)
        known = {o.name for o in m.graph.output}
        for nm in names:
            if nm not in known:
                m.graph.output.append(helper.make_empty_tensor_value_info(nm))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        n = len(next(iter(feeds.values())))
        parts = [sess.run(names, {k: v[i:i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
        return {nm: np.concatenate([p[j] for p in parts]) for j, nm in enumerate(names)}


def fold_batchnorm(fg: FloatGraph) -> int:
    """Fold every BatchNormalization whose input is a Conv's only consumer into that Conv.
    Returns the number folded; others stay (and run in float)."""
    prod, cons = fg.producers(), fg.consumers()
    folded = 0
    for bn in [n for n in fg.nodes if n.op_type == "BatchNormalization"]:
        conv = prod.get(bn.input[0])
        if (conv is None or conv.op_type != "Conv" or conv.input[1] not in fg.inits
                or len(cons.get(bn.input[0], [])) != 1 or len(bn.output) > 1 and any(bn.output[1:])):
            continue
        if not all(x in fg.inits for x in bn.input[1:5]):
            continue
        eps = next((helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (fg.inits[x] for x in bn.input[1:5])
        b = fg.inits[conv.input[2]] if len(conv.input) > 2 and conv.input[2] else None
        wname, bname = conv.input[1], conv.name + "_bias"
        fg.inits[wname], fg.inits[bname] = fold_bn_params(fg.inits[wname], b, gamma, beta, mean, var, eps)
        if len(conv.input) > 2:
            conv.input[2] = bname
        else:
            conv.input.append(bname)
        fg.remove_node(bn)
        folded += 1
    return folded


def im2col(x: np.ndarray, node: onnx.NodeProto, w_shape: tuple) -> np.ndarray:
    """Conv input (N, C, H, W) -> patches (G, N*OH*OW, C/G*KH*KW), float64, zero padding,
    ordered like the weight's (C/G, KH, KW) flattening, so out[g] = patches[g] @ w[g].T."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    cout, cpg, kh, kw = w_shape
    g = int(attrs.get("group", 1))
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    n, c, h, w = x.shape
    if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = auto_pads(auto, (h, w), (kh, kw), (sh, sw), (dh, dw))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * oh:sh, j * dw:j * dw + sw * ow:sw]
    cols = cols.reshape(n, g, cpg, kh, kw, oh * ow).transpose(1, 0, 5, 2, 3, 4)
    return cols.reshape(g, n * oh * ow, cpg * kh * kw)


def layer_patches(layer: Layer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The layer's input as (G, rows, K): conv patches, or the Gemm/MatMul rows (G = 1)."""
    if layer.kind == "conv":
        return im2col(x, layer.node, w.shape)
    return x.reshape(-1, x.shape[-1]).astype(np.float64)[None]


def grouped_weight(layer: Layer, w: np.ndarray) -> np.ndarray:
    """Weight as (G, Cout/G, K) so that out[g] = patches[g] @ wg[g].T."""
    if layer.kind == "conv":
        return w.reshape(layer.groups, w.shape[0] // layer.groups, -1)
    return (w if layer.out_axis == 0 else w.T)[None]
