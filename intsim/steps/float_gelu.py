"""Float islands of onnxruntime's erf family run by kernels.ort_gelu (MLAS's AVX-512 erf, bit
for bit) instead of an onnxruntime session: the same bits without a session call per run (a
transformer's BiasGelu / Gelu island: the session call was twice onnxruntime's own kernel).

The islands taken (anything else returns None and stays on onnxruntime):

    [Erf]                                   out = erf(x)
    [Gelu] (com.microsoft, or opset >= 20 with approximate "none")
                                            out = (x*0.5) * (erf(x*f32(1/sqrt2)) + 1)
    [BiasGelu] (com.microsoft)              the same on v = x + bias (bias 1-D, x's last axis)
    [Div(x, c), Erf]                        out = erf(x / c), c a float32 scalar constant
                                            (the Div one IEEE division: nothing fuses)
    [Div(x, f32(sqrt2)), Erf, Add(., 1), Mul(x, .), Mul(., 0.5)]
                                            onnxruntime's GeluFusion makes this one Gelu
                                            node in the island's session: out = Gelu(x)

each island's inner tensors unread outside it, its inputs and outputs declared float32, and the
host one whose onnxruntime runs that erf (kernels.ort_gelu.supported). At run time a tensor of
another dtype, an empty one, a bias onnxruntime would refuse, or taps on a multi-node island
(its inner tensors) go to `fallback` (the onnxruntime island's run, whose `freeze` binds the
island when it is the one that ran).

    gelu = float_gelu(nodes, ctx, fallback)     # None: not such an island
    run(env, tap), run.freeze(env, fixed) -> call(env): the kernel into the recorded output
"""
from __future__ import annotations

import numpy as np

from kernels.jit import kernel_array
from kernels.ort_gelu import bind_ort_erf, bind_ort_gelu, ort_erf, ort_gelu, supported

from ..errors import ShapeError
from ..onnx_values import attributes
from .float_arith import declared_dtype

F32 = np.dtype(np.float32)
MS = "com.microsoft"
SQRT2 = np.float32(np.sqrt(2.0))


def _op(node, op, domain=""):
    return node.op == "onnx" and (node.attrs.get("domain") or "") == domain and node.attrs.get("op_type") == op


def _scalar(name, ctx):
    """The float32 value of a one-element float32 constant `name`, or None."""
    v = ctx.constants.get(name) if name else None
    if v is None:
        return None
    v = np.asarray(v)
    return v.reshape(-1)[0] if v.dtype == F32 and v.size == 1 else None


def _other(node, name):
    """The input of binary `node` that is not `name` (None unless exactly one input is it)."""
    ins = list(node.inputs)
    if len(ins) != 2 or ins.count(name) != 1:
        return None
    return ins[1] if ins[0] == name else ins[0]


def _gelu_chain(nodes, ctx):
    """x when `nodes` is Div(x, sqrt2) -> Erf -> Add(1) -> Mul(x) -> Mul(0.5) in that order."""
    div, erf, add, mul, half = nodes
    if not (_op(div, "Div") and _op(erf, "Erf") and _op(add, "Add") and _op(mul, "Mul") and _op(half, "Mul")):
        return None
    x = div.inputs[0] if len(div.inputs) == 2 else None
    if not x or _scalar(div.inputs[1], ctx) != SQRT2 or list(erf.inputs) != [div.outputs[0]]:
        return None
    if _scalar(_other(add, erf.outputs[0]), ctx) != 1.0 or _other(mul, add.outputs[0]) != x or \
            _scalar(_other(half, mul.outputs[0]), ctx) != 0.5:
        return None
    return x


def _spec(nodes, ctx):
    """(x, bias, divisor, gelu) for an island this module runs, else None: gelu False means
    out = erf(x / divisor), True out = Gelu(x [+ bias]); bias a tensor name or None."""
    first = nodes[0]
    if len(nodes) == 1:
        ins = [i for i in first.inputs]
        if _op(first, "Erf") and len(ins) == 1:
            return ins[0], None, np.float32(1.0), False
        if (_op(first, "Gelu", MS) or (_op(first, "Gelu") and int(first.attrs.get("opset", 0)) >= 20)) and \
                len(ins) == 1:
            approx = attributes(first.attrs["node"]).get("approximate", "none")
            if (approx.decode() if isinstance(approx, bytes) else approx) != "none":
                return None
            return ins[0], None, None, True
        if _op(first, "BiasGelu", MS) and len(ins) == 2 and all(ins):
            return ins[0], ins[1], None, True
        return None
    if len(nodes) == 2 and _op(first, "Div") and _op(nodes[1], "Erf") and len(first.inputs) == 2 and \
            list(nodes[1].inputs) == [first.outputs[0]]:
        d = _scalar(first.inputs[1], ctx)
        return None if d is None or first.inputs[0] == first.inputs[1] else (first.inputs[0], None, d, False)
    if len(nodes) == 5:
        x = _gelu_chain(nodes, ctx)
        return None if x is None else (x, None, None, True)
    return None


def float_gelu(nodes, ctx, fallback, claim):
    """run(env, tap) computing the float island `nodes` (module doc) with kernels.ort_gelu, or
    None. `fallback(env, tap)` runs the island on onnxruntime, `fallback.freeze(env, fixed)`
    binds it; `claim({name: buffer})` tells the island which output buffer a frozen call writes."""
    spec = _spec(nodes, ctx)
    if spec is None or not supported():
        return None
    src, bias, divisor, gelu = spec
    produced = {o for n in nodes for o in n.outputs if o}
    names = {n.name for n in nodes}
    outside = {i for n in ctx.graph.nodes if n.name not in names for i in n.inputs if i} | set(ctx.graph.outputs)
    outs = [o for o in produced if o in outside]
    last = nodes[-1].outputs
    if len(last) != 1 or outs != [last[0]] or src in produced or (bias and bias in produced):
        return None
    out = last[0]
    if any(declared_dtype(n, ctx) != F32 for n in (src, out) + ((bias,) if bias else ())):
        return None
    many = len(nodes) > 1
    consts = {n: kernel_array(ctx.constants[n]) for n in (src, bias) if n and n in ctx.constants}

    def value(env, name):
        """The input as the kernel takes it: C-contiguous and writable (one specialization)."""
        return consts[name] if name in consts else kernel_array(env[name])

    def usable(x, b):
        """True when the kernel computes what onnxruntime would (else the island runs)."""
        if x.dtype != F32 or x.size == 0:
            return False
        if bias is None:
            return True
        return b.dtype == F32 and b.ndim == 1 and x.ndim >= 1 and x.shape[-1] == b.size

    def compute(x, b, y):
        if gelu:
            ort_gelu(x, b, y)
        else:
            ort_erf(x, divisor, y)

    def run(env, tap):
        x = value(env, src)
        b = value(env, bias) if bias else None
        if (tap is not None and many) or not usable(x, b):
            fallback(env, tap)
            return
        y = np.empty(x.shape, np.float32)
        compute(x, b, y)
        env[out] = y

    def freeze(env, fixed):
        """call(env) recomputing the step's output into the buffer it just stored (claimed as
        the island's: the island's other steps then replay nothing); the inputs read from env
        at each call unless recorded C-contiguous buffers or constants."""
        x, y = env.get(src, consts.get(src)), env.get(out)
        b = env.get(bias, consts.get(bias)) if bias else None
        if type(x) is not np.ndarray or type(y) is not np.ndarray or (bias and type(b) is not np.ndarray):
            return None
        if not usable(x, b):        # the island ran it (fallback): its bound session call replays it
            return fallback.freeze(env, fixed)
        if y.shape != x.shape or y.dtype != F32 or not y.flags.c_contiguous:
            return None
        held = all(n in consts or (n in fixed and env[n].flags.c_contiguous and env[n].flags.writeable)
                   for n in (src, bias) if n)
        if held and gelu:
            bound = bind_ort_gelu(x, b, y)
        elif held:
            bound = bind_ort_erf(x, divisor, y)
        else:
            bound, shape = None, x.shape
        claim({out: y})

        def call(env):
            if bound is not None:
                bound()
                return
            xs = value(env, src)
            bs = value(env, bias) if bias else None
            if xs.shape != shape or not usable(xs, bs):
                raise ShapeError(f"{nodes[0].origin or nodes[0].name}: {nodes[0].attrs.get('op_type')} input "
                                 f"{xs.shape} {xs.dtype}, recorded {shape} float32")
            compute(xs, bs, y)
        return call
    run.freeze = freeze
    return run
