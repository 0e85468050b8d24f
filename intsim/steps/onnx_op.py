"""`onnx` nodes: data movement on integers (values unchanged) and float islands, run by
NumPy for the common movement ops and by the ONNX reference evaluator otherwise."""
from __future__ import annotations

import math

import numpy as np

from ..errors import IntsimError, ResourceLimitError, ShapeError
from ..limits import check_op, check_shape
from ..onnx_core import get_schema
from ..onnx_core import proto as onnx_proto
from ..onnx_values import attributes, np_dtype
from ..ops import SHAPE_ARITH, SHAPE_SOURCES
from .ort_island import node_proto, prepare_ort_island
from .pool import maxpool_fn
from .registry import step


def _attrs(node):
    return attributes(node.attrs["node"])


def _reshape(x, shape, allowzero, node=None):
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        shape = [x.shape[i] if s == 0 and i < x.ndim else s for i, s in enumerate(shape)]
    try:
        return x.reshape(shape)
    except ValueError:
        name = node.name if node is not None else "?"
        raise ShapeError(f"node '{name}': cannot reshape '{node.inputs[0] if node else '?'}' {x.shape} "
                         f"to {shape}") from None


def _flatten(x, axis):
    axis = axis % x.ndim if x.ndim else 0
    return x.reshape(math.prod(x.shape[:axis]), -1)


def _axes(node, env, ctx, a, opset_split=13):
    if node.attrs["opset"] >= opset_split:
        name = node.inputs[1] if len(node.inputs) > 1 else ""
        if not name:
            return None
        v = ctx.constants[name] if name in ctx.constants else env[name]
        return [int(i) for i in np.asarray(v).reshape(-1)]
    return a.get("axes")


def _pad_int(node, ctx, env, x, a, value):
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if node.attrs["opset"] >= 11:
        pads = np.asarray(ctx.constants.get(node.inputs[1], env.get(node.inputs[1]))).reshape(-1).tolist()
        axes_name = node.inputs[3] if len(node.inputs) > 3 else ""
        axes = list(range(x.ndim)) if not axes_name else \
            [int(i) % x.ndim for i in np.asarray(ctx.constants.get(axes_name, env.get(axes_name))).reshape(-1)]
    else:
        pads, axes = a.get("pads"), list(range(x.ndim))
    width = [(0, 0)] * x.ndim
    n = len(axes)
    for i, ax in enumerate(axes):
        width[ax] = (int(pads[i]), int(pads[i + n]))
    if any(p < 0 for pair in width for p in pair):
        raise ShapeError(f"node '{node.name}': negative pads are not supported on integer tensors")
    check_shape([d + lo + hi for d, (lo, hi) in zip(x.shape, width)], x.dtype.itemsize,
                f"{node.origin or node.name}: output '{node.outputs[0]}' of Pad")
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=value)
    return np.pad(x, width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def _slice(x, starts, ends, axes=None, steps=None):
    """ONNX Slice (opset 10-13) as a NumPy view: per sliced axis of size d, step s (not 0), a
    start or end below 0 has d added, then start is clamped to [0, d] (s > 0) or [0, d - 1]
    (s < 0) and end to [0, d] (s > 0) or [-1, d - 1] (s < 0); an end of -1 with s < 0 means
    "through index 0" (Python's None). Axes may be negative; repeated axes are an error."""
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError(f"Slice: starts, ends, axes and steps differ in length ({len(starts)}, {len(ends)}, "
                         f"{len(axes)}, {len(steps)})")
    index = [slice(None)] * x.ndim
    seen = set()
    for b, e, ax, st in zip(starts, ends, axes, steps):
        if not -x.ndim <= ax < x.ndim or ax % x.ndim in seen or st == 0:
            raise ShapeError(f"Slice: axis {ax} (of rank {x.ndim}) repeated or out of range, or step 0")
        ax %= x.ndim
        seen.add(ax)
        d = x.shape[ax]
        b, e = b + d if b < 0 else b, e + d if e < 0 else e
        if st > 0:
            b, e = min(max(b, 0), d), min(max(e, 0), d)
        else:
            b, e = min(max(b, 0), d - 1), min(max(e, -1), d - 1)
        index[ax] = slice(b, None if e < 0 else e, st)
    return x[tuple(index)]


_FLOAT_TYPES = (onnx_proto.TensorProto.FLOAT, onnx_proto.TensorProto.DOUBLE)


def _fast(node, ctx):
    """A NumPy implementation of common movement ops, or None."""
    op, a = node.attrs["op_type"], _attrs(node)

    def get(env, i):
        name = node.inputs[i]
        return ctx.constants[name] if name in ctx.constants else env[name]

    if op == "Identity":
        return _movement(node, ctx, lambda env: get(env, 0))
    if op == "Reshape":
        return _movement(node, ctx, lambda env: _reshape(get(env, 0), get(env, 1), a.get("allowzero", 0), node))
    if op == "Flatten":
        return _movement(node, ctx, lambda env: _flatten(get(env, 0), a.get("axis", 1)))
    if op == "Transpose":
        return _movement(node, ctx, lambda env: np.transpose(get(env, 0), a.get("perm")), contiguous=True)
    if op == "Squeeze":
        return _movement(node, ctx, lambda env: np.squeeze(get(env, 0), axis=tuple(
            _axes(node, env, ctx, a) or [i for i, d in enumerate(get(env, 0).shape) if d == 1])))
    if op == "Unsqueeze":
        def unsq(env):
            x, axes = get(env, 0), _axes(node, env, ctx, a)
            r = x.ndim + len(axes)
            return np.expand_dims(x, tuple(sorted(ax % r for ax in axes)))
        return _movement(node, ctx, unsq)
    if op == "Cast" and np.dtype(_in_dtype(node, ctx)).kind in "iu" and a.get("to") in _FLOAT_TYPES:
        # integers to float32/float64: NumPy's conversion rounds to nearest even, as the
        # reference evaluator's (it casts with NumPy) and onnxruntime's static_cast
        to = np_dtype(a["to"])
        fn = lambda env: [np.asarray(get(env, 0)).astype(to)]  # noqa: E731
        fn.freeze = lambda env, fixed: _cast_freeze(node, env, fixed, get(env, 0), to)
        return fn
    if op == "Slice" and node.attrs["opset"] >= 10:
        def opt(env, i):
            return get(env, i) if len(node.inputs) > i and node.inputs[i] else None
        return _movement(node, ctx, lambda env: _slice(get(env, 0), get(env, 1), get(env, 2), opt(env, 3), opt(env, 4)),
                         contiguous=True)
    if op == "Pad" and "pad_value" in node.attrs:
        return lambda env: [_pad_int(node, ctx, env, get(env, 0), a, node.attrs["pad_value"])]
    if op == "MaxPool" and len(node.outputs) == 1 and np.issubdtype(_in_dtype(node, ctx), np.integer):
        return maxpool_fn(node, ctx, a, get)
    return None


def _movement(node, ctx, view, contiguous: bool = False):
    """The fast function of a movement op whose output is view(env), a NumPy view of its data
    input (made C-contiguous when `contiguous`), with a freeze hook for frozen runs: when the
    data input is a recorded buffer and every other input a constant or recorded (fixed for the
    feed key), a replay does nothing if the stored output is that very view of the buffer, else
    copies the view into the stored output."""
    def run(env):
        v = view(env)
        return [np.ascontiguousarray(v) if contiguous else v]

    def freeze(env, fixed):
        ins = [i for i in node.inputs if i]
        if not ins or ins[0] not in fixed or any(i not in ctx.constants and i not in ctx.shape_tensors
                                                 for i in ins[1:]):
            return None
        x, y = env[ins[0]], env[node.outputs[0]]
        if type(x) is not np.ndarray or type(y) is not np.ndarray:
            return None
        v = view(env)
        if v.shape != y.shape or v.dtype != y.dtype:
            return None
        if np.shares_memory(y, x):
            same = (y.__array_interface__["data"][0], y.strides) == (v.__array_interface__["data"][0], v.strides)
            return (lambda env: None) if same else None
        if not y.flags.c_contiguous:
            return None
        return lambda env: np.copyto(y, v)
    run.freeze = freeze
    return run


def _cast_freeze(node, env, fixed, x, to):
    """call(env) converting the recorded input into the output the step just stored (NumPy's
    conversion, as astype), or None unless the input is a fixed buffer (intsim.runtime.frozen)."""
    y = env.get(node.outputs[0])
    if node.inputs[0] not in fixed or type(x) is not np.ndarray or type(y) is not np.ndarray or \
            y.shape != x.shape or y.dtype != np.dtype(to):
        return None
    return lambda env: np.copyto(y, x, casting="unsafe")


def _in_dtype(node, ctx):
    t = ctx.graph.tensors.get(node.inputs[0])
    try:
        return t.dtype.storage
    except AttributeError:
        return np.dtype(np.float32)


def _evaluator(proto, node, ctx):
    """The ONNX reference evaluator of one node; an op defined by a context-dependent function
    (Gelu, GroupNormalization...) needs its input types, so it is wrapped in a typed model.
    (onnx.reference is imported here, by the first float island: it is heavy.)"""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    opset = node.attrs["opset"]
    try:
        contextual = get_schema(proto.op_type, opset, "").has_context_dependent_function
    except Exception:  # noqa: BLE001 - no schema: the evaluator says what it can
        contextual = False
    if not contextual:
        return ReferenceEvaluator(proto, opsets={"": opset})

    def elem(name):
        if name in ctx.constants:
            return helper.np_dtype_to_tensor_dtype(np.asarray(ctx.constants[name]).dtype)
        dt = getattr(ctx.graph.tensors.get(name), "dtype", None)
        storage = getattr(dt, "storage", np.dtype(np.float32))
        return helper.np_dtype_to_tensor_dtype(np.dtype(storage))
    g = helper.make_graph([proto], "node", [helper.make_tensor_value_info(i, elem(i), None) for i in proto.input if i],
                          [helper.make_empty_tensor_value_info(o) for o in proto.output if o])
    return ReferenceEvaluator(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]))


MEMO_ELEMENTS = 64      # fed inputs of at most this many integers are memoized by value (_memo_key)
MEMO_KEPT = 32          # results an evaluator node keeps (then all are dropped and kept anew)
MEMO_OUT_ELEMENTS = 1 << 12     # ... each output of at most this many values


def _memo_key(op: str, fed: list, feeds: dict):
    """The key under which an evaluator node's outputs are kept, or None: for Shape/Size the fed
    input's shape and dtype (all their outputs depend on); for the deterministic integer ops of
    shape arithmetic (ops.SHAPE_ARITH: the Gather/Div/Concat chain of a dynamic reshape) the
    values of every fed input, when each is a NumPy array of at most MEMO_ELEMENTS integers or
    booleans. The evaluator's result for a key is a pure function of it (constants are fixed)."""
    if op in SHAPE_SOURCES:
        return tuple((np.shape(feeds[n]), np.asarray(feeds[n]).dtype.str) for n in fed)
    if op not in SHAPE_ARITH:
        return None
    key = []
    for n in fed:
        v = feeds[n]
        if type(v) is not np.ndarray or v.size > MEMO_ELEMENTS or v.dtype.kind not in "biu":
            return None
        key.append((v.dtype.str, v.shape, v.tobytes()))
    return tuple(key)


@step("onnx")
def prepare_onnx(node, ctx):
    if getattr(ctx.target, "float_engine", "reference") == "onnxruntime":
        island = prepare_ort_island(node, ctx)
        if island is not None:
            return island
    if node.attrs.get("domain"):
        raise IntsimError(f"{node.origin}: {node.attrs['domain']}.{node.attrs['op_type']} at node '{node.name}' "
                          f"has no kernel in the ONNX reference evaluator: only an onnxruntime float engine (the "
                          f"ort targets) runs it, target {getattr(ctx.target, 'name', '?')} does not")
    fast = _fast(node, ctx)
    outs = [o for o in node.outputs]
    if fast is not None:
        def run(env, tap):
            for name, v in zip(outs, fast(env)):
                env[name] = v
        if hasattr(fast, "freeze"):
            run.freeze = fast.freeze
        return run
    proto = node_proto(node)
    try:
        ev = _evaluator(proto, node, ctx)
    except Exception as e:  # noqa: BLE001
        raise IntsimError(f"{node.origin}: cannot prepare float op: {e}") from None
    names = [i for i in proto.input if i]

    attrs = _attrs(node)
    op = node.attrs["op_type"]
    fed = [n for n in names if n not in ctx.constants]
    kept: dict = {}     # _memo_key -> the outputs (read-only arrays)

    def run(env, tap):
        feeds = {n: (ctx.constants[n] if n in ctx.constants else env[n]) for n in names}
        key = _memo_key(op, fed, feeds)
        if key is not None and key in kept:
            for name, v in zip(proto.output, kept[key]):
                if name:
                    env[name] = v
            return
        check_op(node.attrs["op_type"], [feeds.get(i) if i else None for i in proto.input], attrs,
                 f"{node.origin}: output '{outs[0] if outs else '?'}'")
        try:
            res = ev.run(None, feeds)
        except MemoryError:
            raise ResourceLimitError(f"{node.origin}: out of memory") from None
        except Exception as e:  # noqa: BLE001
            raise IntsimError(f"{node.origin}: failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        res = [np.asarray(v) for v in res]
        if key is not None and all(v.size <= MEMO_OUT_ELEMENTS for v in res):
            if len(kept) >= MEMO_KEPT:
                kept.clear()
            res = [np.array(v) for v in res]    # owned copies (not views of a feed), shared by every
            for v in res:                       # run with this key: read-only
                v.flags.writeable = False
            kept[key] = res
        for name, v in zip(proto.output, res):
            if name:
                env[name] = v
    run.uses_blas = True    # the evaluator's MatMul/Gemm/Conv call NumPy's BLAS (runtime.threads)
    return run
