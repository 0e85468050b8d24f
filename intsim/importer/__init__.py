"""ONNX -> intsim IR. `import_model(model)` lowers every node with its registered lowering
(QDQ, QOperator, generic). The import passes (QDQ fusion, dead-code removal) run after it,
in intsim.pipeline."""
from __future__ import annotations

import warnings

from ..errors import InvalidModelError, UnsupportedOpError
from ..ir import Graph, IntType
from ..onnx_core import proto
from ..onnx_values import elem_name
from . import ms_attention, qoperator, qonnx, quant_ops  # noqa: F401  (register lowerings)
from .context import ImportContext, dtype_of_elem, to_numpy
from .generic import lower_generic
from .registry import find


def _toposort(graph: proto.GraphProto, known: set) -> list:
    """Nodes in an order where every input is produced first; cycles and dangling inputs fail."""
    produced_by = {}
    for n in graph.node:
        for o in n.output:
            if o:
                if o in produced_by or o in known:
                    raise InvalidModelError(f"tensor '{o}' is produced twice (node '{n.name}')")
                produced_by[o] = n
    order, state = [], {}
    for root in graph.node:
        stack = [(root, False)]
        while stack:
            n, done = stack.pop()
            key = id(n)
            if done:
                state[key] = 2
                order.append(n)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                raise InvalidModelError(f"the graph has a cycle through node '{n.name or n.output[0]}'")
            state[key] = 1
            stack.append((n, True))
            for i in n.input:
                if not i or i in known:
                    continue
                p = produced_by.get(i)
                if p is None:
                    raise InvalidModelError(f"node '{n.name or n.op_type}' reads '{i}', which nothing produces")
                if state.get(id(p)) == 1:
                    raise InvalidModelError(f"the graph has a cycle through node '{p.name or p.output[0]}'")
                if state.get(id(p)) != 2:
                    stack.append((p, False))
    return order


def import_model(model: proto.ModelProto, stored_inputs: bool = False) -> Graph:
    """stored_inputs: initializers also listed as graph inputs are the constants the file
    states (folded like any other, with one warning naming them), as the "integer" QDQ fusion
    policy reads them; by default they stay overridable, as onnxruntime runs them."""
    ctx = ImportContext(model)
    if stored_inputs and ctx.overridable:
        names = ", ".join(f"'{n}'" for n in sorted(ctx.overridable))
        warnings.warn(f"initializer {names} is also a graph input; the integer policy uses its stored value",
                      stacklevel=3)
        ctx.overridable = frozenset()
    g = model.graph
    if any(n.op_type in ("If", "Loop", "Scan") for n in g.node):
        n = next(n for n in g.node if n.op_type in ("If", "Loop", "Scan"))
        raise UnsupportedOpError(n.op_type, n.name or n.output[0], ctx.opset(""), "control flow")
    inputs = [i.name for i in g.input if i.name not in ctx.constants]
    for name in inputs:
        elem, shape = ctx.value_types.get(name, (None, None))
        ctx.declare(name, dtype_of_elem(elem, name) if elem is not None else None, shape)
    for node in _toposort(g, set(inputs) | set(ctx.constants)):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            _constant(ctx, node)
            continue
        fn = find(node.domain or "", node.op_type)
        if fn is None:
            lower_generic(ctx, node)
        else:
            fn(ctx, node)
    outputs = [o.name for o in g.output]
    for o in outputs:
        if o not in ctx.tensors:
            raise InvalidModelError(f"graph output '{o}' is not produced by any node")
        _check_output_type(ctx, o)
    return Graph(ctx.tensors, tuple(ctx.nodes), tuple(inputs), tuple(outputs), ctx.constants,
                 name=g.name or "graph", opset=ctx.opset(""), overridable=ctx.overridable)


def _check_output_type(ctx: ImportContext, name: str) -> None:
    """A graph output declared integer but computed as float (or the reverse): onnxruntime
    refuses such a model at load; so does intsim."""
    elem = ctx.value_types.get(name, (None, None))[0]
    got = ctx.tensors[name].dtype
    if not elem or got is None:
        return
    declared = dtype_of_elem(elem, name)
    if declared is not None and isinstance(declared, IntType) != isinstance(got, IntType):
        raise InvalidModelError(f"graph output '{name}' is declared {elem_name(elem)} "
                                f"but its node computes {got}")


def _constant(ctx: ImportContext, node) -> None:
    a = {x.name: x for x in node.attribute}
    if "value" not in a:
        raise ctx.unsupported(node, "only Constant with a tensor 'value' is supported")
    t = a["value"].t
    ctx.add_constant(node.output[0], to_numpy(t), t.data_type)


__all__ = ["import_model"]
