"""Float islands of one ReduceMean over the trailing axes of a float32 tensor, run by
kernels.ort_mean (onnxruntime's Eigen summation order, bit for bit) instead of an onnxruntime
session: the same bits without a session call per run (an audio net's DQ -> ReduceMean -> Q
tail: the session call was most of its time).

onnxruntime sums each row of the trailing axes in Eigen's 4-float packet order from the row's
first 16-byte aligned element, counted from a 16-byte aligned buffer (its allocator's), then
divides by the row length (kernels.ort_mean states the formula). The kernel reads x in its
logical C order (a copy when x is held in another layout), so its rows sit where onnxruntime's
own tensor would put them. Other ReduceMean nodes (axes not trailing, empty axes, axes from an
input that is not a constant, other dtypes) return None here and run on onnxruntime; an empty
tensor at run time goes to `fallback` (the onnxruntime island's run, whose `freeze` binds the
island when it is the one that ran).

    mean = float_mean(node, ctx, fallback)     # None: not such a node
    run(env, tap), run.freeze(env, fixed) -> call(env): the kernel into the recorded output
"""
from __future__ import annotations

import numpy as np

from kernels.ort_mean import bind_ort_mean_rows, ort_mean_rows

from ..errors import ShapeError
from ..onnx_values import attributes
from .float_arith import declared_dtype

F32 = np.dtype(np.float32)


def _axes(node, ctx):
    """ReduceMean's axes (attribute, or a constant second input from opset 18), keepdims; None
    when not static or empty (empty axes reduce all or nothing: left to onnxruntime)."""
    a = attributes(node.attrs["node"])
    ins = list(node.inputs)
    if len(ins) > 1 and ins[1]:
        if ins[1] not in ctx.constants:
            return None
        axes = [int(v) for v in np.asarray(ctx.constants[ins[1]]).reshape(-1)]
    else:
        axes = [int(v) for v in a.get("axes", [])]
    return (axes, int(a.get("keepdims", 1))) if axes else None


def trailing(node, ctx) -> bool:
    """True when ReduceMean `node`'s static axes are the trailing ones (given as -k .. -1, or of
    its input's declared rank): the kernel, not the fallback, will run it."""
    spec = _axes(node, ctx) if node.inputs and node.inputs[0] else None
    if spec is None:
        return False
    neg = sorted(set(spec[0]))
    if neg[-1] < 0:             # -k .. -1: trailing at any rank
        return neg == list(range(-len(neg), 0))
    shape = getattr(ctx.graph.tensors.get(node.inputs[0]), "shape", None)
    if shape is None:
        return False
    r = len(shape)
    norm = sorted({a + r if a < 0 else a for a in spec[0]})
    return norm == list(range(r - len(norm), r))


def float_mean(node, ctx, fallback):
    """run(env, tap) computing `node` (a standard-domain ReduceMean of float32 over static
    axes) with kernels.ort_mean when the axes are the trailing ones, or None. `fallback(env,
    tap)` runs the node's onnxruntime island, and `fallback.freeze(env, fixed)` binds it."""
    if node.op != "onnx" or node.attrs.get("domain") or node.attrs.get("op_type") != "ReduceMean" or \
            len(node.outputs) != 1 or not node.inputs or not node.inputs[0]:
        return None
    src, out = node.inputs[0], node.outputs[0]
    if declared_dtype(src, ctx) != F32 or declared_dtype(out, ctx) not in (None, F32):   # None: undeclared, T of T
        return None
    spec = _axes(node, ctx)
    if spec is None:
        return None
    axes, keepdims = spec
    consts = ctx.constants

    def plan(x):
        """(row length, output shape) for x, or None when onnxruntime must run it."""
        r = x.ndim
        norm = sorted({a + r if a < 0 else a for a in axes})
        if x.dtype != F32 or not norm or norm[0] < 0 or norm[-1] >= r or norm != list(range(r - len(norm), r)):
            if any(not -r <= a < r for a in axes):
                raise ShapeError(f"{node.origin or node.name}: ReduceMean axes {axes} outside a tensor of rank {r}")
            return None
        n = int(np.prod(x.shape[norm[0]:]))
        lead = x.shape[:norm[0]]
        if n == 0 or x.size == 0:
            return None
        return n, (lead + (1,) * len(norm) if keepdims else lead)

    def run(env, tap):
        x = np.asarray(consts[src] if src in consts else env[src])
        p = plan(x)
        if p is None:
            fallback(env, tap)
            return
        n, shape = p
        y = np.empty(shape, np.float32)
        ort_mean_rows(np.ascontiguousarray(x), n, y)
        env[out] = y

    def freeze(env, fixed):
        """call(env) writing the mean of the step's input (the recorded shape) into the output it
        just stored; the input read in place when it is a recorded C-contiguous buffer."""
        x, y = env.get(src, consts.get(src)), env.get(out)
        if type(x) is not np.ndarray or type(y) is not np.ndarray or not y.flags.c_contiguous:
            return None
        p = plan(x)
        if p is None:       # the island ran it (fallback): its bound session call replays it
            return fallback.freeze(env, fixed)
        if p[1] != y.shape:
            return None
        n = p[0]
        if (src in fixed or src in consts) and x.flags.c_contiguous:
            return lambda env, call=bind_ort_mean_rows(x, n, y): call()
        shape = x.shape

        def call(env):
            xs = np.asarray(consts[src] if src in consts else env[src])
            if xs.shape != shape or xs.dtype != F32:
                raise ShapeError(f"{node.origin or node.name}: ReduceMean input {xs.shape} {xs.dtype}, "
                                 f"recorded {shape} float32")
            ort_mean_rows(np.ascontiguousarray(xs), n, y)
        return call
    run.freeze = freeze
    return run
