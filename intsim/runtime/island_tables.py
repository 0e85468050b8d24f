"""Float islands that are a function of one 8-bit code, run as a 256-entry table.

An island `dequantize -> float ops -> quantize` whose dequantize is per-tensor (one scale, one
zero point, constants) on 8-bit codes, whose float ops are all value-by-value
(ops.FLOAT_ELEMENTWISE, standard domain; every operand either that dequantize's output, an
inner tensor of the island, or a one-value constant) and whose quantize is per-tensor with
constant parameters maps each input code to one output code:

    y[i] = table[x[i]],   table[c] = Q(f(DQ(c)))  for the 256 codes c

The table is the island's own prepared steps (the target's dequantize, its float engine for
the `onnx` nodes, its quantize) run once at prepare on a probe tensor that holds every code at
many positions (17 blocks of the 256 codes, each block shifted by one: every code at 16+
residues mod 16, in the island input's declared shape). A code whose results differ between
positions (a float engine that is not value-by-value) keeps the island as it is. So the table
is what the island computes, by construction; tests/test_island_tables.py checks it against
the island on every code for each op kind.

Runs without taps execute y = table[x] (kernels.lut.apply_table) in place of the island's
steps (the dequantize's too, unless something else reads its output); runs with taps run the
island's steps (their inner tensors are tapped). Under kernels="reference" nothing is replaced,
nor with INTSIM_ISLAND_TABLES=0 (read when a Program is prepared; to compare).
For an onnxruntime float engine (steps/ort_island.py) the island's float nodes must be exactly
one onnxruntime island (its session is then the one the island runs).
"""
from __future__ import annotations

import math
import os

import numpy as np

from kernels.lut import apply_table, bind_table

from ..ir import IntType
from ..layout import map_kept, nhwc_of
from ..ops import FLOAT_ELEMENTWISE
from ..steps.ort_island import islands_of

PROBE_BLOCKS = 17       # blocks of the 256 codes in a probe (each shifted by one more position)


class TableIsland:
    """One island found in a graph: its dequantize, float nodes (graph order) and quantize."""

    def __init__(self, dq, nodes: list, q, keep_dq: bool, const_ndim: int):
        self.dq, self.nodes, self.q = dq, nodes, q
        self.keep_dq = keep_dq          # the dequantize's output is read outside the island
        self.const_ndim = const_ndim    # the most dimensions of a one-value constant operand
        self.names = {n.name for n in nodes} | {q.name} | (set() if keep_dq else {dq.name})


def _one_value(ctx, name) -> bool:
    return name in ctx.constants and np.asarray(ctx.constants[name]).size == 1


def _int8(ctx, name) -> bool:
    dt = getattr(ctx.graph.tensors.get(name), "dtype", None)
    return isinstance(dt, IntType) and np.dtype(dt.storage).itemsize == 1


def _per_tensor(ctx, node) -> bool:
    """A dequantize/quantize of one constant scale and zero point, no blocks."""
    ins = list(node.inputs) + ["", ""]
    return node.attrs.get("block_size", 0) == 0 and _one_value(ctx, ins[1]) and (not ins[2] or _one_value(ctx, ins[2]))


def find(graph, ctx) -> list:
    """The islands of `graph` that run as tables (see the module docstring), in graph order of their quantize."""
    producers, consumers = graph.producers(), graph.consumers()
    outputs = set(graph.outputs)
    found = []
    for q in graph.nodes:
        if q.op != "quantize" or not _per_tensor(ctx, q) or q.attrs.get("order") == "qonnx":
            continue
        island = _walk(ctx, q, producers, consumers, outputs)
        if island is not None:
            found.append(island)
    return found


def _walk(ctx, q, producers, consumers, outputs):
    """The TableIsland ending at quantize `q`, or None."""
    nodes, todo, dq, const_ndim = {}, [q.inputs[0]], None, 0
    while todo:
        name = todo.pop()
        p = producers.get(name)
        if p is None or name in outputs:
            return None
        if p.op == "dequantize":
            if dq is not None and p is not dq:
                return None
            dq = p
            continue
        if p.op != "onnx" or p.attrs.get("domain") or p.attrs.get("op_type") not in FLOAT_ELEMENTWISE \
                or len([o for o in p.outputs if o]) != 1:
            return None
        if p.name in nodes:
            continue
        nodes[p.name] = p
        for i in (i for i in p.inputs if i):
            if i in ctx.constants:
                if np.asarray(ctx.constants[i]).size != 1:
                    return None
                const_ndim = max(const_ndim, np.ndim(ctx.constants[i]))
            else:
                todo.append(i)
    if dq is None or not nodes or not _per_tensor(ctx, dq) or not _int8(ctx, dq.inputs[0]) \
            or dq.inputs[0] in ctx.constants:
        return None
    inside = set(nodes) | {q.name}
    for n in nodes.values():    # inner tensors are read inside the island only
        if any(c.name not in inside for c in consumers.get(n.outputs[0], [])):
            return None
    order = [n for n in ctx.graph.nodes if n.name in nodes]
    if getattr(ctx.target, "float_engine", "reference") == "onnxruntime":
        ort = islands_of(ctx).get(order[0].name)
        if ort is None or [n.name for n in ort.nodes] != [n.name for n in order]:
            return None
    keep_dq = dq.outputs[0] in outputs or any(c.name not in inside for c in consumers.get(dq.outputs[0], []))
    return TableIsland(dq, order, q, keep_dq, const_ndim)


def probe_codes(size: int) -> np.ndarray:
    """The code (0..255, as the unsigned byte) of each element of a probe of `size` elements:
    idx[i] = (i + i // 256) % 256, so block k of 256 holds every code shifted by k positions."""
    i = np.arange(size, dtype=np.int64)
    return (i + i // 256) % 256


def probe_shape(ctx, names) -> tuple:
    """The declared shape of the first of tensors `names` that has one, with axis 0 (and any
    unknown axis) sized so a probe holds PROBE_BLOCKS blocks of the 256 codes or more; 1-D
    when no rank is known."""
    want = 256 * PROBE_BLOCKS
    shape = next((s for s in (getattr(ctx.graph.tensors.get(n), "shape", None) for n in names) if s), None)
    if not shape:
        return (want,)
    dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    rest = math.prod(dims[1:])
    dims[0] = max(1, -(-want // rest))
    return tuple(dims)


def tabulate(runs: list, src: str, dst: str, shape: tuple, storage) -> np.ndarray | None:
    """The 256-entry table of `dst` as a function of the 8-bit `src` (`storage` uint8/int8):
    the prepared steps `runs` (run(env, tap) each, in order) run once on a probe of `shape`
    holding every code at many positions (probe_codes), or None when they fail on it or a
    code's results differ between positions (so not a function of the code alone)."""
    idx = probe_codes(math.prod(shape))
    x = np.arange(256, dtype=np.uint8).view(np.dtype(storage))[idx].reshape(shape)
    env = {src: x}
    try:
        for run in runs:
            run(env, None)
    except Exception:  # noqa: BLE001 - the steps themselves will say what is wrong, at run time
        return None
    y = np.asarray(env[dst])
    if y.size != x.size or y.dtype.kind not in "iu":
        return None
    y = y.reshape(-1)
    table = np.empty(256, y.dtype)
    table[idx] = y          # the last occurrence of each code; all must agree:
    if not np.array_equal(table[idx], y):
        return None
    return table


def build_table(island: TableIsland, prepared: dict, ctx):
    """The island's table (256 codes, the quantize's storage dtype) from its prepared steps
    (`prepared`: node name -> run function), or None (`tabulate`)."""
    src = island.dq.inputs[0]
    return tabulate([prepared[node.name] for node in [island.dq] + island.nodes + [island.q]], src,
                    island.q.outputs[0], probe_shape(ctx, (src, island.dq.outputs[0])),
                    ctx.graph.tensors[src].dtype.storage)


def table_step(island: TableIsland, table: np.ndarray):
    """run(env, tap): the quantize's output = table[dequantize's input] (table_run); run.reads:
    the dequantize's name when nothing else reads its output."""
    run = table_run(island.dq.inputs[0], island.q.outputs[0], table, island.const_ndim)
    run.reads = None if island.keep_dq else island.dq.name
    return run


def table_run(src: str, dst: str, table: np.ndarray, extra: int = 0):
    """run(env, tap): env[dst] = table[env[src]], channels-last kept (intsim.layout.map_kept),
    with leading ones up to `extra` dimensions; run.freeze binds the table to the recorded
    arrays as they are held."""
    def out_of(x):
        out = map_kept(x, table.dtype, lambda src, y: apply_table(src, table, y))
        return out.reshape((1,) * (extra - out.ndim) + out.shape) if extra > out.ndim else out

    def run(env, tap):
        env[dst] = out_of(env[src])

    def freeze(env, fixed):
        x, y = env[src], env[dst]
        if src not in fixed or y.size != x.size:
            return None
        if not (x.flags.c_contiguous and y.flags.c_contiguous):     # both held channels-last
            x, y = nhwc_of(x), nhwc_of(y)
            if x is None or y is None:
                return None
        call = bind_table(x, table, y.reshape(x.shape))

        def replay(env):
            call()
        return replay
    run.freeze = freeze
    run.src = src
    return run


def table_readers(steps: list) -> frozenset:
    """Names of the dequantize nodes that only feed islands run as tables (`plan`'s steps): a
    table reads its input in whatever layout it is held (intsim.layout.channels_last_tensors)."""
    return frozenset(r for _, fn in steps if (r := getattr(fn, "reads", None)) is not None)


def plan(steps: list, graph, ctx) -> list:
    """`steps` ((node, run) in graph order) with each table island's steps replaced by one
    table step at its quantize's place (see the module docstring)."""
    islands = find(graph, ctx) if os.environ.get("INTSIM_ISLAND_TABLES", "1") != "0" else []
    if not islands:
        return steps
    prepared = {node.name: fn for node, fn in steps}
    replaced, tables = set(), {}
    for island in islands:
        if island.names & replaced or island.dq.name in replaced:
            continue
        table = build_table(island, prepared, ctx)
        if table is None:
            continue
        replaced |= island.names
        tables[island.q.name] = table_step(island, table)
    return [(node, tables.get(node.name, fn)) for node, fn in steps
            if node.name not in replaced or node.name in tables]


__all__ = ["PROBE_BLOCKS", "TableIsland", "find", "build_table", "table_step", "table_run", "table_readers", "plan",
           "probe_codes", "probe_shape", "tabulate"]
