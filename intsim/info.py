"""`intsim info`: what the importer made of a model: integer layers with their quantization,
MACs per sample, and the float islands that stayed float."""
from __future__ import annotations

import json
import warnings

import numpy as np

from .errors import IntsimError
from .ir import FloatType, Graph
from .ops import accumulates, float_compute_message, products_per_output
from .runtime import Program


def _known(shape) -> bool:
    return shape is not None and all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape[1:])


def _macs(graph: Graph, node, shapes: dict) -> int | None:
    """MACs per sample: products per output value x output values, from the declared output
    shape or, where that is unknown (after com.microsoft QOperator ops), from `shapes`."""
    w = graph.constants.get(node.inputs[3])
    out = graph.tensors.get(node.outputs[0])
    shape = out.shape if out is not None and _known(out.shape) else shapes.get(node.outputs[0])
    if w is None or not _known(shape):
        return None
    return products_per_output(node, w) * int(np.prod(shape[1:]))


def run_shapes(graph: Graph) -> dict:
    """Every tensor's shape (name -> tuple), from one batch-1 run on zeros with the NumPy
    reference kernels (no compilation): what a declared shape leaves unknown. {} when the
    inputs' shapes are not fixed past the batch axis or the run fails (info then shows what
    the model declares)."""
    feeds = {}
    for name in graph.inputs:
        t = graph.tensors.get(name)
        if t is None or t.shape is None or not all(isinstance(d, int) and d >= 1 for d in t.shape[1:]):
            return {}
        feeds[name] = np.zeros((1,) + tuple(t.shape[1:]), getattr(t.dtype, "storage", np.float32))
    try:
        with warnings.catch_warnings():      # info states the float islands itself
            warnings.simplefilter("ignore")
            outs, taps = Program(graph, kernels="reference").run(feeds, taps=True)
    except (IntsimError, ValueError, TypeError, ArithmeticError, MemoryError, IndexError, KeyError):
        return {}
    shapes = {k: np.shape(v) for k, v in feeds.items()}
    for tap in taps.values():
        shapes.update({k: np.shape(v) for k, v in tap.get("outputs", {}).items()})
    shapes.update({k: np.shape(v) for k, v in outs.items()})
    return shapes


def _label(graph: Graph, n) -> str:
    """The IR op, or for a node left as ONNX its ONNX op type, with what it computes on:
    'MaxPool (uint8, moves integers)', 'Softmax (float32, float island)'."""
    if n.op != "onnx":
        return n.op
    proto = n.attrs.get("node")
    op_type = getattr(proto, "op_type", None) or n.origin.split(" ")[0] or "onnx"
    t = graph.tensors.get(n.outputs[0]) if n.outputs else None
    dtype = getattr(t, "dtype", None)
    what = "float island" if isinstance(dtype, FloatType) else "moves integers"
    return f"{op_type} ({dtype}, {what})" if dtype is not None else op_type


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


def layers(graph: Graph, shapes: dict | None = None) -> list:
    if shapes is None:
        missing = [n for n in graph.nodes if accumulates(n.op) and n.outputs
                   and not _known(getattr(graph.tensors.get(n.outputs[0]), "shape", None))]
        shapes = run_shapes(graph) if missing else {}
    rows = []
    for n in graph.nodes:
        is_float = n.op in ("onnx", "dequantize") and any(
            isinstance(getattr(graph.tensors.get(o), "dtype", None), FloatType) for o in n.outputs)
        row = {"node": n.name, "op": n.op, "label": _label(graph, n), "origin": n.origin, "inputs": list(n.inputs), "outputs": list(n.outputs),
               "output_type": _qp(graph, n.outputs[0]) if n.outputs else "", "float": bool(is_float)}
        if n.attrs.get("float_reason"):
            row["float_reason"] = n.attrs["float_reason"]
        if accumulates(n.op):
            row["macs"] = _macs(graph, n, shapes)
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
        lines.append(f"{r['label']:>16}  {r['node']}  -> {r['output_type']}{extra}")
    lines.append("")
    lines.append(f"float islands: {len(islands)}" + (": " + ", ".join(f"{r['node']} ({r['origin']})" for r in islands)
                                                   if islands else ""))
    if float_compute_message(graph):
        lines.append(float_compute_message(graph))
    return "\n".join(lines)
