"""Float islands whose bits IEEE 754 fixes: one elementwise Add, Sub, Mul or Div of two operands
of one float type (float32 or float64), run by NumPy's ufunc instead of an onnxruntime session.

Each output element is one correctly rounded operation (round to nearest even) of its two
broadcast operands, y = fl(a op b), so every IEEE engine computes the same bits: onnxruntime's
CPU kernels (Eigen's elementwise `a + b`, `a * b`, `a / b`, onnxruntime/core/providers/cpu/math/
element_wise_ops.cc; no fast-math, no reciprocal) and NumPy's ufuncs (`np.add` ...). Broadcasting
is ONNX's multidirectional rule, NumPy's. The one room for a difference is a NaN's payload when
both operands are NaN (x86 returns the first operand's); a dequantized tensor holds no NaN.

    arith = float_arith(node, ctx)     # None: not such a node (the island runs on onnxruntime)
    run(env, tap), run.freeze(env, fixed) -> call(env): the ufunc into the recorded output
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError

UFUNCS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def declared_dtype(name, ctx):
    """The element type of tensor `name` as declared (a constant's own), or None."""
    if name in ctx.constants:
        return np.asarray(ctx.constants[name]).dtype
    storage = getattr(getattr(ctx.graph.tensors.get(name), "dtype", None), "storage", None)
    return None if storage is None else np.dtype(storage)


def float_arith(node, ctx):
    """run(env, tap) computing `node` (an `onnx` Add/Sub/Mul/Div of the standard domain, two
    inputs of one float type, declared so) with NumPy, or None."""
    op = node.attrs.get("op_type")
    ins = [i for i in node.inputs if i]
    if node.op != "onnx" or node.attrs.get("domain") or op not in UFUNCS or len(ins) != 2 or \
            len(node.outputs) != 1:
        return None
    dtypes = {declared_dtype(i, ctx) for i in ins} | {declared_dtype(node.outputs[0], ctx)}
    if len(dtypes) != 1 or dtypes.pop() not in FLOATS:
        return None
    ufunc, (a_name, b_name), out = UFUNCS[op], ins, node.outputs[0]
    consts = ctx.constants

    def operands(env):
        a = consts[a_name] if a_name in consts else env[a_name]
        b = consts[b_name] if b_name in consts else env[b_name]
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.dtype not in FLOATS:
            raise ShapeError(f"{node.origin or node.name}: {op} needs two float operands of one type, got "
                             f"{a.dtype} and {b.dtype}")
        return a, b

    def run(env, tap):
        a, b = operands(env)
        try:
            y = ufunc(a, b)
        except ValueError:
            raise ShapeError(f"{node.origin or node.name}: {op} operands {a.shape} and {b.shape} do not "
                             f"broadcast") from None
        env[out] = y if type(y) is np.ndarray else np.asarray(y)    # (0-d operands give a NumPy scalar)

    def freeze(env, fixed):
        """call(env) writing the ufunc into the output the step just stored, its operands the
        recorded arrays (fixed buffers or constants); None otherwise (intsim.runtime.frozen)."""
        if a_name not in fixed or b_name not in fixed:
            return None
        a, b = operands(env)
        y = env.get(out)
        if type(y) is not np.ndarray or y.dtype != a.dtype or y.shape != np.broadcast_shapes(a.shape, b.shape):
            return None
        return lambda env: ufunc(a, b, out=y)
    run.freeze = freeze
    return run
