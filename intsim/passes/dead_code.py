"""Remove nodes none of whose outputs is consumed or is a graph output (e.g. the dead
`Constant` nodes and orphaned DequantizeLinear nodes that QDQ fusion leaves behind)."""
from __future__ import annotations

from ..ir import Graph


def remove_dead_nodes(graph: Graph) -> Graph:
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    tensors = {k: v for k, v in graph.tensors.items() if k in live or k in graph.inputs}
    consts = {k: v for k, v in graph.constants.items() if k in live}
    return graph.replace(nodes=tuple(kept), tensors=tensors, constants=consts)
