"""`intsim info`: what the importer made of a model: integer layers with their quantization,
MACs per sample, and the float islands that stayed float."""
from __future__ import annotations

import json

import numpy as np

from .ir import FloatType, Graph
from .ops import accumulates, float_compute_message, products_per_output


def _macs(graph: Graph, node) -> int | None:
    w = graph.constants.get(node.inputs[3])
    out = graph.tensors.get(node.outputs[0])
    if w is None or out is None or out.shape is None or any(d is None for d in out.shape[1:]):
        return None
    return products_per_output(node, w) * int(np.prod(out.shape[1:]))


def _shape(graph: Graph, name: str) -> str:
    """A tensor's declared shape, unknown dims as '?' ([?, 1, 8, 8]), or '[?]' if unknown."""
    t = graph.tensors.get(name)
    if t is None or t.shape is None:
        return "[?]"
    return "[" + ", ".join("?" if d is None or (isinstance(d, int) and d < 1) else str(d) for d in t.shape) + "]"


def _qp(graph: Graph, name: str) -> str:
    t = graph.tensors.get(name)
    if t is None:
        return "?"
    q = f" {t.qparams.describe()} ({t.qparams.kind})" if t.qparams is not None else ""
    return f"{t.dtype}{q}"


def layers(graph: Graph) -> list:
    rows = []
    for n in graph.nodes:
        is_float = n.op in ("onnx", "dequantize") and any(
            isinstance(getattr(graph.tensors.get(o), "dtype", None), FloatType) for o in n.outputs)
        row = {"node": n.name, "op": n.op, "origin": n.origin, "inputs": list(n.inputs), "outputs": list(n.outputs),
               "output_type": _qp(graph, n.outputs[0]) if n.outputs else "", "float": bool(is_float)}
        if n.attrs.get("float_reason"):
            row["float_reason"] = n.attrs["float_reason"]
        if accumulates(n.op):
            row["macs"] = _macs(graph, n)
            row["input_type"] = _qp(graph, n.inputs[0])
            row["weight_type"] = _qp(graph, n.inputs[3])
        rows.append(row)
    return rows


def describe(graph: Graph, as_json: bool = False) -> str:
    rows = layers(graph)
    macs = sum(r.get("macs") or 0 for r in rows)
    islands = [r for r in rows if r["float"] and r["op"] == "onnx"]
    if as_json:
        return json.dumps({"graph": graph.name, "opset": graph.opset, "inputs": list(graph.inputs),
                           "outputs": list(graph.outputs), "macs": macs, "layers": rows,
                           "float_islands": [r["node"] for r in islands]}, indent=1, default=str)
    lines = [f"graph {graph.name} (opset {graph.opset}): {len(rows)} nodes, {macs:,} MACs per sample",
             f"inputs: {', '.join(f'{i} {_shape(graph, i)} {_qp(graph, i)}' for i in graph.inputs)}",
             f"outputs: {', '.join(f'{o} {_shape(graph, o)} {_qp(graph, o)}' for o in graph.outputs)}", ""]
    for r in rows:
        extra = f"  MACs={r['macs']:,}" if r.get("macs") else ""
        lines.append(f"{r['op']:>16}  {r['node']}  -> {r['output_type']}{extra}")
    lines.append("")
    lines.append(f"float islands: {len(islands)}" + (": " + ", ".join(f"{r['node']} ({r['origin']})" for r in islands)
                                                   if islands else ""))
    if float_compute_message(graph):
        lines.append(float_compute_message(graph))
    return "\n".join(lines)
