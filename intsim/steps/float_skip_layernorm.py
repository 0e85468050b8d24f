"""Float islands of one com.microsoft SkipLayerNormalization or SkipSimplifiedLayerNormalization
over float32, run by kernels.ort_skip_layernorm (onnxruntime's CPU kernel order, Welford's
running mean, bit for bit) instead of an onnxruntime session: the same bits without a session
call per run (the transformer encoder's optimized dynamic form has four, each a session call
costing more than the kernel).

    y, mean, inv_std_var, input_skip_bias_sum = SkipLayerNormalization(x, skip, gamma, beta?, bias?)
    y, mean(0), inv_std_var, sum = SkipSimplifiedLayerNormalization(x, skip, gamma, bias?)

kernels.ort_skip_layernorm states the formula. Only what onnxruntime's kernel accepts is run
here: x of rank 2 or 3, skip of x's shape (or, x of rank 3, of its last two dimensions with or
without a batch of 1), gamma, beta, bias 1-D of the hidden size, all float32, an epsilon
attribute >= 0; anything else at prepare (another dtype, gamma not a float32 input) returns None
and the node stays on the onnxruntime island; at run time (another shape) it goes to
`fallback` (the island's run: onnxruntime's own check and message).

    run = float_skip_layernorm(node, ctx, fallback)     # None: not such a node
    run(env, tap), run.freeze(env, fixed) -> call(env): the kernel into the recorded outputs
"""
from __future__ import annotations

import numpy as np

from kernels.ort_skip_layernorm import bind_ort_skip_layernorm, ort_skip_layernorm

from ..errors import ShapeError
from ..onnx_values import attributes
from .float_arith import declared_dtype

F32 = np.dtype(np.float32)
OPS = {"SkipLayerNormalization": False, "SkipSimplifiedLayerNormalization": True}


def _roles(node, simplified):
    """{role: tensor name or None} of the node's inputs and outputs, or None when its arity is
    not the op's."""
    ins, outs = list(node.inputs), list(node.outputs)
    names = ["x", "skip", "gamma"] + (["bias"] if simplified else ["beta", "bias"])
    if not 3 <= len(ins) <= len(names) or not 1 <= len(outs) <= 4 or not all(ins[:3]) or not outs[0]:
        return None
    roles = dict(zip(names, ins + [""] * (len(names) - len(ins))))
    roles.update(zip(["y", "mean", "inv_std", "total"], outs + [""] * (4 - len(outs))))
    return {k: v or None for k, v in roles.items()}


def outs_of(roles):
    return [roles[k] for k in ("y", "mean", "inv_std", "total") if roles[k]]


def _fits(x, skip, params):
    """True when onnxruntime's kernel accepts these shapes (and dtypes) and ours runs them."""
    arrays = [x, skip] + [p for p in params if p is not None]
    if any(type(a) is not np.ndarray or a.dtype != F32 for a in arrays) or x.ndim not in (2, 3):
        return False
    n = x.shape[-1]
    if n < 1 or any(p is not None and p.shape != (n,) for p in params):
        return False
    return skip.shape == x.shape or (x.ndim == 3 and skip.shape in (x.shape[1:], (1,) + x.shape[1:]))


def float_skip_layernorm(node, ctx, fallback):
    """run(env, tap) computing `node` (a com.microsoft Skip[Simplified]LayerNormalization over
    float32) with kernels.ort_skip_layernorm, or None. `fallback(env, tap)` runs the node's
    onnxruntime island, and `fallback.freeze(env, fixed)` binds it."""
    op = node.attrs.get("op_type")
    if node.op != "onnx" or node.attrs.get("domain") != "com.microsoft" or op not in OPS:
        return None
    simplified = OPS[op]
    roles = _roles(node, simplified)
    if roles is None or any(declared_dtype(roles[k], ctx) != F32 for k in ("x", "skip", "gamma", "beta", "bias")
                            if roles.get(k)) or \
            any(declared_dtype(t, ctx) not in (None, F32) for t in outs_of(roles)):    # None: undeclared
        return None
    eps = attributes(node.attrs["node"]).get("epsilon")
    if eps is None or not np.float32(eps) >= 0:
        return None
    eps = np.float32(eps)
    consts = ctx.constants
    src = [roles[k] for k in ("x", "skip", "gamma", "beta", "bias") if k in roles]
    dst = [roles[k] for k in ("y", "mean", "inv_std", "total")]

    def read(env, name):
        return None if name is None else np.asarray(consts[name] if name in consts else env[name])

    def kernel_args(xs):
        """(x, skip, gamma, beta, bias) of the kernel from the node's input arrays."""
        x, skip, gamma, *rest = xs
        beta, bias = (None, rest[0]) if simplified else rest
        return x, skip, gamma, beta, bias

    def run(env, tap):
        xs = [read(env, s) for s in src]
        x, skip, gamma, beta, bias = kernel_args(xs)
        if x.size == 0 or not _fits(x, skip, [gamma, beta, bias]):
            fallback(env, tap)
            return
        stat = x.shape[:-1] + (1,)
        outs = [np.empty(s, np.float32) if d else None for d, s in zip(dst, [x.shape, stat, stat, x.shape])]
        ort_skip_layernorm(*kernel_args([None if a is None else np.ascontiguousarray(a) for a in xs]),
                           x.shape[-1], eps, simplified, *outs)
        for d, o in zip(dst, outs):
            if d:
                env[d] = o

    def freeze(env, fixed):
        """call(env) writing the node's outputs into the buffers it just stored; inputs read in
        place when they are constants or recorded C-contiguous buffers, else from env at each
        replay (checked against the recorded shapes)."""
        xs = [read(env, s) for s in src]
        x, skip, gamma, beta, bias = kernel_args(xs)
        if type(x) is not np.ndarray or x.size == 0 or not _fits(x, skip, [gamma, beta, bias]):
            return fallback.freeze(env, fixed)
        outs = [env.get(d) if d else None for d in dst]
        if any(d and (type(o) is not np.ndarray or o.dtype != F32 or not o.flags.c_contiguous)
               for d, o in zip(dst, outs)):
            return None
        if all(s is None or ((s in fixed or s in consts) and a.flags.c_contiguous) for s, a in zip(src, xs)):
            return lambda env, call=bind_ort_skip_layernorm(
                *kernel_args(xs), x.shape[-1], eps, simplified, *outs): call()
        shapes = [None if a is None else a.shape for a in xs]

        def call(env):
            now = [read(env, s) for s in src]
            for s, a, shape in zip(src, now, shapes):
                if s is not None and (a.shape != shape or a.dtype != F32):
                    raise ShapeError(f"{node.origin or node.name}: {op} input {s} {a.shape} {a.dtype}, "
                                     f"recorded {shape} float32")
            a = kernel_args([None if v is None else np.ascontiguousarray(v) for v in now])
            ort_skip_layernorm(*a, shapes[0][-1], eps, simplified, *outs)
        return call
    run.freeze = freeze
    return run
