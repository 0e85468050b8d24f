"""Fold BatchNormalization into the float Conv before it, where the graph is float around it:

    y = gamma * (conv(x, w) + b - mean) / sqrt(var + eps) + beta
      = conv(x, w * k) + (b - mean) * k + beta,      k = gamma / sqrt(var + eps)

computed in float64 and stored as float32 (`fold_bn_params`, the one formula: the quantizer's
float-graph fold uses it too). Only a Conv with constant float weights whose output feeds
nothing but the BatchNormalization is folded; anything else stays as it is.
"""
from __future__ import annotations

import numpy as np

from ..ir import FLOAT32, Graph, Node, Tensor
from ..onnx_values import attributes, make_node


def _foldable(graph: Graph, bn: Node, producers, consumers):
    conv = producers.get(bn.inputs[0])
    if conv is None or conv.op != "onnx" or conv.attrs["op_type"] != "Conv":
        return None
    if len(consumers.get(conv.outputs[0], [])) != 1 or conv.outputs[0] in graph.outputs:
        return None
    params = [graph.constants.get(n) for n in bn.inputs[1:5]]
    w = graph.constants.get(conv.inputs[1])
    if w is None or w.dtype.kind != "f" or any(p is None for p in params) or len(bn.outputs) != 1:
        return None
    return conv, w, params


def fold_bn_params(w: np.ndarray, b, gamma, beta, mean, var, eps: float) -> tuple:
    """The folded float32 (weights, bias) of a Conv (weights w, output channels on axis 0, bias
    b or None) followed by BatchNormalization(gamma, beta, mean, var, eps); float64 inside."""
    k = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    b = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    w_new = (w.astype(np.float64) * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    return w_new, ((b - mean.astype(np.float64)) * k + beta.astype(np.float64)).astype(np.float32)


def fold_batchnorm(graph: Graph) -> Graph:
    producers, consumers = graph.producers(), graph.consumers()
    constants, tensors = dict(graph.constants), dict(graph.tensors)
    replace, drop = {}, set()
    for bn in graph.nodes:
        if bn.op != "onnx" or bn.attrs["op_type"] != "BatchNormalization":
            continue
        found = _foldable(graph, bn, producers, consumers)
        if found is None:
            continue
        conv, w, (gamma, beta, mean, var) = found
        eps = next((a.f for a in bn.attrs["node"].attribute if a.name == "epsilon"), 1e-5)
        b = graph.constants.get(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
        w_name, b_name = conv.inputs[1] + "__bnfold", bn.outputs[0] + "__bnfold_bias"
        constants[w_name], constants[b_name] = fold_bn_params(w, b, gamma, beta, mean, var, eps)
        for name in (w_name, b_name):
            tensors[name] = Tensor(name, constants[name].shape, FLOAT32)
        proto = make_node("Conv", [conv.inputs[0], w_name, b_name], [bn.outputs[0]], name=conv.name,
                          **attributes(conv.attrs["node"]))
        attrs = dict(conv.attrs)
        attrs["node"] = proto
        replace[id(bn)] = Node("onnx", conv.name, proto.input, proto.output, attrs, conv.origin + " + BatchNormalization")
        drop.add(id(conv))
    if not replace:
        return graph
    nodes = tuple(replace.get(id(n), n) for n in graph.nodes if id(n) not in drop)
    return graph.replace(nodes=nodes, constants=constants, tensors=tensors)
