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


def _declared_f32(roles, ctx) -> bool:
    """True when every input the roles name is declared float32 and every output float32 or
    undeclared (an output's type is its input's: T of T)."""
    return all(declared_dtype(roles[k], ctx) == F32 for k in ("x", "skip", "gamma", "beta", "bias")
               if roles.get(k)) and all(declared_dtype(t, ctx) in (None, F32) for t in outs_of(roles))


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
    if roles is None or not _declared_f32(roles, ctx):
        return None
    eps = attributes(node.attrs["node"]).get("epsilon")
    if eps is None or not np.float32(eps) >= 0:
        return None
    return _step(roles, np.float32(eps), simplified, op, node.origin or node.name, ctx, fallback)


def add_layernorm(add, ln, ctx, fallback):
    """run(env, tap) computing the island Add -> LayerNormalization (float32, axis -1, its mean
    and inv_std_dev outputs unused) as the SkipLayerNormalization(a, b, scale, B) that
    onnxruntime's optimizer fuses it into (SkipLayerNormFusion; the caller has seen onnxruntime
    fuse this very island: ort_island.Island.fuses_to), or None. a + b is b + a in IEEE
    arithmetic, so the Add's input order does not matter; its output is written too (the
    fused node's input_skip_bias_sum)."""
    if add.op != "onnx" or ln.op != "onnx" or add.attrs.get("domain") or ln.attrs.get("domain") or \
            add.attrs.get("op_type") != "Add" or ln.attrs.get("op_type") != "LayerNormalization":
        return None
    a, lin = attributes(ln.attrs["node"]), list(ln.inputs)
    if len(add.inputs) != 2 or not all(add.inputs) or len(lin) < 2 or lin[0] != add.outputs[0] or \
            int(a.get("axis", -1)) != -1 or any(ln.outputs[1:]) or not np.float32(a.get("epsilon", 1e-5)) >= 0:
        return None
    roles = {"x": add.inputs[0], "skip": add.inputs[1], "gamma": lin[1],
             "beta": lin[2] if len(lin) > 2 and lin[2] else None, "bias": None,
             "y": ln.outputs[0], "mean": None, "inv_std": None, "total": add.outputs[0]}
    if not _declared_f32(roles, ctx):
        return None
    return _step(roles, np.float32(a.get("epsilon", 1e-5)), False, "SkipLayerNormalization (Add, LayerNormalization)",
                 ln.origin or ln.name, ctx, fallback)


def _step(roles, eps, simplified, op, where, ctx, fallback):
    """The run function (and its freeze hook) of the kernel over the tensors named by `roles`."""
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
        """call(env) writing the node's outputs into the buffers it just stored, the kernel bound
        to its inputs when they are constants or recorded buffers; x or skip read from env at
        each replay when they are not (a graph input: checked against the recorded shape, bound
        anew when it is another array). None (the ordinary path) when gamma, beta or bias is
        neither."""
        xs = [read(env, s) for s in src]
        x, skip, gamma, beta, bias = kernel_args(xs)
        if type(x) is not np.ndarray or x.size == 0 or not _fits(x, skip, [gamma, beta, bias]):
            return fallback.freeze(env, fixed)
        outs = [env.get(d) if d else None for d in dst]
        if any(d and (type(o) is not np.ndarray or o.dtype != F32 or not o.flags.c_contiguous)
               for d, o in zip(dst, outs)) or \
                any(s is not None and s not in fixed and s not in consts for s in src[2:]):
            return None
        live = {role: s for role, s in zip(("x", "skip"), src) if s not in fixed and s not in consts}
        shapes = {role: env[s].shape for role, s in live.items()}
        bound = bind_ort_skip_layernorm(*kernel_args([None if a is None else np.ascontiguousarray(a) for a in xs]),
                                        x.shape[-1], eps, simplified, *outs)
        if not live:
            return lambda env: bound()
        last = {}

        def call(env):
            new = {}
            for role, s in live.items():
                a = env[s]
                if a is last.get(role):
                    continue
                if type(a) is not np.ndarray or a.shape != shapes[role] or a.dtype != F32:
                    raise ShapeError(f"{where}: {op} input {s} {getattr(a, 'shape', None)} "
                                     f"{getattr(a, 'dtype', None)}, recorded {shapes[role]} float32")
                c = np.ascontiguousarray(a)
                if c is a and a.flags.writeable:    # read in place from now on (a copy: made at each replay)
                    last[role] = a
                new[role] = c
            bound(**new)
        return call
    run.freeze = freeze
    return run
