"""conv and matmul: accumulate (kernel) -> accumulator model -> bias is inside the sum ->
requantize + clamp + output zero point (target). Inputs in QLinearConv order:

    (x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias)

acc[n, m, p] = bias[m] + sum_k (x[k] - x_zp) * (w[m, k] - w_zp[m])   (int64, then the model)
y = target.requantize(acc) with multiplier x_scale * w_scale[m] / y_scale.

Stages: lower (importer) -> prepare -> run. Prepare binds the parameters, the target's
requantizer and the accumulation engine once (Bound, engines.select), and, for each input
shape, layout and thread count a run meets, the fused lane: weights packed and the whole conv
bound to those arrays' shapes (engines.Engine.fused). Run is then one lookup and that bound
call; frozen runs (intsim.runtime.frozen) take the bound call's own freeze. Taps, narrow
accumulators, other targets and the reference kernels take the accumulator path (engine sums,
accumulator model, requantizer).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kernels import qmatmul_act
from kernels.conv import ConvGeom, conv_out_hw
from kernels.cpu import best_isa
from kernels.threads import get_num_threads

from ..accumulator import Accumulator, finish, narrow_model
from ..errors import AccumulatorOverflow, QuantParamError, ShapeError
from ..geometry import auto_pads
from ..ir import IntType, Requant
from ..layout import held_nhwc, planes_view
from ..limits import check_shape
from ..targets.rules import AccRequant, DoubleRequant, FixedRequant, LaneRequant
from . import engines
from .registry import step
from .target_arith import require, requantizer
from .params import ParamReader, bias_onto_accumulator, check_scale, per_channel, scalar_zp


@dataclass
class Bound:
    """Everything a compute node needs at run time, derived once from its parameters."""
    w: np.ndarray
    x_zp: int
    w_zp: np.ndarray
    bias: np.ndarray
    requantizer: object
    mode: str
    narrow: object = None   # kernels.overflow.NarrowAcc when the accumulator needs the K order
    packed: dict = field(default_factory=dict)  # engine weight panels (once per geometry), fused params
    matmul: bool = False    # w is a MatMul's (K, N) (else a conv's (M, C, KH, KW))
    engine: engines.Engine = None   # the accumulation engine, chosen once at prepare (engines.select)
    reference: bool = False         # kernels="reference": NumPy twins only, no fused lanes
    requant: object = None          # requantizer.apply, or its apply_reference (chosen once)

    def conv_w(self) -> np.ndarray:
        """The weights as a conv's (M, C/group, KH, KW): a MatMul's (K, N) is the 1x1 conv (N, K, 1, 1)."""
        if not self.matmul:
            return self.w
        if "conv_w" not in self.packed:
            self.packed["conv_w"] = np.ascontiguousarray(self.w.T).reshape(self.w.shape[1], self.w.shape[0], 1, 1)
        return self.packed["conv_w"]

    def fused_requant(self, ctx, x_dtype, out_dtype):
        """(mult, zp, lo, hi) when the conv may run in one fused SIMD call that writes the 8-bit
        output directly: onnxruntime's float requantization, an 8-bit output, the default
        accumulator (`exact`, no tile, >= 32 bits) and a static bound proving every sum stays in
        int32 (so no AccumulatorOverflow could have been raised and int32 sums are exact);
        else None. Cached per input dtype."""
        key = ("fused", np.dtype(x_dtype))
        if self.reference:
            return None
        if key not in self.packed:
            self.packed[key] = _fused_params(self, ctx, np.dtype(x_dtype), np.dtype(out_dtype))
        return self.packed[key]

    def fast(self, x_dtype) -> bool:
        """Exact sums of 8-bit operands go through the SIMD engine (kernels.fast_*) when the host
        has one; it falls back to the portable kernels by itself when a sum could leave int32."""
        return (self.mode == "exact" and self.narrow is None and x_dtype in _BYTES and self.w.dtype in _BYTES
                and _simd())


_BYTES = (np.dtype(np.uint8), np.dtype(np.int8))


def _fused_params(b: Bound, ctx, x_dtype, out_dtype):
    acc = ctx.accumulator
    fused = b.requantizer.fused_form()
    if fused is None or out_dtype not in _BYTES or b.narrow is not None \
            or acc.overflow != "exact" or acc.tile or acc.bits < 32 or x_dtype not in _BYTES or not _simd():
        return None
    if b.engine.fused is None or (b.mode == "exact" and not b.fast(x_dtype)):
        return None
    info = np.iinfo(x_dtype)
    cw = b.conv_w()
    m = cw.shape[0]
    w = cw.reshape(m, -1).astype(np.int64)
    k = w.shape[1]
    if b.mode == "exact":
        amax = max(abs(int(info.max) - b.x_zp), abs(int(info.min) - b.x_zp))
        bound = np.abs(b.bias).astype(np.float64) + amax * np.abs(w - b.w_zp[:, None]).sum(1).astype(np.float64)
    else:   # raw pair sums, then the zero-point terms
        bound = (np.abs(b.bias) + abs(b.x_zp) * np.abs(w.sum(1)) + np.abs(b.w_zp) * k * 255
                 + k * abs(b.x_zp) * np.abs(b.w_zp)).astype(np.float64) + float(-(-k // 2) * 32768)
    if bound.max(initial=0.0) >= 2.0**31 - 2**12:
        return None
    return fused


def _fused_lane(node, ctx, b: Bound, geom, fused, x4, one_d: bool, x_layout: str):
    """The conv and its requantization in one SIMD pass (Bound.fused_requant said it is exact),
    prepared once for inputs shaped like x4 held in x_layout (channels-last: read in place) and
    the kernel thread count now: the engine's fused call (engines.Engine.fused) bound to them.
    The returned lane(env, x) runs it on x (x4's array, or for "nhwc" its (N, H, W, C) array)
    and stores the output; an output read only channels-last (intsim.layout) is written
    channels-last and stored as its NCHW view."""
    n, m = x4.shape[0], b.w.shape[0]
    oh, ow = conv_out_hw(x4.shape[2], x4.shape[3], b.w.shape[2], b.w.shape[3], geom)
    dtype, name = node.attrs["out_type"].storage, node.outputs[0]
    out_nhwc = name in getattr(ctx, "channels_last", ())
    out_shape = (n, oh, ow, m) if out_nhwc else (n, m, oh, ow)
    stored = (n, m, ow) if one_d else (n, m, oh, ow)
    rank = len(stored)
    conv = b.engine.fused(b, geom, x4.shape, x4.dtype, (x_layout, "nhwc" if out_nhwc else "nchw"), dtype,
                          (True,) + fused, "conv")
    # a 1-D conv's (N, C, W) x read as (N, C, 1, W); held channels-last, x is already its
    # (N, 1, W, C) image (held_nhwc)
    x4_shape = x4.shape if one_d and x_layout == "nchw" else None

    def lane(env, x):
        out = np.empty(out_shape, dtype)
        try:
            conv(x if x4_shape is None else x.reshape(x4_shape), out)
        except ValueError as e:
            raise ShapeError(f"node '{node.name}': {e}") from None
        env[name] = planes_view(out, rank) if out_nhwc else out.reshape(stored)

    def fed(env):
        """The lane on a graph input (read from env at each replay) into the output array env
        holds (a frozen run's `fresh_outputs`): conv checks both, as on an ordinary run."""
        x, y = env[node.inputs[0]], env[name]
        xh = x if x_layout != "nhwc" else held_nhwc(x)
        if xh is None:          # a feed laid out unlike the recorded one
            xh = np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(x4.shape[0], x4.shape[2], x4.shape[3], x4.shape[1])
        out = held_nhwc(y) if out_nhwc else y.reshape(out_shape)
        _kernel_call(node, conv, xh if x4_shape is None else xh.reshape(x4_shape), out)
    fed.fresh_outputs = True

    def freeze(env, fixed):
        """call(env) redoing this lane's last run in place: x and the output it stored (see
        intsim.frozen); for x not in a fixed buffer (a graph input), `fed`."""
        if node.inputs[0] not in fixed:
            return fed
        x, y = env[node.inputs[0]], env[name]
        x = held_nhwc(x) if x_layout == "nhwc" else x
        out = held_nhwc(y) if out_nhwc else y.reshape(out_shape)
        if x is None or out is None or not out.flags.c_contiguous:
            return None
        call = conv.freeze(x if x4_shape is None else x.reshape(x4_shape), out)
        return lambda env: _kernel_call(node, call)
    lane.freeze = freeze
    return lane


def _lane_now(run, env, fixed, x_name, lane):
    """lane(): the step's fused lane for its input's key and the thread count now; for an input
    that is not a fixed buffer (a graph input, which the lane's `fed` call reads at each replay)
    and no such lane yet (a serial call made under serial_here for intsim.runtime.tune), the
    step run once on a copy of env to prepare it."""
    got = lane()
    if got is None and x_name not in fixed:
        run(dict(env), None)
        got = lane()
    return got


def _simd() -> bool:
    """The host runs the SIMD engines (AVX2 or better) and INTSIM_PORTABLE is not set."""
    return best_isa() != "portable"


def _bind(node, ctx, vals, channels: int, w: np.ndarray, packed: dict | None = None) -> Bound:
    """The node's Bound for parameter values `vals`; `packed`: the weight panels it shares
    (_weight_panels), else its own."""
    x, xs, xz, _, ws, wz, ys, yz, b = vals
    n, ins = node.name, node.inputs
    x_t = ctx.graph.tensors.get(ins[0])
    _check_weight(node, w)
    x_zp = scalar_zp(xz, ins[2], n)
    w_zp = per_channel(wz, channels, ins[5], n, np.int64)
    bias = per_channel(b, channels, ins[8], n, np.int64)
    if node.attrs.get("bias_scale") is not None:    # a bias with its own scale (Quark XINT8)
        bias = bias_onto_accumulator(ctx.target.bias_rule(node), node, bias, xs, ws, channels)
    x_type = x_t.dtype if x_t is not None and isinstance(x_t.dtype, IntType) else None
    _check_zp_range(node, ins[2], np.array([x_zp]), x_type)
    _check_zp_range(node, ins[5], w_zp, IntType(w.dtype.itemsize * 8, w.dtype.kind == "i"))
    rq = None
    if node.attrs.get("requant"):
        y_zp = scalar_zp(yz, ins[7], n)
        a_scale = check_scale(xs, ins[1], n).reshape(-1)
        if a_scale.size != 1:
            raise QuantParamError(f"node '{n}': input scale '{ins[1]}' must be per-tensor")
        b_scale = check_scale(ws, ins[4], n).reshape(-1)
        if b_scale.size not in (1, channels):
            raise QuantParamError(f"node '{n}': weight scale '{ins[4]}' has {b_scale.size} values for {channels} channels")
        alpha = float(node.attrs.get("alpha", 1.0))
        a_scale = (a_scale * np.float32(alpha)).astype(np.float32) if alpha != 1.0 else a_scale
        t = node.attrs["out_type"]
        lo, hi = node.attrs.get("lo", t.qmin), node.attrs.get("hi", t.qmax)
        y_scale = check_scale(ys, ins[6], n)
        if y_scale.size != 1:
            raise QuantParamError(f"node '{n}': output scale '{ins[6]}' must be per-tensor, got shape {y_scale.shape}")
        _check_zp_range(node, ins[7], np.array([y_zp]), t)
        _check_multiplier(node, a_scale, b_scale, y_scale)
        req = Requant(a_scale[0], b_scale if b_scale.size > 1 else b_scale[0],
                      y_scale.reshape(()), y_zp, lo, hi, t, node.outputs[0])
        rq = requantizer(ctx, node, req, channels)
    x_dtype = x.dtype if x is not None else getattr(getattr(x_t, "dtype", None), "storage", w.dtype)
    mode = ctx.accumulation(x_dtype, w.dtype)
    narrow = narrow_model(ctx.accumulator)
    reference = getattr(ctx, "kernels", "fast") == "reference"
    return Bound(w, x_zp, w_zp, bias, rq, mode, narrow, packed={} if packed is None else packed,
                 engine=_engine(node, mode, narrow, x_dtype, w.dtype, reference),
                 reference=reference, requant=None if rq is None else rq.apply_reference if reference else rq.apply)


def _weight_panels(node, ctx) -> dict | None:
    """The `packed` dict shared by the Bounds of every run of a node whose weights and weight
    zero point are constants while another parameter is fed at run time (a dynamically
    quantized MatMulInteger's x zero point): the engines' panels (engines.packed_exact,
    packed_pairs, the GEMM's "b"/"pairs", Bound.conv_w) depend on w and w_zp alone, so they are
    packed once, not on every run. None (each Bound packs its own) when the node requantizes:
    Bound.fused_requant caches values of the x zero point, bias and scales in `packed` too."""
    ins = node.inputs
    weights = [ins[i] for i in (3, 5) if i < len(ins) and ins[i]]
    if node.attrs.get("requant") or not all(n in ctx.constants for n in weights):
        return None
    return {}


BOUNDS_KEPT = 256  # Bounds a node keeps per fed parameter value (an 8-bit zero point has 256)


def _bound_of(node, ctx, reader, bind, panels):
    """bound(env) -> bind(reader.values(env)) for a node whose parameters are fed at run time.
    When its weight panels are shared (`panels`, _weight_panels), the result is kept per input
    dtype and values of the fed parameters: those values are few (a dynamically quantized
    input's 8-bit zero point), and binding (checks, accumulation mode, engine) costs more than
    a small GEMM. At most BOUNDS_KEPT are kept (then all are dropped and kept anew)."""
    if panels is None:
        return lambda env: bind(reader.values(env))
    fed = [n for n in node.inputs[1:9] if n and n not in ctx.constants]
    x_name, kept = node.inputs[0], {}

    def bound(env):
        key = (getattr(env.get(x_name), "dtype", None),) + tuple(
            (v.dtype.str, v.shape, v.tobytes()) for v in (np.asarray(env.get(n)) for n in fed))
        b = kept.get(key)
        if b is None:
            if len(kept) >= BOUNDS_KEPT:
                kept.clear()
            b = kept[key] = bind(reader.values(env))
        return b
    return bound


def _engine(node, mode, narrow, x_dtype, w_dtype, reference) -> engines.Engine:
    """The node's accumulation engine (engines.select). ConvInteger (no requantizer) sums
    exactly on every host, as onnxruntime's s8 x u8 conv kernel does; SIMD needs 8-bit
    operands and the exact model with no narrow accumulator."""
    if narrow is not None:
        key = "narrow"
    elif mode == "x86-u8s8-pairs" and (node.op == "matmul" or node.attrs.get("requant")):
        key = mode
    else:
        key = "exact"
    simd = _simd() and (key == "x86-u8s8-pairs" or (mode == "exact" and np.dtype(x_dtype) in _BYTES
                                                      and np.dtype(w_dtype) in _BYTES))
    return engines.select(key, "reference" if reference else "fast", simd)


def _check_weight(node, w: np.ndarray) -> None:
    if w.dtype.kind not in "iu" or w.dtype.itemsize > 4:
        raise ShapeError(f"node '{node.name}': weight '{node.inputs[3]}' must be integers of at most 32 bits, "
                         f"got {w.dtype}")


def _check_zp_range(node, tensor: str, zp: np.ndarray, t) -> None:
    """A zero point must be a value of the integer type of the tensor it belongs to."""
    if t is not None and zp.size and (zp.min() < t.qmin or zp.max() > t.qmax):
        raise QuantParamError(f"node '{node.name}': zero point '{tensor}' ({int(zp.min())}..{int(zp.max())}) "
                              f"is outside the {t} range")


def _check_multiplier(node, a_scale, b_scale, y_scale) -> None:
    """The real multiplier a_scale * b_scale[c] / y_scale must be finite in float32."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        m = (np.float32(a_scale.reshape(-1)[0]) * b_scale.astype(np.float32)) / np.float32(y_scale.reshape(-1)[0])
    if not np.all(np.isfinite(m)):
        raise QuantParamError(f"node '{node.name}': requantization multiplier {node.inputs[1]} * {node.inputs[4]} "
                              f"/ {node.inputs[6]} is not finite in float32")


def _kernel_call(node, fn, *args):
    """Call a kernel wrapper; its ValueError (a shape or parameter the step did not rule out)
    becomes a ShapeError naming the node."""
    try:
        return fn(*args)
    except ValueError as e:
        raise ShapeError(f"node '{node.name}': {e}") from None


def _count_events(node, ctx, events, tap):
    """Record the narrow kernel's overflow events; in `exact` mode (with a tile) any is an error."""
    if tap is not None:
        tap["overflow_events"] = tap.get("overflow_events", 0) + int(events)
    if events and ctx.accumulator.overflow == "exact":
        raise AccumulatorOverflow(f"node '{node.name}': {events} partial sums leave int{ctx.accumulator.bits} "
                                  f"(use --acc-overflow wrap or saturate to simulate it)")


def _finish_accumulator(node, ctx, acc64, layout, tap):
    """Apply the accumulator model to the int64 sums and record per-channel min/max in the tap
    (layout: the (P, C, Q) view of the accumulators), and the accumulators themselves, as the
    requantizer receives them, when the tap holds the key "acc" (the caller asks for them).
    ConvInteger/MatMulInteger get int32. Under the exact model (no tile), a node whose rule is
    rules.FixedRequant "reduced64" (TFLite's 16x8 / int16 kernels, which sum in int64) is
    checked at 64 bits, as its datapath is."""
    model = ctx.accumulator
    if model.overflow == "exact" and not model.tile and model.bits < 64:
        rule = ctx.target.rule(node)
        if isinstance(rule, FixedRequant) and rule.mode == "reduced64":
            model = Accumulator(64)
    acc = finish(acc64, model, node.name)
    if tap is not None:
        a3 = acc.reshape(layout)
        tap["acc_min"] = a3.min(axis=(0, 2)) if a3.size else np.zeros(layout[1], np.int64)
        tap["acc_max"] = a3.max(axis=(0, 2)) if a3.size else np.zeros(layout[1], np.int64)
        if "acc" in tap:
            tap["acc"] = acc
    if not node.attrs.get("requant"):
        return acc.astype(np.int32)
    return acc


# ---------------------------------------------------------------------------------- conv
def _pads(node, h, w, kh, kw, sh, sw, dh, dw):
    a = node.attrs
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        return tuple(auto_pads(auto, (h, w), (kh, kw), (sh, sw), (dh, dw)))
    p = list(a.get("pads", ())) or [0, 0, 0, 0]
    if len(p) == 2:  # 1-D conv lifted to 2-D
        return 0, p[0], 0, p[1]
    return p[0], p[1], p[2], p[3]


def conv_geom(node, x4, w4, one_d: bool) -> ConvGeom:
    a = node.attrs
    st = list(a.get("strides", ())) or ([1] if one_d else [1, 1])
    di = list(a.get("dilations", ())) or ([1] if one_d else [1, 1])
    nsp = 1 if one_d else 2
    p = list(a.get("pads", ()))
    if len(st) != nsp or len(di) != nsp or (p and len(p) != 2 * nsp):
        raise ShapeError(f"node '{node.name}': strides {st}, dilations {di} and pads {p} do not fit a "
                         f"{nsp}-D conv")
    if one_d:
        st, di = [1] + st, [1] + di
    kh, kw = w4.shape[2], w4.shape[3]
    pt, pl, pb, pr = _pads(node, x4.shape[2], x4.shape[3], kh, kw, st[0], st[1], di[0], di[1])
    if one_d and a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        pt = pb = 0
    return ConvGeom(st[0], st[1], pt, pl, pb, pr, di[0], di[1], int(a.get("group", 1)))


def _conv_accumulate(x4, bound: Bound, geom):
    """int64 sums of the conv (N, M, OH, OW) by the node's engine, and its overflow events."""
    n, _, h, w = x4.shape
    oh, ow = conv_out_hw(h, w, bound.w.shape[2], bound.w.shape[3], geom)
    acc = np.empty((n, bound.w.shape[0], oh, ow), np.int64)
    return acc, bound.engine.conv(x4, bound, geom, acc)


def _check_conv_geom(node, x4, w4, g: ConvGeom) -> None:
    """Geometry the conv kernels accept, and an accumulator within the limits, before allocating."""
    n, c, h, wd = x4.shape
    m, cg, kh, kw = w4.shape
    if min(g.stride_h, g.stride_w, g.dil_h, g.dil_w, g.group) < 1 or min(g[2:6]) < 0:
        raise ShapeError(f"node '{node.name}': strides, dilations and group must be >= 1 and pads >= 0, got {g}")
    if cg < 1 or c != g.group * cg or m % g.group:
        raise ShapeError(f"node '{node.name}': input '{node.inputs[0]}' has {c} channels, weight "
                         f"'{node.inputs[3]}' {w4.shape} and group {g.group} do not fit")
    oh, ow = conv_out_hw(h, wd, kh, kw, g)
    if kh < 1 or kw < 1 or oh < 1 or ow < 1:
        raise ShapeError(f"node '{node.name}': kernel {w4.shape[2:]} does not fit input '{node.inputs[0]}' "
                         f"{x4.shape[2:]} with pads {tuple(g[2:6])} and dilations {g.dil_h, g.dil_w}")
    check_shape((n, m, oh, ow), 8, f"node '{node.name}': accumulator of '{node.outputs[0]}'")
    # the SIMD engines hold at least one image's im2col rows (OH*OW, KH*KW*Cg) at a time
    check_shape((oh * ow, kh * kw * cg), 1, f"node '{node.name}': im2col rows of '{node.inputs[0]}'")


def _parameters(node, ctx, bind):
    """(reader, static) of a conv or matmul node, after its target rule is checked: the reader of
    its parameter inputs 1-8, and bind(their values) done once here when they and the weight
    are constants (else None: bound on every run)."""
    require(ctx, node, ctx.target.rule(node), AccRequant, DoubleRequant, FixedRequant, LaneRequant)
    reader = ParamReader(node, ctx, range(1, 9))
    static = bind(reader.values({})) if reader.static and node.inputs[3] in ctx.constants else None
    return reader, static


@step("conv")
def prepare_conv(node, ctx):
    ins = node.inputs
    panels = _weight_panels(node, ctx)

    def bind(vals):
        w = np.asarray(vals[3])
        if w.ndim not in (3, 4):
            raise ShapeError(f"node '{node.name}': weight '{ins[3]}' has rank {w.ndim}; only 1-D and 2-D convs are supported")
        if w.size == 0:
            raise ShapeError(f"node '{node.name}': weight '{ins[3]}' has shape {list(w.shape)}: a conv needs at least "
                             f"one output channel, input channel and kernel tap")
        w4 = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2]) if w.ndim == 3 else w
        return _bind(node, ctx, vals, w.shape[0], np.ascontiguousarray(w4), panels), w.ndim == 3

    reader, static = _parameters(node, ctx, bind)
    bound_of = _bound_of(node, ctx, reader, bind, panels)
    lanes: dict = {}    # _lane_key -> the fused run prepared for it (static weights, no taps)

    def run(env, tap):
        x = env[ins[0]]
        if tap is None and lanes:
            xh = held_nhwc(x)
            lane = lanes.get((x.shape, x.dtype, xh is None, get_num_threads()))
            if lane is not None:
                lane(env, x if xh is None else xh)
                return
        bound, one_d = static if static is not None else bound_of(env)
        if x.ndim != (3 if one_d else 4):
            raise ShapeError(f"node '{node.name}': input '{ins[0]}' has shape {x.shape}, expected rank {3 if one_d else 4}")
        x4 = x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]) if one_d else x
        geom = conv_geom(node, x4, bound.w, one_d)
        _check_conv_geom(node, x4, bound.w, geom)
        fused = bound.fused_requant(ctx, x4.dtype, node.attrs["out_type"].storage) \
            if tap is None and node.attrs.get("requant") else None
        if fused is not None:
            xh = held_nhwc(x)
            lane = _kernel_call(node, _fused_lane, node, ctx, bound, geom, fused, x4, one_d,
                                "nchw" if xh is None else "nhwc")
            if static is not None:
                lanes[(x.shape, x.dtype, xh is None, get_num_threads())] = lane
            lane(env, x if xh is None else xh)
            return
        x4 = np.ascontiguousarray(x4)
        acc, events = _kernel_call(node, _conv_accumulate, x4, bound, geom)
        _count_events(node, ctx, events, tap)
        n, m, oh, ow = acc.shape
        acc = _finish_accumulator(node, ctx, acc, (n, m, oh * ow), tap)
        out_shape = (n, m, ow) if one_d else (n, m, oh, ow)
        if not node.attrs.get("requant"):
            env[node.outputs[0]] = acc.reshape(out_shape)
            return
        out = np.empty((n, m, oh * ow), node.attrs["out_type"].storage)
        bound.requant(acc.reshape(n, m, oh * ow), out)
        env[node.outputs[0]] = out.reshape(out_shape)

    def freeze(env, fixed):
        """The fused lane's call(env) when the last run took one (intsim.frozen), else None."""
        x = env[ins[0]]
        xh = held_nhwc(x)
        lane = _lane_now(run, env, fixed, ins[0], lambda: lanes.get((x.shape, x.dtype, xh is None, get_num_threads())))
        hook = getattr(lane, "freeze", None)
        return hook(env, fixed) if hook is not None else None
    run.freeze = freeze
    return run


# -------------------------------------------------------------------------------- matmul
def _matmul_accumulate(a, bmat, bound: Bound):
    """a (..., M, K) x b (K, N) or (..., K, N) -> (int64 (..., M, N), overflow events), by the
    node's engine: one GEMM over A's rows for a 2-D B, else per broadcast batch entry."""
    if bmat.ndim == 2:
        k = a.shape[-1]
        a2 = np.ascontiguousarray(a.reshape(-1, k))
        acc = np.empty((a2.shape[0], bmat.shape[1]), np.int64)
        events = bound.engine.gemm(a2, bmat, bound, acc)
        return acc.reshape(a.shape[:-1] + (bmat.shape[1],)), events
    batch = np.broadcast_shapes(a.shape[:-2], bmat.shape[:-2])
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:]).reshape((-1,) + a.shape[-2:]))
    b3 = np.ascontiguousarray(np.broadcast_to(bmat, batch + bmat.shape[-2:]).reshape((-1,) + bmat.shape[-2:]))
    acc = np.empty((a3.shape[0], a3.shape[1], b3.shape[2]), np.int64)
    events = bound.engine.batched(a3, b3, bound, acc)
    return acc.reshape(batch + (a.shape[-2], bmat.shape[-1])), events


def _matmul_lane(node, ctx, b: Bound, a):
    """A (M, K) x the static B (K, N) with its requantization in one SIMD pass, when
    Bound.fused_requant proves it exact: the engine's fused 1x1 conv of B over M one-pixel
    channels-last images (A's rows are the GEMM rows as they are), bound once to A's shape and
    the kernel thread count now. None when not fused."""
    dtype = node.attrs["out_type"].storage
    fused = b.fused_requant(ctx, a.dtype, dtype)
    m, k = a.shape
    n = b.w.shape[1]
    _check_matmul_out(node, a, b.w)
    if fused is None or m < 1 or k < 1:
        return None
    conv = b.engine.fused(b, ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1), (m, k, 1, 1), a.dtype, ("nhwc", "nhwc"), dtype,
                          (True,) + fused, "matmul", depthwise=False)
    if conv is None:      # K = N = 1 packs as a depthwise conv: not worth a lane
        return None
    name = node.outputs[0]

    def lane(env, a):
        out = np.empty((m, n), dtype)
        _kernel_call(node, conv, np.ascontiguousarray(a).reshape(m, 1, 1, k), out.reshape(m, 1, 1, n))
        env[name] = out

    rows = getattr(conv, "gemm_rows", None)     # a bound plan's entry for A's rows as they are

    def fed(env):
        """The lane on a graph input A (read from env at each replay) into the output array env
        holds (a frozen run's `fresh_outputs`); conv checks both, as on an ordinary run."""
        if rows is not None:
            _kernel_call(node, rows, env[node.inputs[0]], env[name])
            return
        _kernel_call(node, conv, np.ascontiguousarray(env[node.inputs[0]]).reshape(m, 1, 1, k),
                     env[name].reshape(m, 1, 1, n))
    fed.fresh_outputs = True

    def freeze(env, fixed):
        """call(env) redoing this lane's last run in place (see intsim.frozen): A a C-contiguous
        fixed buffer read as it is, or a graph input (`fed`); None with transA."""
        a = env[node.inputs[0]]
        if node.attrs.get("transA"):
            return None
        if node.inputs[0] not in fixed:
            return fed
        if not a.flags.c_contiguous:
            return None
        call = conv.freeze(a.reshape(m, 1, 1, k), env[name].reshape(m, 1, 1, n))
        return lambda env: _kernel_call(node, call)
    lane.freeze = freeze
    return lane


def _sums_fit(b: Bound, ctx, x_dtype) -> bool:
    """Whether every sum of a MatMul with static 2-D weights provably lies in the accumulator's
    range under the `exact` model (no tile, exact sums), so accumulator.finish's min/max check
    would find nothing: max over n of |bias[n]| + max|x - x_zp| * sum_k |w[k, n] - w_zp[n]|
    <= 2**(bits-1) - 1 (int64, exact). Cached in b.packed per x dtype and x zero point."""
    key = ("sums_fit", np.dtype(x_dtype), b.x_zp)
    if key not in b.packed:
        acc, x_dtype = ctx.accumulator, np.dtype(x_dtype)
        ok = acc.overflow == "exact" and not acc.tile and b.narrow is None and b.mode == "exact" and \
            b.matmul and b.w.ndim == 2 and x_dtype.kind in "iu" and x_dtype.itemsize <= 2
        if ok:
            info = np.iinfo(x_dtype)
            amax = max(abs(int(info.max) - b.x_zp), abs(int(info.min) - b.x_zp))
            w = np.abs(b.w.astype(np.int64) - b.w_zp[None, :]).sum(axis=0)
            ok = int((np.abs(b.bias) + amax * w).max(initial=0)) <= acc.hi
        b.packed[key] = ok
    return b.packed[key]


def _check_matmul_out(node, a, w) -> None:
    try:
        batch = np.broadcast_shapes(a.shape[:-2], w.shape[:-2])
    except ValueError:
        raise ShapeError(f"node '{node.name}': batch shapes of A '{node.inputs[0]}' {a.shape} and "
                         f"B '{node.inputs[3]}' {w.shape} do not broadcast") from None
    check_shape(tuple(batch) + (a.shape[-2], w.shape[-1]), 8, f"node '{node.name}': accumulator of '{node.outputs[0]}'")
    if w.ndim > 2:      # the batched path copies A and B broadcast to the batch (_matmul_accumulate)
        check_shape(tuple(batch) + a.shape[-2:], a.itemsize, f"node '{node.name}': A '{node.inputs[0]}' broadcast")
        check_shape(tuple(batch) + w.shape[-2:], w.itemsize, f"node '{node.name}': B '{node.inputs[3]}' broadcast")


def _act_call(node, ctx, b: Bound, a_dtype, w_dtype):
    """qmatmul_act's bound call for a MatMul of two activations under Bound `b` (bound from one
    run's B: its zero point, bias and requantizer do not depend on B's values), or None when
    that kernel does not compute what the engine path would: both operands and the output
    8-bit, exact sums (no pair saturation, no narrow accumulator), a per-tensor B zero point,
    a bias within int32 and the target's fused float requantization (Requantizer.fused_form)."""
    dtype = np.dtype(node.attrs["out_type"].storage)
    fused = b.requantizer.fused_form() if b.requantizer is not None else None
    if fused is None or b.mode != "exact" or b.narrow is not None or b.reference or \
            any(np.dtype(d) not in _BYTES for d in (a_dtype, w_dtype, dtype)) or \
            b.w_zp.size == 0 or (b.w_zp != b.w_zp[0]).any() or np.abs(b.bias).max(initial=0) >= 2**31:
        return None
    mult, zp, lo, hi = fused
    return qmatmul_act.bind_qlinear_matmul_act(b.x_zp, int(b.w_zp[0]), np.ascontiguousarray(b.bias, np.int32),
                                               np.ascontiguousarray(mult, np.float32), zp, lo, hi, dtype)


def _act_lane(node, ctx, bind):
    """lane(env) -> bool for a requantizing MatMul whose B is computed at run time (attention's
    q x k^T, softmax x v) and whose other parameters are constants: A (..., M, K) x B (..., K,
    N) with equal batch dimensions in one kernels.qmatmul_act call, its parameters bound once
    per operand dtypes and N (never per run). False (nothing done: the engine path runs) when
    the lane does not apply (_act_call), e.g. under taps, another accumulator model or target,
    or a K long enough for a sum to leave int32. None when the node can never take it."""
    ins, acc = node.inputs, ctx.accumulator
    params = ParamReader(node, ctx, (1, 2, 4, 5, 6, 7, 8))
    if ctx.kernels != "fast" or ins[3] in ctx.constants or not node.attrs.get("requant") or \
            node.attrs.get("transA") or node.attrs.get("transB") or acc.overflow != "exact" or acc.tile or \
            acc.bits < 32 or not params.static:
        return None
    calls: dict = {}
    name = node.outputs[0]
    dtype = node.attrs["out_type"].storage

    def lane(env) -> bool:
        a, w = env[ins[0]], env[ins[3]]
        if type(a) is not np.ndarray or type(w) is not np.ndarray or a.ndim < 2 or a.ndim != w.ndim or \
                a.shape[:-2] != w.shape[:-2] or a.shape[-1] != w.shape[-2] or a.size == 0 or w.size == 0:
            return False
        key = (a.dtype, w.dtype, w.shape[-1])
        call = calls.get(key, False)
        if call is False:
            call = calls[key] = _act_call(node, ctx, bind(params.values(env)), a.dtype, w.dtype)
        if call is None:
            return False
        m, k, n = a.shape[-2], a.shape[-1], w.shape[-1]
        out = np.empty(a.shape[:-1] + (n,), dtype)
        try:
            call(np.ascontiguousarray(a).reshape(-1, m, k), np.ascontiguousarray(w).reshape(-1, k, n),
                 out.reshape(-1, m, n))
        except ValueError:      # sums that could leave int32: the engine path (int64) runs
            return False
        env[name] = out
        return True

    def freeze(env, fixed):
        """call(env) of the bound kernel on the recorded A, B and output (C-contiguous fixed
        buffers; the output is the array this lane just stored), recomputing it now; None when
        the lane does not apply to them (intsim.runtime.frozen)."""
        a, w, y = env[ins[0]], env[ins[3]], env.get(name)
        if ins[0] not in fixed or ins[3] not in fixed or any(
                type(v) is not np.ndarray or not v.flags.c_contiguous for v in (a, w, y)):
            return None
        call = calls.get((a.dtype, w.dtype, w.shape[-1]))
        if not call or a.ndim < 2 or a.ndim != w.ndim or a.shape[:-2] != w.shape[:-2] or \
                y.shape != a.shape[:-1] + (w.shape[-1],) or y.dtype != dtype:
            return None
        m, k, n = a.shape[-2], a.shape[-1], w.shape[-1]
        args = (a.reshape(-1, m, k), w.reshape(-1, k, n), y.reshape(-1, m, n))
        call(*args)     # a ValueError leaves the step on its ordinary path (intsim.runtime.frozen)
        return lambda env: call(*args)
    lane.freeze = freeze
    return lane


@step("matmul")
def prepare_matmul(node, ctx):
    ins = node.inputs
    panels = _weight_panels(node, ctx)

    def bind(vals):
        w = np.asarray(vals[3])
        if w.ndim >= 2 and node.attrs.get("transB"):
            w = np.swapaxes(w, -1, -2)
        if w.ndim < 2:
            raise ShapeError(f"node '{node.name}': B '{ins[3]}' must have rank >= 2, got {w.shape}")
        if w.size == 0:
            raise ShapeError(f"node '{node.name}': B '{ins[3]}' has shape {list(w.shape)}: a matmul needs at least "
                             f"one row and one column of weights")
        b = _bind(node, ctx, vals, w.shape[-1], np.ascontiguousarray(w), panels)
        b.matmul = True
        return b

    reader, static = _parameters(node, ctx, bind)
    bound_of = _bound_of(node, ctx, reader, bind, panels)
    lanes: dict = {}    # (A shape, dtype) -> the fused GEMM + requantization (static 2-D weights), or None
    act = _act_lane(node, ctx, bind) if static is None else None

    def run(env, tap):
        if act is not None and tap is None and act(env):
            return
        bound = static if static is not None else bound_of(env)
        a = env[ins[0]]
        if node.attrs.get("transA"):
            a = a.T
        if tap is None and static is not None and bound.w.ndim == 2 and node.attrs.get("requant") and \
                (a.ndim == 2 or (a.ndim > 2 and not node.attrs.get("transA"))):
            key = (a.shape, a.dtype, get_num_threads())    # A (..., M, K) x B (K, N): one GEMM over A's rows
            rows = a.reshape(-1, a.shape[-1])
            if key not in lanes:
                lanes[key] = _kernel_call(node, _matmul_lane, node, ctx, bound, rows) \
                    if a.shape[-1] == bound.w.shape[0] else None
            if lanes[key] is not None:
                lanes[key](env, rows)
                if a.ndim > 2:
                    env[node.outputs[0]] = env[node.outputs[0]].reshape(a.shape[:-1] + (bound.w.shape[1],))
                return
        if a.ndim < 1 or a.shape[-1] != bound.w.shape[-2]:
            raise ShapeError(f"node '{node.name}': A '{ins[0]}' {a.shape} and B '{ins[3]}' {bound.w.shape} do not multiply")
        squeeze = a.ndim == 1
        a2 = a.reshape(1, -1) if squeeze else a
        _check_matmul_out(node, a2, bound.w)
        acc, events = _kernel_call(node, _matmul_accumulate, a2, bound.w, bound)
        _count_events(node, ctx, events, tap)
        nch = acc.shape[-1]
        if tap is None and _sums_fit(bound, ctx, a2.dtype):   # finish would find nothing
            acc = acc if node.attrs.get("requant") else acc.astype(np.int32)
        else:
            acc = _finish_accumulator(node, ctx, acc, (-1, nch, 1), tap)
        shape = acc.shape[1:] if squeeze else acc.shape
        if not node.attrs.get("requant"):
            env[node.outputs[0]] = acc.reshape(shape)
            return
        out = np.empty(acc.shape, node.attrs["out_type"].storage)
        bound.requant(acc.reshape(-1, nch, 1), out.reshape(-1, nch, 1))
        env[node.outputs[0]] = out.reshape(shape)

    def freeze_fed(env, fixed):
        """call(env) for a MatMulInteger whose weights are constants and whose other parameters
        (a dynamically quantized input's zero point) are fed (fixed buffers): per replay its
        Bound for the fed values (bound_of, kept per value), and for each Bound the engine's GEMM
        bound once to the recorded A and int32 output (Engine.bind_gemm), when the exact sums
        provably stay in int32 (_sums_fit: the ordinary run's astype(int32)); else that
        Bound's replay is the ordinary path copied into the output. None where this does not
        apply (intsim.runtime.frozen)."""
        fed = [i for i in ins[1:9] if i and i not in ctx.constants]
        a, y = env.get(ins[0]), env.get(node.outputs[0])
        if panels is None or node.attrs.get("requant") or node.attrs.get("transA") or ins[0] not in fixed or \
                any(i not in fixed for i in fed) or any(type(v) is not np.ndarray or not v.flags.c_contiguous
                                                       for v in (a, y)):
            return None
        b = bound_of(env)
        if b.engine.bind_gemm is None or b.w.ndim != 2 or a.ndim < 2 or a.shape[-1] != b.w.shape[0] or \
                y.dtype != np.int32 or y.shape != a.shape[:-1] + (b.w.shape[1],):
            return None
        a2, y2 = a.reshape(-1, a.shape[-1]), y.reshape(-1, b.w.shape[1])
        calls: dict = {}    # id(Bound) -> (Bound, bound call or None)

        def call(env):
            bb = bound_of(env)
            got = calls.get(id(bb))
            if got is None or got[0] is not bb:
                if len(calls) >= BOUNDS_KEPT:
                    calls.clear()
                got = calls[id(bb)] = (bb, bb.engine.bind_gemm(a2, bb.w, bb, y2)
                                       if _sums_fit(bb, ctx, a2.dtype) else None)
            if got[1] is not None:
                got[1]()
                return
            run(env, None)
            v = env[node.outputs[0]]
            if v.shape != y.shape or v.dtype != y.dtype:
                raise ShapeError(f"node '{node.name}': output {v.dtype} {v.shape} unlike the frozen run's")
            np.copyto(y, v)
            env[node.outputs[0]] = y
        call(env)       # recomputes the recorded output in place (a ValueError: the ordinary path)
        return call

    def freeze(env, fixed):
        """The fused lane's or the activation lane's call(env) when the last run took one, or a
        fed-parameter MatMulInteger's (freeze_fed) (intsim.frozen), else None."""
        if act is not None:
            return act.freeze(env, fixed)
        if static is None:
            return freeze_fed(env, fixed)
        a = env[ins[0]]
        a = a.T if node.attrs.get("transA") else a
        lane = _lane_now(run, env, fixed, ins[0], lambda: lanes.get((a.shape, a.dtype, get_num_threads())))
        return lane.freeze(env, fixed) if lane is not None else None
    run.freeze = freeze
    return run
