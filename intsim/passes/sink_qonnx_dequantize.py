"""QONNX: move a Quant's integers through the data-movement ops that follow it.

A QONNX Quant outputs dequantized floats y = (q - zp) * s; Brevitas then often pools and
flattens those floats before the next layer (Quant -> MaxPool -> Flatten -> Gemm), so the Gemm
sees no dequantize at its input and would stay a float island. For a per-tensor scale s > 0
these ops commute with the dequantization exactly:

    MaxPool((q - zp) * s) == (MaxPool(q) - zp) * s        (x -> (x - zp) * s is increasing)
    Reshape/Flatten/Transpose/Squeeze/Unsqueeze/Identity: the same values, moved

so `dequantize -> op` becomes `op on the integers -> dequantize`, and the QDQ pass then fuses
the compute node that reads it. QONNX dequantize nodes (importer attr "qonnx") are always
moved; a QDQ graph's DequantizeLinear only under the "integer" fusion policy (`qdq=True`; the
Brevitas QCDQ DQ -> Flatten -> Gemm): under "onnxruntime" where an op runs is onnxruntime's
choice, which fuse_qdq reproduces.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node

SINKABLE = frozenset({"MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
                      "Identity"})


def _sinkable_dq(graph: Graph, producer: dict, node: Node, qdq: bool):
    """The QONNX (or, qdq, any) per-tensor, positive-scale dequantize feeding `node`'s data
    input, or None."""
    if node.op != "onnx" or node.attrs.get("op_type") not in SINKABLE or not node.inputs or len(node.outputs) != 1:
        return None
    dq = producer.get(node.inputs[0])
    if dq is None or dq.op != "dequantize" or not (qdq or dq.attrs.get("qonnx")) or dq.attrs.get("block_size"):
        return None
    scale = graph.constants.get(dq.inputs[1])
    if scale is None or np.asarray(scale).size != 1 or not float(np.asarray(scale).reshape(-1)[0]) > 0:
        return None
    return dq


def sink_qonnx_dequantize(graph: Graph, qdq: bool = False) -> Graph:
    producer = graph.producers()
    tensors, nodes, changed = dict(graph.tensors), [], False
    for node in graph.nodes:
        dq = _sinkable_dq(graph, producer, node, qdq)
        if dq is None:
            nodes.append(node)
            continue
        q, y = dq.inputs[0], node.outputs[0]
        y_int = y + "__int"
        while y_int in tensors:
            y_int += "_"
        src, out = tensors[q], tensors.get(y)
        tensors[y_int] = src.with_(name=y_int, shape=out.shape if out is not None else None)
        moved = Node("onnx", node.name, (q,) + tuple(node.inputs[1:]), (y_int,), node.attrs, node.origin)
        deq = Node("dequantize", node.name + "/dequantize", (y_int,) + tuple(dq.inputs[1:]), (y,), dq.attrs,
                   node.origin)
        nodes += [moved, deq]
        producer[y] = deq
        changed = True
    return graph.replace(nodes=tuple(nodes), tensors=tensors) if changed else graph
