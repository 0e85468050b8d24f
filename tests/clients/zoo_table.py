"""The real clients zoo (models/clients/): every model a quantization tool wrote, run in intsim
and compared with the tool's own reference outputs stored next to it.

    PYTHONPATH=. python -m tests.clients.zoo_table          # the README table (markdown)

Every `models/clients/manifest*.json` is read (manifest.json: Brevitas and qonnx, written by
models/build_clients_brevitas.py; other builders write their own manifest_*.json). The format,
kept stable: {"models": [entry, ...]}, each entry

    file       the .onnx file (relative to models/clients/), or null when the export failed
    npz        the .npz with `input/NAME` (the feeds) and `reference/NAME` (the reference's
               outputs); `torch/NAME` optionally (the framework's own output, for information)
    tool       "brevitas 0.13.4", "qonnx 1.0.0", ...
    form       "QONNX", "QCDQ", "QDQ", ...
    config     what was quantized how ("w4a8 per-tensor", ...)
    reference  which runtime produced reference/NAME, by intsim verify's reference names:
               "ort-int8" (onnxruntime, ORT_ENABLE_ALL, session.qdqisint8allowed=1) or
               "qonnx" (qonnx.core.onnx_exec.execute_onnx)
    target     the intsim target that models that runtime ("ort" when absent)
    optional:  exporter ("torchscript", "dynamo"), error (why there is no file), note

A row: how many Conv/Gemm/MatMul run in integers in intsim (integer accumulating layers / all
compute layers) and, for an onnxruntime reference, in onnxruntime's optimized graph (which the
`ort` target reproduces: what it leaves float stays float); the share of output elements equal
to the reference, and the largest difference in units of the output's quantization scale (LSB).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import intsim
from intsim.errors import IntsimError
from intsim.ops import accumulates, float_compute

from ..ortutil import optimized_op_types

CLIENTS = Path(__file__).resolve().parents[2] / "models" / "clients"


def entries() -> list:
    """Every manifest entry of models/clients/manifest*.json, in file then entry order; each
    gets `manifest` (the file it came from) and `name` (its .onnx stem, or a label if none)."""
    out = []
    for path in sorted(CLIENTS.glob("manifest*.json")):
        for e in json.loads(path.read_text())["models"]:
            e = dict(e, manifest=path.name)
            e.setdefault("target", "ort")
            e["name"] = Path(e["file"]).stem if e.get("file") else f"{e['tool']} {e['form']} {e['config']}"
            out.append(e)
    return out


def model_entries() -> list:
    """The entries that have a model file (the export worked)."""
    return [e for e in entries() if e.get("file")]


def case(entry) -> tuple:
    """(model path, feeds {input name: array}, reference {output name: array}) of an entry."""
    data = np.load(CLIENTS / entry["npz"])
    feeds = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("input/")}
    ref = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("reference/")}
    return CLIENTS / entry["file"], feeds, ref


def _constant(model: onnx.ModelProto, name: str):
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    return None


def output_lsb(model: onnx.ModelProto, name: str) -> float:
    """The quantization step of graph output `name`: the scale of the DequantizeLinear or
    QONNX Quant that produces it (the smallest one if per channel); 1.0 for an integer output
    or when no such node produces it (differences are then plain absolute values)."""
    for n in model.graph.node:
        if name in n.output and n.op_type in ("DequantizeLinear", "Quant", "IntQuant"):
            s = _constant(model, n.input[1])
            if s is not None:
                return float(np.min(np.abs(s)))
    return 1.0


def integer_layers(graph) -> tuple:
    """(integer accumulating layers, compute nodes left float as [(name, reason)])."""
    ints = sum(1 for n in graph.nodes if accumulates(n.op))
    return ints, [(n.name, why) for n, why in float_compute(graph)]


# onnxruntime's optimized-graph op types that accumulate in integers / in float
ORT_INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger",
                             "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention"})
ORT_FLOAT_OPS = frozenset({"Conv", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
                           "ConvTranspose"})


def ort_layers(model: onnx.ModelProto) -> tuple:
    """(integer, float) accumulating layers in onnxruntime's optimized graph of `model`."""
    ops = optimized_op_types(model)
    return sum(op in ORT_INTEGER_OPS for op in ops), sum(op in ORT_FLOAT_OPS for op in ops)


def compare(model: onnx.ModelProto, got: dict, ref: dict) -> tuple:
    """(equal share in %, max |difference| in output LSB, element count) over every output."""
    eq, total, worst = 0, 0, 0.0
    for name, want in ref.items():
        d = np.abs(np.asarray(got[name], np.float64) - np.asarray(want, np.float64))
        eq, total = eq + int((d == 0).sum()), total + d.size
        if d.size:
            worst = max(worst, float(d.max()) / output_lsb(model, name))
    return 100.0 * eq / max(total, 1), worst, total


def measure(entry) -> dict:
    """One table row: the entry plus `integers` ("3/3"), `float_nodes`, `equal`, `max_lsb`, or
    `error` (the export's failure or intsim's refusal)."""
    row = dict(entry)
    if not entry.get("file"):
        return row
    path, feeds, ref = case(entry)
    model = onnx.load(str(path))
    try:
        with warnings.catch_warnings():   # the row states the float nodes itself
            warnings.simplefilter("ignore")
            prog = intsim.load(path, target=entry["target"])
            got = prog.run(feeds)
    except IntsimError as e:
        row["error"] = f"intsim: {e}"
        return row
    ints, floats = integer_layers(prog.graph)
    row.update(integers=f"{ints}/{ints + len(floats)}", float_nodes=floats)
    if entry["reference"].startswith("ort"):
        oi, of = ort_layers(model)
        row["ort_integers"] = f"{oi}/{oi + of}"
    row["equal"], row["max_lsb"], row["elements"] = compare(model, got, ref)
    return row


def _cell(row) -> str:
    if "equal" not in row:
        err = row.get("error", "?").replace("|", "/")
        return f"| no model: {err[:110] + '...' if len(err) > 110 else err} | | | |"
    return f"| {row['integers']} | {row.get('ort_integers', '')} | {row['equal']:.2f}% | {row['max_lsb']:g} |"


def markdown(rows=None) -> str:
    rows = [measure(e) for e in entries()] if rows is None else rows
    lines = ["| tool | form | exporter | config | model | reference (intsim target) | intsim: integer / all "
             "Conv+Gemm | onnxruntime: integer / all | equal | max LSB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['form']} | {r.get('exporter', '')} | {r['config']} | "
                     f"{r['file'] or ''} | {r['reference']} (`{r['target']}`) " + _cell(r))
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
