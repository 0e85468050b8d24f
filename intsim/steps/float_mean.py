"""Float islands of one ReduceMean over contiguous axes of a float32 tensor, run by
kernels.ort_mean (onnxruntime's summation orders, bit for bit) instead of an onnxruntime
session: the same bits without a session call per run (an audio net's DQ -> ReduceMean -> Q
tail, a transformer encoder's mean over its tokens: the session call was most of their time).

Trailing axes: onnxruntime sums each row in Eigen's 4-float packet order from the row's first
16-byte aligned element, counted from a 16-byte aligned buffer (its allocator's), then divides
by the row length (ort_mean_rows). Axes in the middle or leading, with at least 2 reduced values
and 2 kept values after them: column sums in onnxruntime's RK / KRK orders (ort_mean_cols).
kernels.ort_mean states the formulas. The kernel reads x in its logical C order (a copy when x
is held in another layout), so its rows sit where onnxruntime's own tensor would put them.
Other ReduceMean nodes (axes not contiguous, empty axes, axes from an input that is not a
constant, other dtypes) return None here and run on onnxruntime; a tensor whose run-time shape
has no such kernel (empty, a single reduced or kept value after middle axes) goes to `fallback`
(the onnxruntime island's run, whose `freeze` binds the island when it is the one that ran).

    mean = float_mean(node, ctx, fallback)     # None: not such a node
    run(env, tap), run.freeze(env, fixed) -> call(env): the kernel into the recorded output
"""
from __future__ import annotations

import numpy as np

from kernels.ort_mean import bind_ort_mean_cols, bind_ort_mean_rows, ort_mean_cols, ort_mean_rows

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


def kernel_axes(node, ctx) -> bool:
    """True when ReduceMean `node`'s static axes are contiguous (all negative or all not: at any
    rank; mixed: of its input's declared rank): a kernel of float_mean, not the fallback, will
    run it (but for the run-time shapes `plan` leaves to onnxruntime)."""
    spec = _axes(node, ctx) if node.inputs and node.inputs[0] else None
    if spec is None:
        return False
    given = sorted(set(spec[0]))
    if given[-1] < 0 or given[0] >= 0:
        return given == list(range(given[0], given[-1] + 1))
    shape = getattr(ctx.graph.tensors.get(node.inputs[0]), "shape", None)
    if shape is None:
        return False
    r = len(shape)
    norm = sorted({a + r if a < 0 else a for a in spec[0]})
    return 0 <= norm[0] and norm[-1] < r and norm == list(range(norm[0], norm[-1] + 1))


def float_mean(node, ctx, fallback):
    """run(env, tap) computing `node` (a standard-domain ReduceMean of float32 over static
    axes) with kernels.ort_mean when the axes are contiguous, or None. `fallback(env,
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
        """(kernel, its dims after x, output shape) for x, or None when onnxruntime must run it:
        (ort_mean_rows, (n,)) over trailing axes, (ort_mean_cols, (lead, k, n)) over others."""
        r = x.ndim
        if any(not -r <= a < r for a in axes):
            raise ShapeError(f"{node.origin or node.name}: ReduceMean axes {axes} outside a tensor of rank {r}")
        norm = sorted({a + r if a < 0 else a for a in axes})
        if x.dtype != F32 or x.size == 0 or norm != list(range(norm[0], norm[-1] + 1)):
            return None
        a, b = norm[0], norm[-1] + 1
        shape = x.shape[:a] + ((1,) * (b - a) if keepdims else ()) + x.shape[b:]
        k = int(np.prod(x.shape[a:b]))
        if b == r:
            return ort_mean_rows, bind_ort_mean_rows, (k,), shape
        lead, n = int(np.prod(x.shape[:a])), int(np.prod(x.shape[b:]))
        if k < 2 or n < 2:
            return None
        return ort_mean_cols, bind_ort_mean_cols, (lead, k, n), shape

    def run(env, tap):
        x = np.asarray(consts[src] if src in consts else env[src])
        p = plan(x)
        if p is None:
            fallback(env, tap)
            return
        mean, _, dims, shape = p
        y = np.empty(shape, np.float32)
        mean(np.ascontiguousarray(x), *dims, y)
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
        mean, bind, dims, shape_y = p
        if shape_y != y.shape:
            return None
        if (src in fixed or src in consts) and x.flags.c_contiguous:
            return lambda env, call=bind(x, *dims, y): call()
        shape = x.shape

        def call(env):
            xs = np.asarray(consts[src] if src in consts else env[src])
            if xs.shape != shape or xs.dtype != F32:
                raise ShapeError(f"{node.origin or node.name}: ReduceMean input {xs.shape} {xs.dtype}, "
                                 f"recorded {shape} float32")
            mean(np.ascontiguousarray(xs), *dims, y)
        return call
    run.freeze = freeze
    return run
