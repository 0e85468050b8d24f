"""add, mul, concat, lut. Each asks its target for the op's rule at prepare (targets.rules):
onnxruntime's (MLAS, x86-64) arithmetic runs through kernels/eltwise.py and kernels/lut.py
(the formulas are in those modules' docstrings); the other rules through target_arith.py.

Broadcasting follows onnxruntime's: when A is constant along the innermost dimension of the
output while B varies (a scalar per span), onnxruntime runs its scalar-operand path with A and
B swapped, which changes the float order of QLinearAdd; the step swaps them the same way.
"""
from __future__ import annotations

import numpy as np

from kernels import eltwise as ek
from kernels import lut as lk
from kernels import tflite_act as tk
from kernels import xnnpack_unary as xu

from ..errors import QuantParamError, ShapeError
from ..layout import map_kept, nchw_view, nhwc_of
from ..numerics import dequantize_linear, quantize_linear
from ..targets.rules import (AccRequant, FixedRequant, OrtArith, SameQuant, TargetRefusal, TfliteAdd, TfliteMul,
                             TfliteRequantize, TfliteTable, XnnpackAdd, XnnpackLeakyRelu, XnnpackMul)
from .registry import step
from . import target_arith as ta
from .params import ParamReader, check_scale, scalar_zp


def _scale(v, name, node) -> float:
    s = check_scale(v, name, node.name).reshape(-1)
    if s.size != 1:
        raise QuantParamError(f"node '{node.name}': {node.op} needs a per-tensor scale, '{name}' has {s.size}")
    return float(s[0])


def _span_scalar(x: np.ndarray, out_shape: tuple) -> bool:
    """x is constant along the output's innermost dimension (broadcast there) but not everywhere."""
    if x.size == 1 or not out_shape or out_shape[-1] == 1:
        return False
    return x.ndim == 0 or x.shape[-1] == 1


def _binary_rule(node, ctx, rule, reader, params, acc_fn):
    """run(env, tap) of add/mul under a rule other than onnxruntime's: scales read per run (cached
    per parameter set inside the rule's function), operands broadcast."""
    cache: dict = {}
    cached = {TfliteAdd: ta.tflite_add, TfliteMul: ta.tflite_mul, XnnpackAdd: ta.xnnpack_add,
              XnnpackMul: ta.xnnpack_mul}.get(type(rule))

    def run(env, tap):
        vals = reader.values(env)
        a, b, p = np.asarray(vals[0]), np.asarray(vals[3]), params(vals)
        if cached is not None:
            env[node.outputs[0]] = cached(ctx, node, rule, a, b, p, cache)
        else:
            env[node.outputs[0]] = acc_fn(ctx, node, rule, a, b, p)
    if isinstance(rule, TfliteAdd) and rule.lanes:      # vector blocks of the flat tensor: no batch split
        run.flat_positions = True
    return run


def _rows_of(full, part, shape):
    """(full as (R, Q), part's R row values, part broadcast along the rows, the output of that
    shape -> the stored tensor) when `full` has the output shape and `part` is constant along
    its trailing axes (a squeeze-excite scale (N, C, 1, 1) against (N, C, H, W)); None otherwise
    (a single value, or another broadcast)."""
    if full.shape != shape or part.size == 1 or part.ndim > len(shape):
        return None
    pr = (1,) * (len(shape) - part.ndim) + part.shape
    k = len(shape)
    while k > 0 and pr[k - 1] == 1:
        k -= 1
    if k == len(shape) or any(p != 1 and p != d for p, d in zip(pr[:k], shape[:k])):
        return None
    lead = tuple(shape[:k])
    rows = part.reshape(pr[:k])
    spread = rows.shape != lead
    rows = np.ascontiguousarray(np.broadcast_to(rows, lead)).reshape(-1) if spread else rows.reshape(-1)
    return np.ascontiguousarray(full).reshape(rows.size, -1), rows, spread, lambda out: out.reshape(shape)


def _cols_of(full, part, shape):
    """(full's channels-last images (N, P, C), part's (N, C) values, spread, the output of that
    shape -> its NCHW view) when `full` is a 4-D array of 8-bit codes of the output shape held
    channels-last (intsim.layout; more than one pixel) and `part` (8-bit too) is one value per
    image and channel ((N or 1, C, 1, 1), leading ones optional: a squeeze-excite scale);
    spread: part's values were copied for each image. None otherwise."""
    if len(shape) != 4 or full.shape != shape or shape[2] * shape[3] == 1 or full.flags.c_contiguous \
            or part.ndim > 4 or full.itemsize != 1 or part.itemsize != 1:
        return None
    fh = nhwc_of(full)
    pr = (1,) * (4 - part.ndim) + part.shape
    n, c = shape[0], shape[1]
    if fh is None or pr[2:] != (1, 1) or pr[1] != c or pr[0] not in (1, n):
        return None
    rows = np.ascontiguousarray(part.reshape(pr[0], c))
    spread = pr[0] != n
    return (fh.reshape(n, -1, c), np.repeat(rows, n, axis=0) if spread else rows, spread,
            lambda out: nchw_view(out.reshape(fh.shape)))


def _one_sided(node, kernel, of, a, b, p, lo, hi, t):
    """mul with one operand a broadcast of values along the other (`of`: _rows_of, one value
    per row; _cols_of, one per image and channel of channels-last images): `kernel` on the full
    operand as it is held, the other never expanded; None when it does not apply."""
    if kernel is None or a.dtype != t.storage or b.dtype != t.storage:
        return None
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:      # the general path says what is wrong
        return None
    sa, za, sb, zb, sy, zy = p
    for full, part, sf, zf, sp, zp in ((a, b, sa, za, sb, zb), (b, a, sb, zb, sa, za)):
        r = of(full, part, shape)
        if r is not None:
            out = np.empty(r[0].shape, t.storage)
            try:
                kernel(r[0], sf, zf, r[1], sp, zp, sy, zy, lo, hi, out)
            except ValueError as e:
                raise ShapeError(f"node '{node.name}': {e}") from None
            return r[3](out)
    return None


def _binary(kernel, planner=None, acc_fn=None, kinds=(OrtArith, AccRequant), rows=None, planned_fns=None,
            spread=None, bind=None):
    """prepare for add/mul: scales and zero points read (and, when constant, checked) once.
    With `planner` (add, mul), same-shape operands run the kernel's planned path
    (`planned_fns`: its (apply, bind) pair) whose constants are also derived once per
    operand order; with `spread`, operands of different shapes too, once broadcast
    (_broadcast_plan: "scalar" (add) keeps a single value as the kernel's scalar operand,
    "full" (mul, a single-value operand only) spreads it too). With `rows` (mul), an operand
    broadcast along the other's trailing axes runs that kernel (_one_sided), images held
    channels-last times one value per image and channel the columns kernel (fast kernels), and a replay of either is bound to the recorded arrays; with `bind` (mul), so is a replay of same-shape
    operands the planned path does not take (16-bit codes: bind(a, sa, za, b, sb, zb, sy, zy,
    lo, hi, out) -> call())."""
    def prepare(node, ctx):
        rule = ta.require(ctx, node, ctx.target.rule(node), *kinds)
        if node.attrs.get("subtract") and not isinstance(rule, (TfliteAdd, XnnpackAdd)):
            raise TargetRefusal(ctx.target.name, node, f"its rule {type(rule).__name__} has no subtraction")
        reader = ParamReader(node, ctx, (1, 2, 4, 5, 6, 7))
        t = node.attrs["out_type"]
        lo, hi = node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)
        ins, consts = node.inputs, ctx.constants

        def params(vals):
            _, sa, za, _, sb, zb, sy, zy = vals[:8]
            return (_scale(sa, ins[1], node), scalar_zp(za, ins[2], node.name),
                    _scale(sb, ins[4], node), scalar_zp(zb, ins[5], node.name),
                    _scale(sy, ins[6], node), scalar_zp(zy, ins[7], node.name))

        static = params(reader.values({})) if reader.static else None
        if not isinstance(rule, OrtArith):
            return _binary_rule(node, ctx, rule, reader, params, acc_fn)
        plans: dict = {}
        kern = ctx.kernel(kernel)
        rows_kern = ctx.kernel(rows) if rows is not None else None
        # mul: channels-last images x (N, C, 1, 1) (fast kernels only: no twin of its own)
        cols_kern = ek.qlinear_mul_cols if rows is not None and ctx.kernels == "fast" else None
        plan = planner if ctx.kernels == "fast" else None
        apply_planned, bind_planned = planned_fns or (None, None)

        def planned(a, b, p):
            if plan is None or t.bits != 8 or a.shape != b.shape or a.dtype != t.storage or b.dtype != t.storage:
                return None
            if p not in plans:
                try:
                    plans[p] = plan(*p, lo, hi, t.storage)
                except ValueError as e:
                    raise ShapeError(f"node '{node.name}': {e}") from None
            ah, bh = nhwc_of(a), nhwc_of(b)
            if ah is not None and bh is not None:      # both channels-last: so is the sum
                out = np.empty(ah.shape, t.storage)
                apply_planned(ah, bh, plans[p], out)
                return nchw_view(out)
            out = np.empty(a.shape, t.storage)
            apply_planned(np.ascontiguousarray(a), np.ascontiguousarray(b), plans[p], out)
            return out

        spans: dict = {}    # (shapes, dtypes) -> _broadcast_plan's recipe, under static parameters

        def broadcast_planned(a, b):
            """add of operands of different shapes under static parameters: _broadcast_run's
            operand order and arithmetic, the plan derived once per pair of shapes and a
            constant operand broadcast once (_broadcast_plan); None where that does not apply."""
            if plan is None or spread is None or t.bits != 8 or a.dtype != t.storage or b.dtype != t.storage or \
                    (spread == "full" and min(a.size, b.size) != 1):
                return None
            key = (a.shape, b.shape, a.dtype)
            if key not in spans:
                spans[key] = _broadcast_plan(node, plan, a, b, static, lo, hi, t,
                                             (ins[0] in consts, ins[3] in consts), spread == "full")
            recipe = spans[key]
            if recipe is None:
                return None
            shape, first, second, pl, kept = recipe
            full = spread == "full"
            x1 = kept[0] if kept[0] is not None else _spread((a, b)[first], shape, full)
            x2 = kept[1] if kept[1] is not None else _spread((a, b)[second], shape, full)
            out = np.empty(shape, t.storage)
            apply_planned(x1, x2, pl, out)
            return out

        def run(env, tap):
            if static is not None:
                a = consts[ins[0]] if ins[0] in consts else env[ins[0]]
                b = consts[ins[3]] if ins[3] in consts else env[ins[3]]
                p = static
            else:
                vals = reader.values(env)
                a, b, p = vals[0], vals[3], params(vals)
            a, b = np.asarray(a), np.asarray(b)
            out = planned(a, b, p)
            if out is None and a.shape != b.shape and static is not None:
                out = broadcast_planned(a, b)
            if out is None and a.shape != b.shape:
                out = _one_sided(node, cols_kern, _cols_of, a, b, p, lo, hi, t)
            if out is None and a.shape != b.shape:
                out = _one_sided(node, rows_kern, _rows_of, a, b, p, lo, hi, t)
            env[node.outputs[0]] = out if out is not None else _broadcast_run(node, kern, a, b, p, lo, hi, t)

        def freeze_one_sided(of, bind_kernel, a, b, y):
            """call(env) of a one-sided kernel (_one_sided; `of`: _rows_of or _cols_of) bound to the
            recorded operands read in place (no copy of either) and to the output as it is held,
            or None."""
            held = y if y.flags.c_contiguous else nhwc_of(y)
            if bind_kernel is None or ctx.kernels != "fast" or held is None:
                return None
            sa, za, sb, zb, sy, zy = static
            for full, part, sf, zf, sp, zp in ((a, b, sa, za, sb, zb), (b, a, sb, zb, sa, za)):
                r = of(full, part, y.shape)
                if r is None or not (np.may_share_memory(r[0], full) and np.may_share_memory(r[1], part)):
                    continue
                y2 = held.reshape(r[0].shape)
                if r[3](y2).strides == y.strides:       # the kernel writes y's memory as it is held
                    call = bind_kernel(r[0], sf, zf, r[1], sp, zp, sy, zy, lo, hi, y2)
                    return lambda env: call()
            return None

        def freeze_same(a, b, y):
            """call(env) of the mul kernel bound to recorded operands of one shape (as the general
            path runs them: no broadcast, no operand swap), or None."""
            if bind is None or ctx.kernels != "fast" or a.size < 2 or y.shape != a.shape or \
                    not (a.flags.c_contiguous and b.flags.c_contiguous and y.flags.c_contiguous):
                return None
            call = bind(a, *static[:2], b, *static[2:], lo, hi, y)
            return lambda env: call()

        def freeze_broadcast(a, b, y):
            """call(env) of the planned kernel bound as broadcast_planned ran it (its recipe for
            these shapes: operand order, plan, constants spread once) to the recorded operands
            and output, or None (no recipe, or an operand it spreads per run)."""
            recipe = spans.get((a.shape, b.shape, a.dtype))
            if recipe is None or not y.flags.c_contiguous:
                return None
            shape, first, second, pl, kept = recipe
            xs = [k if k is not None else (a, b)[i] for i, k in ((first, kept[0]), (second, kept[1]))]
            if y.shape != shape or any(x.shape != shape and (x.size != 1 or spread == "full") for x in xs) or \
                    not all(x.flags.c_contiguous for x in xs):
                return None
            call = bind_planned(xs[0], xs[1], pl, y)
            return lambda env: call()

        def freeze(env, fixed):
            """call(env) redoing the last run's planned (add, mul), broadcast-planned or rows
            (mul) path in place (intsim.frozen); None when that run took the general path or an
            operand is not in a fixed buffer."""
            if static is None or any(i not in fixed for i in (ins[0], ins[3])):
                return None
            a, b, y = (consts[i] if i in consts else env[i] for i in (ins[0], ins[3], node.outputs[0]))
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype != t.storage or b.dtype != t.storage:
                return None
            if a.shape != b.shape:
                return freeze_broadcast(a, b, y) or \
                    freeze_one_sided(_cols_of, ek.bind_mul_cols if cols_kern is not None else None, a, b, y) or \
                    freeze_one_sided(_rows_of, ek.bind_mul_rows if rows is not None else None, a, b, y)
            if static not in plans:
                return freeze_same(a, b, y)
            ah, bh, yh = nhwc_of(a), nhwc_of(b), nhwc_of(y)
            args = (ah, bh, yh) if ah is not None and bh is not None else (a, b, y)
            if any(v is None or not v.flags.c_contiguous for v in args):
                return None
            # a ValueError here leaves the step on its ordinary path (intsim.frozen.FrozenRun.record)
            call = bind_planned(args[0], args[1], plans[static], args[2])
            return lambda env: call()
        run.freeze = freeze
        return run
    return prepare


def _spread(x, shape, full: bool = False):
    """x as a C-contiguous array of `shape` (broadcast), or (unless `full`) as it is when it is
    one value."""
    return np.ascontiguousarray(x) if (x.size == 1 and not full) or x.shape == shape else \
        np.ascontiguousarray(np.broadcast_to(x, shape))


def _broadcast_plan(node, planner, a, b, p, lo, hi, t, constant, full: bool = False):
    """(shape, first, second, plan, kept) for an add of a and b (different shapes, static
    parameters p): the output shape, which operand (0: a, 1: b) goes first and second in
    onnxruntime's order (as _broadcast_run and kernels.eltwise.qlinear_add order them), the
    planner's constants for that order, and each operand already spread (_spread) when it is a
    `constant` (else None: spread per run; `full`: a single value spread too). None when the
    plan refuses the parameters (the general path then names the error)."""
    sa, za, sb, zb, sy, zy = p
    shape = ta.broadcast_shape(node, a, b, max(t.storage.itemsize, a.itemsize, b.itemsize))
    order = [(0, a, sa, za), (1, b, sb, zb)]
    if _span_scalar(a, shape) and not _span_scalar(b, shape) and a.size != 1:
        order.reverse()
    if order[0][1].size == 1 and order[1][1].size != 1:
        order.reverse()
    try:
        plan = planner(order[0][2], order[0][3], order[1][2], order[1][3], sy, zy, lo, hi, t.storage)
    except ValueError:
        return None
    kept = tuple(_spread(x, shape, full) if constant[i] else None for i, x, _, _ in order)
    if order[0][1].size == 1:       # both single values: the general path
        return None
    return shape, order[0][0], order[1][0], plan, kept


def _broadcast_run(node, kernel, a, b, p, lo, hi, t):
    """The general path: operands broadcast to the output shape (ORT's operand swap for a
    per-span scalar A), then the kernel's validating wrapper."""
    sa, za, sb, zb, sy, zy = p
    shape = ta.broadcast_shape(node, a, b, max(t.storage.itemsize, a.itemsize, b.itemsize))
    pa, pb = (a, sa, za), (b, sb, zb)
    if _span_scalar(a, shape) and not _span_scalar(b, shape) and a.size != 1:
        pa, pb = pb, pa
    out = np.empty(shape, t.storage)
    args = []
    for x, s, z in (pa, pb):
        args += [x if x.size == 1 else np.ascontiguousarray(np.broadcast_to(x, shape)), s, z]
    try:
        kernel(*args, sy, zy, lo, hi, out)
    except ValueError as e:
        raise ShapeError(f"node '{node.name}': {e}") from None
    return out


step("add")(_binary(ek.qlinear_add, ek.add_plan, ta.acc_add, (OrtArith, AccRequant, TfliteAdd, XnnpackAdd),
                    planned_fns=(ek.qlinear_add_planned, ek.bind_add_planned), spread="scalar"))
step("mul")(_binary(ek.qlinear_mul, ek.mul_plan, ta.acc_mul, (OrtArith, AccRequant, FixedRequant, TfliteMul, XnnpackMul),
                    rows=ek.qlinear_mul_rows, planned_fns=(ek.qlinear_mul_planned, ek.bind_mul_planned),
                    spread="full", bind=ek.bind_mul))


def _requantize_codes(ctx, x, sx, zx, sy, zy, t):
    """One input of QLinearConcat in the output's quantization: onnxruntime's table for 8 bits."""
    if x.dtype in (np.uint8, np.int8) and t.bits == 8:
        table = lk.build_table_requant(sx, zx, sy, zy, x.dtype, t.storage)
        out = np.empty(x.shape, t.storage)
        ctx.kernel(lk.apply_table)(np.ascontiguousarray(x), table, out)
        return out
    reference = ctx.kernels == "reference"
    d = dequantize_linear(x, np.float32(sx), zx, None, 0, reference=reference)
    return quantize_linear(d, np.float32(sy), zy, None, 0, t.qmin, t.qmax, t.storage, reference=reference)


def _rescaled(ctx, node, rule, x, sx, zx, sy, zy, t):
    """A concat input in the output's quantization, by the target's rule."""
    if isinstance(rule, OrtArith):
        return _requantize_codes(ctx, x, sx, zx, sy, zy, t)
    if isinstance(rule, AccRequant):
        return ta.acc_rescale(ctx, node, x, sx, zx, sy, zy)
    raise TargetRefusal(ctx.target.name, node, f"input quantization (scale {sx}, zp {zx}) differs from the "
                                               f"output's (scale {sy}, zp {zy})")


@step("concat")
def prepare_concat(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), OrtArith, AccRequant, SameQuant)
    t = node.attrs["out_type"]
    reader = ParamReader(node, ctx, [i for i in range(len(node.inputs)) if i < 2 or (i - 2) % 3])
    axis = node.attrs["axis"]
    tables: dict = {}   # (sx, zx, sy, zy, x dtype) -> onnxruntime's requantization table (static parameters)

    def params(vals):
        """(sy, zy, [(sx, zx, same quantization)] per input), checked."""
        sy, zy = _scale(vals[0], node.inputs[0], node), scalar_zp(vals[1], node.inputs[1], node.name)
        per = []
        for i in range(2, len(vals), 3):
            sx, zx = _scale(vals[i + 1], node.inputs[i + 1], node), scalar_zp(vals[i + 2], node.inputs[i + 2], node.name)
            per.append((sx, zx, bool(np.float32(sx) == np.float32(sy) and zx == zy)))
        return sy, zy, per

    static = params(reader.values({})) if reader.static else None
    # the output stored channels-last (intsim.layout: a channel concat whose readers all read so):
    # the inputs' channels-last arrays joined along their last axis, the NCHW view stored
    out_nhwc = node.outputs[0] in getattr(ctx, "channels_last", ()) and axis in (1, -3)

    def part(x, sy, zy, sx, zx, same):
        x = np.asarray(x)
        if same:
            return x.astype(t.storage, copy=False)
        if static is not None and isinstance(rule, OrtArith) and x.dtype in (np.uint8, np.int8) and t.bits == 8:
            key = (sx, zx, sy, zy, x.dtype)
            if key not in tables:
                tables[key] = lk.build_table_requant(sx, zx, sy, zy, x.dtype, t.storage)
            xh = nhwc_of(x)            # element-wise: a channels-last input mapped in its own layout
            src = np.ascontiguousarray(x) if xh is None else xh
            out = np.empty(src.shape, t.storage)
            ctx.kernel(lk.apply_table)(src, tables[key], out)
            return out if xh is None else nchw_view(out)
        return _rescaled(ctx, node, rule, x, sx, zx, sy, zy, t)

    def run(env, tap):
        vals = reader.values(env)
        sy, zy, per = static if static is not None else params(vals)
        parts = [part(vals[i], sy, zy, *p) for i, p in zip(range(2, len(vals), 3), per)]
        try:
            if out_nhwc and all(p.ndim == 4 for p in parts):
                env[node.outputs[0]] = nchw_view(np.concatenate([p.transpose(0, 2, 3, 1) for p in parts], axis=3))
            else:
                env[node.outputs[0]] = np.concatenate(parts, axis=axis)
        except (ValueError, np.exceptions.AxisError) as e:
            raise ShapeError(f"node '{node.name}': {e}") from None

    def freeze(env, fixed):
        """call(env) concatenating the inputs (of the recorded shapes) into the output the step
        just stored (intsim.frozen); each requantized input through its table into a buffer of
        its own, or into its channels of a channels-last output. None unless the parameters are
        constant."""
        y = env[node.outputs[0]]
        if static is None or not isinstance(y, np.ndarray) or y.dtype != t.storage:
            return None
        sy, zy, per = static
        names = node.inputs[2::3]
        consts = ctx.constants
        xs = [np.asarray(consts[n] if n in consts else env[n]) for n in names]
        steps = []
        for x, (sx, zx, same) in zip(xs, per):
            key = (sx, zx, sy, zy, x.dtype)
            if same and x.dtype == t.storage:
                steps.append(None)
            elif not same and key in tables:
                steps.append((tables[key], np.empty(x.shape, t.storage)))
            else:
                return None
        apply = ctx.kernel(lk.apply_table)
        yh = nhwc_of(y)
        if yh is not None and all(x.ndim == 4 for x in xs):
            # channels-last output: each input written into its channels of yh, a requantized
            # channels-last input through its table straight into them (lk.apply_table_rows)
            rows, yh2 = ctx.kernel(lk.apply_table_rows), yh.reshape(-1, yh.shape[3])
            c0s = np.cumsum([0] + [x.shape[1] for x in xs[:-1]]).tolist()

            def call_nhwc(env):
                for n, st, c0 in zip(names, steps, c0s):
                    x = consts[n] if n in consts else env[n]
                    part = yh[..., c0:c0 + x.shape[1]]
                    xh = nhwc_of(x)
                    if st is None:
                        np.copyto(part, x.transpose(0, 2, 3, 1))
                    elif xh is not None:
                        rows(xh.reshape(-1, xh.shape[3]), st[0], yh2, c0)
                    else:       # an NCHW input: through its buffer
                        buf = st[1] if st[1].shape == x.shape else np.empty(x.shape, t.storage)
                        apply(np.ascontiguousarray(x), st[0], buf)
                        np.copyto(part, buf.transpose(0, 2, 3, 1))
            return call_nhwc

        def call(env):
            parts = []
            for n, st in zip(names, steps):
                x = consts[n] if n in consts else env[n]
                if st is None:
                    parts.append(x)
                else:
                    apply(np.ascontiguousarray(x), st[0], st[1])
                    parts.append(st[1])
            np.concatenate(parts, axis=axis, out=y)
        return call
    run.freeze = freeze
    return run


@step("lut")
def prepare_lut(node, ctx):
    rule = ta.require(ctx, node, ctx.target.rule(node), OrtArith, TfliteTable, XnnpackLeakyRelu, TfliteRequantize)
    if isinstance(rule, TfliteRequantize):
        return _lane_lut(node, ctx, rule)
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    t = node.attrs["out_type"]
    in_t = ctx.graph.tensors[node.inputs[0]].dtype
    kind, alpha = node.attrs["kind"], node.attrs.get("alpha", 0.01)
    wide = isinstance(rule, TfliteTable) and (in_t.bits == t.bits == 16 or
                                              (kind == "requantize" and {in_t.bits, t.bits} <= {8, 16}))
    if not wide and (in_t.bits != 8 or t.bits != 8):
        raise QuantParamError(f"node '{node.name}': lookup-table ops need 8-bit input and output"
                              f"{' (or 16-bit under a TFLite target)' if isinstance(rule, TfliteTable) else ''}")
    if isinstance(rule, OrtArith) and kind not in ("sigmoid", "leaky_relu"):
        raise TargetRefusal(ctx.target.name, node, f"onnxruntime has no {kind} lookup table")
    apply_table = ctx.kernel(lk.apply_table)
    cache: dict = {}

    def table(sx, zx, sy, zy):
        key = (sx, zx, sy, zy)
        if key not in cache and isinstance(rule, TfliteTable):
            cache[key] = ta.tflite_table(ctx, node, rule, kind, alpha, sx, zx, sy, zy, in_t.storage)
        if key not in cache and isinstance(rule, XnnpackLeakyRelu):   # else the builtin kernel's table
            cache[key] = xu.lrelu_table(sx, zx, sy, zy, alpha, in_t.storage) if xu.delegated(sx, sy, alpha) else \
                tk.leaky_table(sx, zx, sy, zy, alpha, in_t.storage, "double")
        if key not in cache:
            if kind == "sigmoid":
                cache[key] = lk.build_table_sigmoid(sx, zx, sy, zy, in_t.storage, t.storage)
            else:
                cache[key] = lk.build_table_leaky_relu(alpha, sx, zx, sy, zy, in_t.storage, t.storage)
        return cache[key]

    def table_of(vals):
        _, sx, zx, sy, zy = vals[:5]
        return table(_scale(sx, node.inputs[1], node), scalar_zp(zx, node.inputs[2], node.name),
                     _scale(sy, node.inputs[3], node), scalar_zp(zy, node.inputs[4], node.name))

    static = table_of(reader.values({})) if reader.static else None
    src, dst = node.inputs[0], node.outputs[0]

    def run(env, tap):
        vals = reader.values(env)
        tb = static if static is not None else table_of(vals)
        env[dst] = map_kept(np.asarray(vals[0]), t.storage, lambda x, out: apply_table(x, tb, out))

    def freeze(env, fixed):
        """call(env) looking the step's input (of the recorded shape) up into the output it just
        stored (intsim.frozen), both as they are held (NCHW, or channels-last); None unless the
        parameters are constant."""
        y = env[dst]
        consts = ctx.constants
        x = env[src]
        if static is not None and isinstance(y, np.ndarray) and not y.flags.c_contiguous and src in fixed \
                and ctx.kernels == "fast" and isinstance(x, np.ndarray):
            xh, yh = nhwc_of(x), nhwc_of(y)
            if xh is None or yh is None or xh.shape != yh.shape:
                return None
            call = lk.bind_table(xh, static, yh)
            return lambda env: call()
        if static is None or not isinstance(y, np.ndarray) or not y.flags.c_contiguous:
            return None
        if src in fixed and ctx.kernels == "fast" and isinstance(x, np.ndarray) and x.flags.c_contiguous \
                and x.shape == y.shape:     # a recorded buffer: the table bound to it, checks done now
            call = lk.bind_table(x, static, y)
            return lambda env: call()
        return lambda env: apply_table(np.ascontiguousarray(consts[src] if src in consts else env[src]), static, y)
    run.freeze = freeze
    return run


def _lane_lut(node, ctx, rule):
    """run(env, tap) of a QUANTIZE of 8- or 16-bit codes to another scale (and type) under
    rules.TfliteRequantize: tables derived once per parameter set (target_arith.requantize_tables),
    applied by position in the flat tensor (target_arith.apply_lane_tables)."""
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    t = node.attrs["out_type"]
    in_t = ctx.graph.tensors[node.inputs[0]].dtype
    if node.attrs["kind"] != "requantize" or getattr(in_t, "bits", 0) not in (8, 16) or t.bits not in (8, 16):
        raise TargetRefusal(ctx.target.name, node, f"its rule TfliteRequantize takes a requantize of 8- or 16-bit "
                                                   f"codes (got {node.attrs['kind']} of {in_t} to {t})")
    apply_table = ctx.kernel(lk.apply_table)
    cache: dict = {}

    def run(env, tap):
        vals = reader.values(env)
        _, sx, zx, sy, zy = vals[:5]
        key = (_scale(sx, node.inputs[1], node), scalar_zp(zx, node.inputs[2], node.name),
               _scale(sy, node.inputs[3], node), scalar_zp(zy, node.inputs[4], node.name))
        if key not in cache:
            cache[key] = ta.requantize_tables(rule, *key, in_t.storage, t.storage)
        x = np.asarray(vals[0])
        out = np.empty(x.shape, t.storage)
        ta.apply_lane_tables(apply_table, x, cache[key], out)
        env[node.outputs[0]] = out
    run.flat_positions = True       # vector blocks and tail of the flat tensor: no batch split (runtime.program)
    return run
