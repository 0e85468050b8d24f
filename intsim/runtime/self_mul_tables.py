"""x times a table of itself (swish, hard-swish) run as one 256-entry table.

EfficientNet's swish is `mul(x, lut(x))` (QLinearSigmoid then QLinearMul on the same 8-bit
codes x), MobileNetV3's hard-swish `mul(x, table island(x))` (HardSigmoid between a
dequantize and a quantize, intsim.runtime.island_tables). Both operands of the mul are
functions of one code, so its output is too:

    y[i] = table[x[i]],   table[c] = mul(c, f(c))  for the 256 codes c

The table is the prepared steps themselves (f's step, then the mul's) run once on a probe
holding every code at many positions (island_tables.tabulate; a code whose results differ
between positions keeps the steps as they are), so it is what they compute, by construction.
The mul's step becomes the table step (channels-last kept, intsim.layout.map_kept); f's step
is dropped when the mul is its only reader. Like the island tables: fast kernels only, runs
without taps only (runs with taps run every step), off with INTSIM_ISLAND_TABLES=0.
"""
from __future__ import annotations

import os

import numpy as np

from .island_tables import probe_shape, table_run, tabulate


def _source(node, fn):
    """The tensor whose codes the step (node, fn) maps one by one: a lut's input, or a table
    step's (island_tables.table_run); None for any other step."""
    if node.op == "lut":
        return node.inputs[0]
    return getattr(fn, "src", None)


def _byte_tensor(graph, name) -> bool:
    t = graph.tensors.get(name)
    return t is not None and np.dtype(t.dtype.storage).itemsize == 1


def plan(steps: list, graph, ctx) -> list:
    """`steps` ((node, run) in graph order) with each mul of x by a table of x replaced by one
    table step (see the module docstring)."""
    if os.environ.get("INTSIM_ISLAND_TABLES", "1") == "0":
        return steps
    made = {}           # tensor -> (node, run) of the step that stores it
    for node, fn in steps:
        for o in node.outputs:
            if o:
                made[o] = (node, fn)
    consumers, outputs = graph.consumers(), set(graph.outputs)
    tables, dropped = {}, set()
    for node, fn in steps:
        if node.op != "mul":
            continue
        a, b = node.inputs[0], node.inputs[3]
        for x, y in ((a, b), (b, a)):
            src = made.get(y)
            if src is None or _source(*src) != x or x in ctx.constants or not _byte_tensor(graph, x):
                continue
            table = tabulate([src[1], fn], x, node.outputs[0], probe_shape(ctx, (x,)),
                             graph.tensors[x].dtype.storage)
            if table is None:
                continue
            tables[node.name] = table_run(x, node.outputs[0], table)
            if y not in outputs and all(c.name == node.name for c in consumers.get(y, [])):
                dropped.add(src[0].name)
            break
    return [(node, tables.get(node.name, fn)) for node, fn in steps if node.name not in dropped]
