"""Shape and Size of a dequantized tensor read from its integer tensor: DequantizeLinear keeps
its input's shape (y = (x - zp) * scale elementwise, any axis or block size), so Shape(DQ(x)) =
Shape(x) and Size(DQ(x)) = Size(x). A DequantizeLinear read only by such nodes (the
dynamic-batch channel shuffle of ShuffleNetV2 as torch exports and onnxruntime quantizes it:
31 of them, each a float pass over an activation on every run) then has no reader left and
remove_dead_nodes drops it."""
from __future__ import annotations

from ..ir import Graph, Node

SHAPE_OPS = ("Shape", "Size")


def read_shapes_from_integers(graph: Graph) -> Graph:
    """Every standard-domain Shape/Size node whose input a `dequantize` node produces reads the
    dequantize's integer input instead (attributes such as Shape's start/end unchanged)."""
    producers = graph.producers()
    nodes, changed = [], False
    for n in graph.nodes:
        if n.op == "onnx" and n.attrs.get("op_type") in SHAPE_OPS and not n.attrs.get("domain") and n.inputs:
            p = producers.get(n.inputs[0])
            if p is not None and p.op == "dequantize" and p.inputs and p.inputs[0]:
                n = Node(n.op, n.name, (p.inputs[0],) + tuple(n.inputs[1:]), n.outputs, n.attrs, n.origin)
                changed = True
        nodes.append(n)
    return graph.replace(nodes=tuple(nodes)) if changed else graph
