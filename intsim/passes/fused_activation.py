"""Resolve fused activations at prepare: a node whose attrs carry "fused_activation" (float
bounds (fmin, fmax), targets.activation) gets "lo" / "hi" in its output codes by the target's
rule (Target.fused_activation_range), once, in a new graph; the imported graph keeps the bounds,
so one graph prepares for several targets. `prepare_for_target` first lets the target mark the
nodes whose rule depends on the graph's constants (Target.annotate), so that the range follows
the rule that computes the node."""
from __future__ import annotations

from ..errors import QuantParamError
from ..ir import Graph, Node


def resolve_fused_activations(graph: Graph, target) -> Graph:
    if not any("fused_activation" in n.attrs for n in graph.nodes):
        return graph
    nodes = []
    for n in graph.nodes:
        if "fused_activation" in n.attrs:
            out = graph.tensors[n.outputs[0]]
            t = n.attrs["out_type"]
            lo, hi = target.fused_activation_range(n, n.attrs["fused_activation"], out.qparams, t)
            if not t.qmin <= lo <= hi <= t.qmax:
                raise QuantParamError(f"tensor '{out.name}' ({n.origin}): fused activation range [{lo}, {hi}] "
                                      f"is empty or outside {t} on target {target.name}")
            attrs = {k: v for k, v in n.attrs.items() if k != "fused_activation"}
            n = Node(n.op, n.name, n.inputs, n.outputs, {**attrs, "lo": lo, "hi": hi}, n.origin)
        nodes.append(n)
    return graph.replace(nodes=tuple(nodes))


def prepare_for_target(graph: Graph, target) -> Graph:
    """The graph as `target` runs it: Target.annotate (e.g. the ADD / MUL nodes the XNNPACK
    delegate declines, by their constant scales), then resolve_fused_activations."""
    return resolve_fused_activations(target.annotate(graph), target)
