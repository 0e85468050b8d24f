"""The integer ops under rules other than onnxruntime's float formulas (intsim.targets.rules):
one function per (op family, rule), each returning the step's run(env, tap).

    AccRequant   add / mul / concat / pools: an exact int64 accumulator, then the target's own
                 requantizer (the same one conv and matmul use), per tensor; add and mul fold
                 the output zero point into the sum before rounding where real = 2**-n
    TfliteAdd    kernels.fixedpoint.tflite_add
    TfliteMul    (a - za) * (b - zb) requantized with mul.cc's float32 multiplier (FixedRequant)
    XnnpackAdd   kernels.xnnpack_binary.xnn_add (SUB too);  XnnpackMul  kernels.xnnpack_binary.xnn_mul
    TfliteTable  kernels.tflite_act's table of the activation, applied by kernels.lut.apply_table
    TfliteRequantize  two kernels.tflite_act.requantize_table (modes "builtin", "double") over the
                 flat tensor's 16-lane blocks and tail, or kernels.xnnpack_unary.cvt_table
    RawAverage   kernels.window.window_sums of raw codes, then divide_rhaz_trunc
    OptimizedMean  raw-code sums, kernels.fixedpoint.requant_fixedpoint per channel block
    XnnpackMean  raw-code sums, kernels.xnnpack_mean.xnn_mean
    DivideRound  kernels.window.window_sums of (x - zx), then divide_round in the target's rounding

Scales and zero points are per tensor; a requantizer is derived once per parameter set.
"""
from __future__ import annotations

import numpy as np

from kernels import fixedpoint as fk
from kernels import tflite_act as tk
from kernels import tflite_act16 as tk16
from kernels import tflite_sub as tsub
from kernels import window as wk
from kernels import xnnpack_binary as xk
from kernels import xnnpack_mean as xm
from kernels import xnnpack_unary as xu
from kernels.pool import pool_output_shape

from ..errors import QuantParamError, ShapeError
from ..geometry import auto_pads
from ..ir import Requant, pow2_exponent
from ..limits import check_shape
from ..targets.rules import (AccRequant, DivideRound, DoubleRequant, FixedRequant, FoldedMean, LaneRequant,
                             OptimizedMean, RawAverage, TargetRefusal, XnnpackMean)


def require(ctx, node, rule, *kinds):
    """`rule` when it is one of the record types `kinds` the step implements; else the target's
    refusal naming the op and node."""
    if not isinstance(rule, kinds):
        raise TargetRefusal(ctx.target.name, node, f"its rule {type(rule).__name__} is not implemented for {node.op}")
    return rule


def requantizer(ctx, node, rq: Requant, channels: int):
    """A conv/matmul/transpose_conv node's requantizer: the target's own (rules.AccRequant), or
    the one its rule names (rules.DoubleRequant, FixedRequant, LaneRequant: target.rule_requantizer)."""
    rule = ctx.target.rule(node)
    if isinstance(rule, (DoubleRequant, FixedRequant, LaneRequant)):
        return ctx.target.rule_requantizer(rule, rq, channels, node)
    return ctx.target.requantizer(rq, channels, node.name)


def _requantized(ctx, node, acc, scales, zy, divisor=1, fold_zp=False, rule=None):
    """clamp(target requant of int64 `acc` with real = a*b / (out*divisor)) as the node's output
    type: the target's own requantizer, or the one a rules.FixedRequant `rule` names. `fold_zp`
    (rules.AccRequant, add and mul): where real = 2**-n exactly (n >= 0), the output zero point joins
    the sum before the rounding, acc + zy * 2**n, as an adder with the offset in its constant
    does (and as onnxruntime's float QLinearAdd/QLinearMul round after adding zy)."""
    t = node.attrs["out_type"]
    a_scale, b_scale, out_scale = (np.float32(s) for s in scales)
    if fold_zp and divisor == 1:
        e = pow2_exponent(np.array([np.float64(a_scale) * np.float64(b_scale) / np.float64(out_scale)]))
        if e is not None and e[0] >= 0:
            acc, zy = acc + (np.int64(zy) << np.int64(e[0])), 0
    lo, hi = node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)
    rq = Requant(np.array(a_scale), np.array(b_scale), np.array(out_scale), int(zy), int(lo), int(hi), t,
                 node.outputs[0], int(divisor))
    out = np.empty(acc.shape, t.storage)
    r = ctx.target.rule_requantizer(rule, rq, 1, node) if isinstance(rule, FixedRequant) else \
        ctx.target.requantizer(rq, 1, node.name)
    (r.apply_reference if ctx.kernels == "reference" else r.apply)(acc.reshape(1, 1, -1), out.reshape(1, 1, -1))
    return out


def _pow2_ratio(node, sa, sb, what) -> int:
    """k with sa / sb == 2**k exactly, or QuantParamError naming the node."""
    e = pow2_exponent(np.array([np.float64(np.float32(sa)) / np.float64(np.float32(sb))]))
    if e is None:
        raise QuantParamError(f"node '{node.name}': {what}: scale ratio {float(sa) / float(sb)!r} is not a power "
                              f"of two, as a shift-only datapath requires")
    return int(-e[0])


def broadcast_shape(node, a, b, itemsize: int) -> tuple:
    """The shape a and b broadcast to, checked against the limits (at `itemsize` bytes per
    element) before anything of that shape is allocated."""
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"node '{node.name}': shapes {a.shape} and {b.shape} do not broadcast") from None
    check_shape(shape, itemsize, f"node '{node.name}': broadcast of {list(a.shape)} and {list(b.shape)} "
                                 f"to '{node.outputs[0]}'")
    return shape


def tflite_operands(ctx, node, a, b, p) -> None:
    """TFLite's ADD/SUB/MUL kernels (and XNNPACK's) take one type for both operands and the
    output, and a 16-bit one is int16 with zero points 0 (add.cc / mul.cc Prepare): any other
    add/mul (a QDQ graph under the "integer" policy: mixed signedness, uint16, an int16 zero
    point) is refused by name, not modelled."""
    t = node.attrs["out_type"]
    types = (np.dtype(a.dtype), np.dtype(b.dtype), np.dtype(t.storage))
    if len(set(types)) > 1:
        raise TargetRefusal(ctx.target.name, node, f"TFLite's kernels take one type for both operands and the "
                                                   f"output (got {', '.join(map(str, types))})")
    if t.bits == 16 and (t.storage != np.int16 or any(p[i] != 0 for i in (1, 3, 5))):
        raise TargetRefusal(ctx.target.name, node, f"TFLite's 16-bit kernels take int16 with zero point 0 (got "
                                                   f"{np.dtype(t.storage)}, zero points {p[1]}, {p[3]}, {p[5]})")


def acc_add(ctx, node, rule, a, b, p):
    """(a - za)*2^ka + (b - zb)*2^kb over the finer input scale, then the target's requant."""
    sa, za, sb, zb, sy, zy = p
    shape = broadcast_shape(node, a, b, 8)       # int64 accumulator
    k = _pow2_ratio(node, sa, sb, f"add of '{node.inputs[0]}' and '{node.inputs[3]}'")
    ka, kb, fine = (k, 0, sb) if k >= 0 else (0, -k, sa)
    acc = ((np.broadcast_to(a, shape).astype(np.int64) - za) << ka) + \
          ((np.broadcast_to(b, shape).astype(np.int64) - zb) << kb)
    return _requantized(ctx, node, acc, (fine, 1.0, sy), zy, fold_zp=rule.fold_zp)


def acc_mul(ctx, node, rule, a, b, p):
    """(a - za) * (b - zb), then the target's requant (or rules.FixedRequant's) with real = sa*sb / sy."""
    sa, za, sb, zb, sy, zy = p
    if isinstance(rule, FixedRequant) or getattr(rule, "one_type", False):   # the TFLite family's MUL
        tflite_operands(ctx, node, a, b, p)
    shape = broadcast_shape(node, a, b, 8)       # int64 accumulator
    acc = (np.broadcast_to(a, shape).astype(np.int64) - za) * (np.broadcast_to(b, shape).astype(np.int64) - zb)
    return _requantized(ctx, node, acc, (sa, sb, sy), zy, fold_zp=getattr(rule, "fold_zp", False), rule=rule)


def tflite_mul(ctx, node, rule, a, b, p, cache):
    """TFLite's MUL (rules.TfliteMul): (a - za) * (b - zb) by MultiplyByQuantizedMultiplier in
    the rule's mode with real = f32(f32(sa * sb) / sy), mul.cc's float32 expression."""
    sa, za, sb, zb, sy, zy = p
    if p not in cache:          # operand types are the node's: checked with its first parameters
        tflite_operands(ctx, node, a, b, p)
        real = np.float32(np.float32(np.float32(sa) * np.float32(sb)) / np.float32(sy))
        if rule.narrow16 and node.attrs["out_type"].bits == 8:
            span = [max(abs(int(i.min) - z), abs(int(i.max) - z)) for i, z in ((np.iinfo(a.dtype), za),
                                                                                (np.iinfo(b.dtype), zb))]
            if np.ceil(span[0] * span[1] * np.float64(real)) + 1 + abs(zy) > 32767:
                raise TargetRefusal(ctx.target.name, node, "TFLite's optimized 8-bit MUL saturates its requantized "
                                    "product to int16 and adds the output zero point in int16 (wrapping, measured "
                                    "off by 255), and with these scales the sum can leave int16: not modelled")
        cache[p] = real
    shape = broadcast_shape(node, a, b, 8)       # int64 accumulator
    acc = (np.broadcast_to(a, shape).astype(np.int64) - za) * (np.broadcast_to(b, shape).astype(np.int64) - zb)
    return _requantized(ctx, node, acc, (cache[p], 1.0, 1.0), zy, rule=FixedRequant(rule.mode))


def tflite_add(ctx, node, rule, a, b, p, cache):
    """TFLite's fixed-point ADD (kernels.fixedpoint.tflite_add), or SUB for a node with attr
    `subtract` (kernels.tflite_sub); left shift 20 for 8-bit outputs, 15 for 16-bit ones. A rule
    with `lanes` (tflite-builtin) takes kernels.fixedpoint.tflite_add_lanes for an ADD of equal
    shapes (optimized_integer_ops::AddElementwise's vector blocks and scalar tail, 8-bit; its
    int16 twin AddElementwiseInt16 the same arithmetic with left shift 15, measured) and
    kernels.fixedpoint.tflite_add_broadcast for an 8-bit fivefold broadcast (BroadcastAddFivefold);
    int16 broadcasts (reference_ops::BroadcastAdd6DSlow) and other 8-bit broadcasts of any rank (kGenericBroadcast: optimized_integer_ops::BroadcastAddDispatch ->
    reference_integer_ops::BroadcastAdd6DSlow) take the reference arithmetic, tflite_add in mode
    "double" (measured on 4- to 7-D shapes)."""
    sa, za, sb, zb, sy, zy = p
    t = node.attrs["out_type"]
    shape = broadcast_shape(node, a, b, t.storage.itemsize)
    left = 15 if t.bits > 8 else 20
    if p not in cache:          # operand types are the node's: checked with its first parameters
        tflite_operands(ctx, node, a, b, p)
        if rule.narrow16 and t.bits == 8 and 255 * (abs(sa) + abs(sb)) / sy + abs(zy) > 32767:
            raise TargetRefusal(ctx.target.name, node, "TFLite's optimized 8-bit ADD narrows its requantized sum "
                                "to int16 before the output clamp, and with these scales the sum can leave int16 "
                                "(measured to wrap): not modelled")
        try:
            cache[p] = fk.tflite_add_params(sa, sb, sy, left, single_rounding=rule.mode == "single")
        except ValueError as e:
            raise QuantParamError(f"node '{node.name}': {e}") from None
    m, s = cache[p]
    out = np.empty(shape, t.storage)
    if node.attrs.get("subtract"):      # TFLite SUB (kernels.tflite_sub)
        fn = tsub.tflite_sub_ref if ctx.kernels == "reference" else tsub.tflite_sub
        fn(np.broadcast_to(a, shape), np.broadcast_to(b, shape), za, zb, m, s, left, rule.mode, zy,
           node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax), out)
        return out
    same = a.size == b.size == out.size
    if rule.lanes and (t.bits == 8 or same):    # AddElementwise(Int16) / BroadcastAddFivefold (8-bit only)
        if np.any(left + s[:2] < 0):
            raise TargetRefusal(ctx.target.name, node, f"TFLite's optimized ADD shifts an input right before its "
                                f"high multiply at these scales (an input scale below 2**-{left} of the other): "
                                f"not modelled")
        lo, hi = node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)
        if same:
            fn = fk.tflite_add_lanes_ref if ctx.kernels == "reference" else fk.tflite_add_lanes
            fn(a.reshape(shape), b.reshape(shape), za, zb, m, s, left, rule.lanes, zy, lo, hi, out)
            return out
        if fk.tflite_fivefold(a.shape, b.shape) is None:    # kGenericBroadcast: BroadcastAdd6DSlow (measured)
            ctx.kernel(fk.tflite_add)(np.broadcast_to(a, shape), np.broadcast_to(b, shape), za, zb, m, s, left,
                                      "double", zy, lo, hi, out)
            return out
        fn = fk.tflite_add_broadcast_ref if ctx.kernels == "reference" else fk.tflite_add_broadcast
        fn(a, b, za, zb, m, s, left, zy, lo, hi, out)
        return out
    ctx.kernel(fk.tflite_add)(np.broadcast_to(a, shape), np.broadcast_to(b, shape), za, zb, m, s, left, rule.mode, zy,
                  node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax), out)
    return out


def _xnn_prepared(ctx, node, a, b, p, cache, derive):
    """cache[p] = derive(p), once per parameter set; an 8-bit output only. Constant scales the
    XNNPACK delegate declines never reach here (the target's `annotate` gives those nodes the
    builtin rule); declined scales known only at run time are refused by name."""
    if p not in cache:          # operand types are the node's: checked with its first parameters
        tflite_operands(ctx, node, a, b, p)
        if node.attrs["out_type"].bits != 8:
            raise TargetRefusal(ctx.target.name, node, "XNNPACK's binary ops take 8-bit tensors only")
        try:
            cache[p] = derive(p)
        except ValueError as e:
            raise TargetRefusal(ctx.target.name, node, f"{e}: not delegated to XNNPACK (the interpreter's "
                                                       f"builtin kernel runs, not modelled)") from None
    return cache[p]


def xnnpack_add(ctx, node, rule, a, b, p, cache):
    """XNNPACK's qs8 ADD, or SUB for a node with attr `subtract` (kernels.xnnpack_binary)."""
    sa, za, sb, zb, sy, zy = p
    t = node.attrs["out_type"]
    params = _xnn_prepared(ctx, node, a, b, p, cache,
                           lambda p: xk.add_params(sa, za, sb, zb, sy, bool(node.attrs.get("subtract"))))
    shape = broadcast_shape(node, a, b, 8)
    out = np.empty(shape, t.storage)
    ctx.kernel(xk.xnn_add)(np.broadcast_to(a, shape), np.broadcast_to(b, shape), params, zy,
                           node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax), out)
    return out


def xnnpack_mul(ctx, node, rule, a, b, p, cache):
    """XNNPACK's qs8 MUL (kernels.xnnpack_binary.xnn_mul)."""
    sa, za, sb, zb, sy, zy = p
    t = node.attrs["out_type"]
    r = _xnn_prepared(ctx, node, a, b, p, cache, lambda p: xk.mul_scale(sa, sb, sy))
    shape = broadcast_shape(node, a, b, 8)
    out = np.empty(shape, t.storage)
    ctx.kernel(xk.xnn_mul)(np.broadcast_to(a, shape), np.broadcast_to(b, shape), za, zb, r, zy,
                           node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax), out)
    return out


def acc_rescale(ctx, node, x, sx, zx, sy, zy):
    """One input of a concat moved to the output's quantization: x - zx requantized by sx / sy."""
    return _requantized(ctx, node, np.asarray(x).astype(np.int64) - zx, (sx, 1.0, sy), zy)


def _window(ctx, node, x, a):
    """(sums fn, out shape, kernel, strides, pads) of a 2-D AveragePool node on NCHW x."""
    kernel = list(a["kernel_shape"])
    if x.ndim != 4 or len(kernel) != 2:
        raise TargetRefusal(ctx.target.name, node, "integer pools are modelled for 2-D windows only")
    strides = list(a["strides"]) or [1, 1]
    pads = list(a["pads"]) or [0, 0, 0, 0]
    if a.get("auto_pad") in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pads = auto_pads(a["auto_pad"], x.shape[2:], kernel, strides, [1, 1])
    out_hw = pool_output_shape(x.shape[2:], kernel, strides, pads, [1, 1], a["ceil_mode"])
    check_shape(x.shape[:2] + tuple(out_hw), 8, f"node '{node.name}': output of AveragePool")
    return kernel, strides, pads, tuple(out_hw)


def pool_sums(ctx, node, x, zp, a, include_pad):
    """(sums (N, C, OH, OW) int64, counts (OH, OW)) of an avgpool node, or of a global pool
    (a is None: one window over every spatial position)."""
    if a is None:
        hw = int(np.prod(x.shape[2:], dtype=np.int64))
        sums = x.reshape(x.shape[0], x.shape[1], -1).astype(np.int64).sum(axis=2) - np.int64(zp) * hw
        return sums.reshape(x.shape[:2] + (1,) * (x.ndim - 2)), np.full((1,) * (x.ndim - 2), hw, np.int64)
    kernel, strides, pads, out_hw = _window(ctx, node, x, a)
    return ctx.kernel(wk.window_sums)(x, zp, kernel, strides, pads, out_hw, include_pad)


def _clamp(node, y):
    t = node.attrs["out_type"]
    return np.clip(y, node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)).astype(t.storage)


def raw_average(ctx, node, x, p, a):
    """TFLite AVERAGE_POOL_2D / MEAN-free average of codes: needs equal in/out quantization and
    windows of in-image taps only."""
    sx, zx, sy, zy = p
    if np.float32(sx) != np.float32(sy) or zx != zy:
        raise TargetRefusal(ctx.target.name, node, f"input and output quantization differ "
                                                   f"(scale {sx} zp {zx} vs scale {sy} zp {zy})")
    if a is not None and a["count_include_pad"] and any(a["pads"]):
        raise TargetRefusal(ctx.target.name, node, "count_include_pad=1 with padding (TFLite counts in-image taps)")
    sums, counts = pool_sums(ctx, node, x, 0, a, False)
    return _clamp(node, wk.divide_rhaz_trunc(sums, counts))


def divide_average(ctx, node, rule, x, p, a):
    """round(sum(x - zx) * 2^k / n) + zy exactly, sx / sy = 2^k, in the rule's rounding."""
    sx, zx, sy, zy = p
    k = _pow2_ratio(node, sx, sy, f"pool of '{node.inputs[0]}'")
    sums, counts = pool_sums(ctx, node, x, zx, a, bool(a and a["count_include_pad"]))
    num, den = (sums << k, counts) if k >= 0 else (sums, counts << -k)
    return _clamp(node, wk.divide_round(num, den, rule.rounding) + zy)


def acc_average(ctx, node, x, p, a):
    """sum(x - zx) requantized by the target with real = sx / (sy * n), per distinct count n."""
    sx, zx, sy, zy = p
    sums, counts = pool_sums(ctx, node, x, zx, a, bool(a and a["count_include_pad"]))
    t = node.attrs["out_type"]
    out = np.empty(sums.shape, t.storage)
    cnt = np.broadcast_to(counts, sums.shape)
    for n in np.unique(counts):
        sel = cnt == n
        out[sel] = _requantized(ctx, node, sums[sel], (sx, 1.0, sy), zy, divisor=int(n))
    return out


def folded_mean(ctx, node, rule, x, p):
    """TFLite MEAN over the spatial axes (rules.FoldedMean): sum(x - zx) requantized by
    MultiplyByQuantizedMultiplier with kernels.fixedpoint.mean_multiplier's folded 1/n."""
    sx, zx, sy, zy = p
    t = node.attrs["out_type"]
    sums, counts = pool_sums(ctx, node, x, zx, None, False)
    m0, shift = fk.quantize_multiplier(np.array([np.float64(np.float32(sx)) / np.float64(np.float32(sy))]),
                                       single_rounding=rule.mode == "single")
    m, s = fk.mean_multiplier(m0.astype(np.int64), shift.astype(np.int64), np.array([int(counts.reshape(-1)[0])]))
    out = np.empty(sums.shape, t.storage)
    fn = fk.requant_fixedpoint_ref if ctx.kernels == "reference" else fk.requant_fixedpoint
    try:
        fn(sums.reshape(1, 1, -1), m, s, int(zy), int(node.attrs.get("lo", t.qmin)), int(node.attrs.get("hi", t.qmax)),
           rule.mode, out.reshape(1, 1, -1))
    except ValueError as e:
        raise QuantParamError(f"node '{node.name}': {e}") from None
    return out


def optimized_mean(ctx, node, x, p):
    """TFLite's optimized int8 MEAN over H, W (rules.OptimizedMean): the raw codes' sums
    requantized by kernels.fixedpoint.requant_fixedpoint, mode "builtin" on the 16-channel
    vector blocks and "double" on the remaining channels, the bias as zero point."""
    sx, zx, sy, zy = p
    t = node.attrs["out_type"]
    if x.dtype != np.int8 or t.storage != np.int8:
        raise TargetRefusal(ctx.target.name, node, "the optimized MEAN is modelled for int8 only")
    sums, counts = pool_sums(ctx, node, x, 0, None, False)
    try:
        m0, shift, bias = fk.optimized_mean_params(sx, zx, sy, zy, int(counts.reshape(-1)[0]))
    except ValueError as e:
        raise QuantParamError(f"node '{node.name}': {e}") from None
    n, c = sums.shape[:2]
    vec = c // fk.OPTIMIZED_MEAN_LANES * fk.OPTIMIZED_MEAN_LANES
    out = np.empty((n, c), t.storage)
    fn = fk.requant_fixedpoint_ref if ctx.kernels == "reference" else fk.requant_fixedpoint
    for lo, hi, mode in ((0, vec, "builtin"), (vec, c, "double")):
        if hi > lo:
            acc = np.ascontiguousarray(sums.reshape(n, c)[:, lo:hi]).reshape(n, hi - lo, 1)
            part = np.empty(acc.shape, t.storage)
            fn(acc, np.full(hi - lo, m0, np.int32), np.full(hi - lo, shift, np.int32), bias, -128, 127, mode, part)
            out[:, lo:hi] = part.reshape(n, hi - lo)
    return out.reshape(sums.shape)


def xnnpack_mean(ctx, node, x, p):
    """XNNPACK's MEAN over H, W (rules.XnnpackMean, kernels.xnnpack_mean) of 8-bit codes."""
    sx, zx, sy, zy = p
    t = node.attrs["out_type"]
    if t.bits != 8:
        raise TargetRefusal(ctx.target.name, node, "XNNPACK's MEAN is modelled for 8-bit tensors only")
    sums, counts = pool_sums(ctx, node, x, 0, None, False)
    s, zp = xm.mean_params(sx, zx, sy, zy, int(counts.reshape(-1)[0]))
    out = np.empty(sums.shape, t.storage)
    (xm.xnn_mean_ref if ctx.kernels == "reference" else xm.xnn_mean)(sums, s, zp, out)
    return out


def average(ctx, node, rule, x, p, a):
    """An average pool (attrs `a`, or None for a global one) on NCHW x under `rule`."""
    if isinstance(rule, XnnpackMean) and a is None:
        return xnnpack_mean(ctx, node, x, p)
    if isinstance(rule, OptimizedMean) and a is None:
        return optimized_mean(ctx, node, x, p)
    if isinstance(rule, FoldedMean) and a is None:
        return folded_mean(ctx, node, rule, x, p)
    if isinstance(rule, RawAverage):
        return raw_average(ctx, node, x, p, a)
    if isinstance(rule, DivideRound):
        return divide_average(ctx, node, rule, x, p, a)
    require(ctx, node, rule, AccRequant)
    return acc_average(ctx, node, x, p, a)


def tflite_table(ctx, node, rule, kind, alpha, sx, zx, sy, zy, dtype) -> np.ndarray:
    """The 256-entry table of TFLite activation `kind` (rules.TfliteTable): relu (clamped to
    the node's lo/hi), leaky_relu, sigmoid (LOGISTIC), tanh, hard_swish, requantize (an integer
    QUANTIZE that changes the scale); for int16 codes the
    65536-entry one (relu, leaky_relu; sigmoid and tanh: kernels.tflite_act16)."""
    t = node.attrs["out_type"]
    if np.dtype(dtype).itemsize == 2 and kind in ("sigmoid", "tanh"):
        return _table16(ctx, node, rule, "logistic" if kind == "sigmoid" else "tanh", sx, zx, sy, zy)
    if kind == "relu":
        return tk.relu_table(sx, zx, sy, zy, node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax), dtype,
                             rule.mode)
    if kind == "leaky_relu":
        try:
            return tk.leaky_table(sx, zx, sy, zy, alpha, dtype, rule.mode)
        except ValueError as e:         # e.g. a negative alpha: a negative q31 multiplier, not modelled
            raise QuantParamError(f"node '{node.name}': LEAKY_RELU alpha {alpha}: {e}") from None
    if kind == "requantize":        # codes of `dtype` to the node's type (importer.tflite_model.REQUANTIZE_TYPES)
        return tk.requantize_table(sx, zx, sy, zy, dtype, rule.mode, t.storage)
    if kind == "hard_swish":
        try:
            return tk.hard_swish_table(sx, zx, sy, zy, dtype)
        except ValueError as e:
            raise QuantParamError(f"node '{node.name}': {e}") from None
    if kind in ("sigmoid", "tanh"):
        return tk.float_table("logistic" if kind == "sigmoid" else "tanh", sx, zx, sy, zy, dtype)
    raise TargetRefusal(ctx.target.name, node, f"no TFLite table for {kind}")


REQUANTIZE_LANES = 16     # optimized_ops::Requantize's vector loop: 16 codes per step


def requantize_tables(rule, sx, zx, sy, zy, dtype, out_dtype=None) -> tuple:
    """The tables of a QUANTIZE of `dtype` codes to another scale and `out_dtype` (default `dtype`)
    under rules.TfliteRequantize: (one table,) for XNNPACK's convert where the delegate takes it
    (one 8-bit type, the ratio in range), (vector table, scalar table) of optimized_ops::Requantize
    (modes "builtin" and "double", kernels.tflite_act.requantize_table) for 8-bit codes to 8-bit
    codes, else (the "double" table,): a 16-bit side runs reference_ops::Requantize."""
    out_dtype = np.dtype(out_dtype or dtype)
    if rule.kernel == "xnnpack" and np.dtype(dtype) == out_dtype and xu.cvt_delegated(sx, sy):
        return (xu.cvt_table(sx, zx, sy, zy, dtype),)
    modes = ("builtin", "double") if np.dtype(dtype).itemsize == out_dtype.itemsize == 1 else ("double",)
    return tuple(tk.requantize_table(sx, zx, sy, zy, dtype, mode, out_dtype) for mode in modes)


def apply_lane_tables(apply_table, x: np.ndarray, tables: tuple, out: np.ndarray) -> None:
    """out = tables[0][x] (one table), or the vector table over the first REQUANTIZE_LANES *
    floor(n / REQUANTIZE_LANES) codes of the flat tensor and the scalar table over the rest."""
    xf, of = np.ascontiguousarray(x).reshape(-1), out.reshape(-1)
    vec = xf.size // REQUANTIZE_LANES * REQUANTIZE_LANES if len(tables) == 2 else xf.size
    for lo, hi, tb in ((0, vec, tables[0]), (vec, xf.size, tables[-1])):
        if hi > lo:
            apply_table(xf[lo:hi], tb, of[lo:hi])


def _table16(ctx, node, rule, fn, sx, zx, sy, zy) -> np.ndarray:
    """int16 LOGISTIC / TANH (kernels.tflite_act16): TFLite's prepare failures are QuantParamErrors;
    under rule.optimized16 a power-of-two input scale takes gemmlowp's fixed-point kernel."""
    try:
        tk16.check_output(fn, sy, zx, zy)
        return (tk16.optimized_table16 if rule.optimized16 else tk16.table16)(fn, sx)
    except ValueError as e:
        raise QuantParamError(f"node '{node.name}': {e}") from None
