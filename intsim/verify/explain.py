"""Why does an integer differ from the reference's? Each mismatching element gets one class:

    tie             the exact real value v = acc * sx * sw[c] / sy (rationals of the model's float32
                    scales) lies exactly on a .5 boundary: two round-half rules disagree
    acc-over-2^24   |acc| > 2^24 and f32(acc) moves v across the .5 boundary (ORT's float requant)
    float-rounding  v lies within the float32 error bound of a .5 boundary; for a float32
                    reference conv/matmul the bound is 2 * ((K+4) u S + u |bias| + 4 u |v|) LSB,
                    S = sum_k |x_k w_k| * sx * sw / sy, u = 2^-24, K products per output
    bias-rounding   the layer's bias is the file's float bias b rounded to int32 at sx*sw[c]
                    (onnxruntime's BiasQuantization, policy "integer"), while the reference adds b
                    itself in float: v_f = v + (b - round(b / (sx*sw)) * sx*sw) / sy, |v_f - v| <=
                    sx*sw / (2 sy), rounds to the reference's code
    saturation      the accumulator saturated: intsim's target accumulation, or onnxruntime's AVX2
                    u8 x s8 kernel (int16 pairs) that a reference may run, differs from the exact
                    sum there; or either value sits at the clamp/type end
    propagated      (whole-model view) an input of the node already differed
    unexplained     none of the above

Classes are tried in the order above (propagated first in the whole-model view). A tie, a
float rounding or a 2^24 rounding can only move a value by one LSB, so those classes need |d| == 1.
The accumulators come from the same prepared steps as the executor: copies of the node with
the requantize stage removed (exact int64 sums), and the node itself run with a tap that asks
for the accumulator its requantizer receives (the target's accumulation model).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from kernels.conv import ConvGeom, conv2d_acc_ref

from ..accumulator import Accumulator
from ..ir import Node
from ..ops import accumulates, out_channel_axis, products_per_output, w_channel_axis
from ..runtime import StepContext
from ..steps import load_all
from ..targets.base import Requantizer, Target

CLASSES = ("tie", "acc-over-2^24", "float-rounding", "bias-rounding", "saturation", "propagated", "unexplained")
U32 = 2.0 ** -24


def acc_node(node: Node) -> Node:
    """The compute node without its requantize stage: its output is the int32 accumulator."""
    return Node(node.op, node.name, node.inputs, node.outputs, {**node.attrs, "requant": False}, node.origin)


def value(name: str, ctx, env):
    if not name:
        return None
    return ctx.constants[name] if name in ctx.constants else env.get(name)




class CaptureTarget(Target):
    """A target that behaves as `inner` and keeps each node's requantizer parameters."""

    def __init__(self, inner: Target):
        self.inner, self.name, self.qdq_fusion = inner, inner.name, inner.qdq_fusion
        self.params: dict = {}

    def requantizer(self, rq, channels: int, node: str) -> Requantizer:
        r = self.inner.requantizer(rq, channels, node)
        self.params[node] = r.params
        return r

    def rule_requantizer(self, rule, rq, channels: int, node) -> Requantizer:
        r = self.inner.rule_requantizer(rule, rq, channels, node)
        self.params[node.name] = r.params
        return r

    def accumulation(self, a_dtype, b_dtype) -> str:
        return self.inner.accumulation(a_dtype, b_dtype)

    def rule(self, node):
        return self.inner.rule(node)

    def bias_rule(self, node):
        return self.inner.bias_rule(node)

    def fused_activation_range(self, node, bounds, qp, t) -> tuple:
        return self.inner.fused_activation_range(node, bounds, qp, t)


class NodeAccumulators:
    """Prepared copies of one compute node: `exact(env)` (exact int64 sums), `target(env)` (the
    accumulator the target's requantizer receives, after the target's accumulation model and
    the accumulator model), `params` (that requantizer's parameters) and `abs_sum(env)` =
    sum_k |x_k - x_zp| * |w_k - w_zp| (int64)."""

    _ABS_W = "__verify_abs_w"

    def __init__(self, node: Node, prog):
        steps = load_all()
        g = prog.graph
        self.node = node
        self.exact_ctx = StepContext(g, prog.target, Accumulator(bits=64, overflow="exact"), accumulation="exact")
        self.capture = CaptureTarget(prog.target)
        self.target_ctx = StepContext(g, self.capture, prog.accumulator)
        bare = acc_node(node)
        self._exact = steps[node.op](bare, self.exact_ctx)
        self._target = steps[node.op](node, self.target_ctx)
        ins = list(bare.inputs)
        ins[2], ins[3], ins[5], ins[8] = "", self._ABS_W, "", ""
        self._abs = steps[node.op](Node(node.op, node.name, ins, node.outputs, bare.attrs, node.origin),
                                   self.exact_ctx)
        self._pairs = steps[node.op](node, StepContext(g, prog.target, Accumulator(overflow="x86-u8s8-pairs")))

    def _call(self, fn, env) -> np.ndarray:
        """The output of a run of `fn`; for the requantize-free copies the int64 accumulators the
        step hands its tap, as the step's int32 output (ConvInteger's type) wraps past int32
        (16x16 products on a 48-bit accumulator)."""
        local, tap = dict(env), {"acc": None}
        fn(local, tap)
        out = local[self.node.outputs[0]]
        return np.asarray(out if tap["acc"] is None else np.reshape(tap["acc"], np.shape(out)), np.int64)

    def _requantizer_input(self, fn, env) -> np.ndarray:
        """The accumulator the requantizer of a run of `fn` receives, shaped as the node's output."""
        local, tap = dict(env), {"acc": None}
        fn(local, tap)
        return np.array(tap["acc"], np.int64).reshape(np.shape(local[self.node.outputs[0]]))

    def exact(self, env) -> np.ndarray:
        return self._call(self._exact, env)

    def target(self, env) -> np.ndarray:
        """The target's accumulator, shaped as the node's output (int64)."""
        if not self.node.attrs.get("requant"):
            return self._call(self._target, env)
        return self._requantizer_input(self._target, env)

    def pairs(self, env):
        """The accumulator of onnxruntime's AVX2 u8 x s8 kernel (int16 pair saturation), or
        None when the operands are not u8 x s8 (then that kernel is exact)."""
        x = value(self.node.inputs[0], self.exact_ctx, env)
        w = value(self.node.inputs[3], self.exact_ctx, env)
        if not self.node.attrs.get("requant") or np.asarray(x).dtype != np.uint8 or np.asarray(w).dtype != np.int8:
            return None
        return self._requantizer_input(self._pairs, env)

    @property
    def params(self) -> dict:
        return self.capture.params.get(self.node.name, {})

    def abs_sum(self, env) -> np.ndarray:
        ins, ctx = self.node.inputs, self.exact_ctx
        x = np.asarray(value(ins[0], ctx, env), np.int64)
        xz = value(ins[2], ctx, env)
        w = np.asarray(value(ins[3], ctx, env), np.int64)
        wz = value(ins[5], ctx, env)
        xa = np.abs(x - (np.int64(np.asarray(xz).reshape(-1)[0]) if xz is not None else 0))
        if wz is not None and np.asarray(wz).size > 1:
            shape = [1] * w.ndim
            shape[w_channel_axis(self.node, w)] = -1
            wz = np.asarray(wz, np.int64).reshape(shape)
        wa = np.abs(w - (np.asarray(wz, np.int64) if wz is not None else 0))
        local = dict(env)
        # the kernels size their intermediates from the operand dtypes: keep them narrow
        local[ins[0]] = xa.astype(np.int32)
        local[self._ABS_W] = wa.astype(np.int32)
        return self._call(self._abs, local)


def _window_sums(xz: np.ndarray, kernel, attrs, out_hw, global_pool: bool):
    """Per output position of a 2-D pool: sum of xz, sum of |xz| and the number of taps inside
    the image, as int64 arrays (N, C, OH, OW) / (1, 1, OH, OW)."""
    n, c, h, w = xz.shape
    if global_pool:
        sh = sw = 1
        pt = pl = 0
    else:
        st = list(attrs.get("strides") or [1, 1])
        pads = list(attrs.get("pads") or [0, 0, 0, 0])
        sh, sw, pt, pl = st[0], st[1], pads[0], pads[1]
    pb = max(0, (out_hw[0] - 1) * sh + kernel[0] - h - pt)
    pr = max(0, (out_hw[1] - 1) * sw + kernel[1] - w - pl)
    ones_w = np.ones((c, 1, kernel[0], kernel[1]), np.int64)
    zeros, geom = np.zeros(c, np.int64), ConvGeom(sh, sw, pt, pl, pb, pr, 1, 1, c)
    res = []
    for src in (xz, np.abs(xz)):
        acc = np.empty((n, c) + tuple(out_hw), np.int64)
        conv2d_acc_ref(src, ones_w, 0, zeros, zeros, geom, acc)
        res.append(acc)
    cnt = np.empty((1, 1) + tuple(out_hw), np.int64)
    conv2d_acc_ref(np.ones((1, 1, h, w), np.int64), ones_w[:1], 0, zeros[:1], zeros[:1],
                   geom._replace(group=1), cnt)
    return res[0], res[1], cnt


def _count(classes: np.ndarray) -> dict:
    return {c: int(np.count_nonzero(classes == i)) for i, c in enumerate(CLASSES) if np.any(classes == i)}


def _exact_tie(num: Fraction) -> bool:
    """num is exactly n + 1/2 for an integer n."""
    return (2 * num).denominator == 1 and (2 * num).numerator % 2 == 1


class Explainer:
    """Classifies the mismatching elements of one node's output (see the module docstring)."""

    def __init__(self, prog):
        self.prog = prog
        self._accs: dict = {}
        self._producers = prog.graph.producers()

    def _accumulators(self, node) -> NodeAccumulators:
        if node.name not in self._accs:
            self._accs[node.name] = NodeAccumulators(node, self.prog)
        return self._accs[node.name]

    def classify(self, node: Node, env: dict, got: np.ndarray, want: np.ndarray) -> dict:
        """env: the node's input values (reference or intsim); got/want: its output codes.
        Returns {class: count} over the elements where got != want."""
        got, want = np.asarray(got, np.int64), np.asarray(want, np.int64)
        mask = got != want
        if not mask.any():
            return {}
        cls = np.full(int(mask.sum()), CLASSES.index("unexplained"), np.int8)
        t = self.prog.graph.tensors.get(node.outputs[0])
        lo, hi = node.attrs.get("lo"), node.attrs.get("hi")
        if t is not None and hasattr(t.dtype, "qmin"):
            lo = t.dtype.qmin if lo is None else lo
            hi = t.dtype.qmax if hi is None else hi
        g, w_ = got[mask], want[mask]
        saturated = np.zeros(g.shape, bool)
        if lo is not None:
            saturated = (g == lo) | (g == hi) | (w_ == lo) | (w_ == hi)
        one = np.abs(g - w_) == 1
        if accumulates(node.op) and node.attrs.get("requant"):
            dist, bound, acc24, acc_sat = self._compute_terms(node, env, mask)
        elif node.op in ("avgpool", "global_avgpool"):
            dist, bound = self._pool_terms(node, env, mask)
            acc24 = np.zeros(g.shape, bool)
            acc_sat = np.zeros(g.shape, bool)
        elif node.op in ("add", "mul", "quantize"):
            dist, bound = self._elementwise_terms(node, env, mask)
            acc24 = np.zeros(g.shape, bool)
            acc_sat = np.zeros(g.shape, bool)
        else:
            dist = None
        if dist is not None:
            tie = one & (dist == 0)
            cls[tie] = CLASSES.index("tie")
            free = ~tie
            hit = free & one & acc24
            cls[hit] = CLASSES.index("acc-over-2^24")
            free &= ~hit
            hit = free & one & (dist <= bound)
            cls[hit] = CLASSES.index("float-rounding")
            free &= ~hit
            if accumulates(node.op) and node.attrs.get("float_bias") is not None:
                hit = free & one & (self._float_bias_codes(node, env, mask, lo, hi) == w_)
                cls[hit] = CLASSES.index("bias-rounding")
                free &= ~hit
            saturated = saturated | acc_sat
            cls[free & saturated] = CLASSES.index("saturation")
        else:
            cls[saturated] = CLASSES.index("saturation")
        return _count(cls)

    # --------------------------------------------------------------------- compute nodes
    def _scales(self, node, env, shape):
        ctx = self.prog._ctx
        ins = node.inputs
        sx = np.float64(np.asarray(value(ins[1], ctx, env), np.float32).reshape(-1)[0])
        sx *= np.float64(np.float32(node.attrs.get("alpha", 1.0)))
        sw = np.asarray(value(ins[4], ctx, env), np.float32).astype(np.float64).reshape(-1)
        sy = np.float64(np.asarray(value(ins[6], ctx, env), np.float32).reshape(-1)[0])
        view = [1] * len(shape)
        if sw.size > 1:
            view[out_channel_axis(node, len(shape))] = -1
        return sx, np.broadcast_to(sw.reshape(view), shape), sy

    def _compute_terms(self, node, env, mask):
        accs = self._accumulators(node)
        acc = accs.exact(env)
        acc_t = accs.target(env)
        acc_p = accs.pairs(env)
        acc_sat = acc_t[mask] != acc[mask]
        if acc_p is not None:
            acc_sat |= acc_p[mask] != acc[mask]
        sx, sw, sy = self._scales(node, env, acc.shape)
        a, swm = acc[mask], sw[mask]
        m64 = sx * swm / sy
        v = a * m64
        dist = np.abs(v - np.floor(v) - 0.5)
        near = np.flatnonzero(dist < 1e-6)
        dist = dist.copy()
        for i in near:
            exact = Fraction(int(a[i])) * Fraction(float(sx)) * Fraction(float(swm[i])) / Fraction(float(sy))
            dist[i] = 0.0 if _exact_tie(exact) else max(dist[i], 1e-300)
        s_abs = accs.abs_sum(env)[mask] * m64
        w = np.asarray(value(node.inputs[3], accs.exact_ctx, env))
        k = products_per_output(node, w)
        bias_q = value(node.inputs[8], accs.exact_ctx, env)
        bias = np.zeros_like(v)
        if bias_q is not None:
            b = np.asarray(bias_q, np.float64).reshape(-1)
            full = np.broadcast_to(b.reshape([-1 if i == out_channel_axis(node, acc.ndim) else 1
                                              for i in range(acc.ndim)]), acc.shape) if b.size > 1 else b[0]
            bias = np.abs(np.broadcast_to(full, acc.shape)[mask]) * m64
        bound = 2.0 * ((k + 4) * U32 * s_abs + U32 * bias + 4 * U32 * np.abs(v))
        big = np.abs(a) > (1 << 24)
        f32_err = np.abs(a.astype(np.float32).astype(np.float64) - a) * m64
        acc24 = big & (dist <= f32_err + bound)
        return dist, bound, acc24, acc_sat

    def _float_bias_codes(self, node, env, mask, lo, hi):
        """The codes at the masked elements had the layer added its float bias b (attr
        "float_bias") in place of the int32 round(b / (sx*sw)): rint(v + (b - q*sx*sw) / sy) + zy."""
        accs = self._accumulators(node)
        acc = accs.exact(env)
        sx, sw, sy = self._scales(node, env, acc.shape)
        axis = out_channel_axis(node, acc.ndim)
        view = [-1 if i == axis else 1 for i in range(acc.ndim)]
        q = np.asarray(value(node.inputs[8], accs.exact_ctx, env), np.float64).reshape(-1)
        b = np.asarray(node.attrs["float_bias"], np.float64).reshape(-1)
        q, b = (np.broadcast_to(t.reshape(view) if t.size > 1 else t[0], acc.shape) for t in (q, b))
        v = (acc * sx * sw + b - q * sx * sw) / sy
        zy = value(node.inputs[7], self.prog._ctx, env)
        zy = int(np.asarray(zy).reshape(-1)[0]) if zy is not None else 0
        return np.clip(np.rint(v[mask]) + zy, lo, hi).astype(np.int64)

    # ------------------------------------------------------------------------ pool nodes
    def _pool_terms(self, node, env, mask):
        """v = sum_window (x - zx) * sx / (count * sy), from exact integer window sums (a
        depthwise all-ones convolution, padded taps contributing 0)."""
        ctx, a = self.prog._ctx, node.attrs
        vals = [value(n, ctx, env) for n in node.inputs]
        x = np.asarray(vals[0], np.int64)
        if a.get("channels_last"):
            x = np.moveaxis(x, -1, 1)
        sx = float(np.asarray(vals[1], np.float32).reshape(-1)[0])
        zx = int(np.asarray(vals[2]).reshape(-1)[0]) if vals[2] is not None else 0
        sy = float(np.asarray(vals[3], np.float32).reshape(-1)[0])
        if x.ndim != 4 or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", ""):
            return None, None
        out_hw = mask.shape[1:3] if a.get("channels_last") else mask.shape[2:4]
        kernel = list(a.get("kernel_shape") or x.shape[2:]) if node.op == "avgpool" else list(x.shape[2:])
        total, tabs, count = _window_sums(x - zx, kernel, a, out_hw, node.op == "global_avgpool")
        if node.op == "avgpool" and a.get("count_include_pad"):
            count = np.full(count.shape, int(np.prod(kernel)), np.int64)
        if a.get("channels_last"):
            total, tabs, count = (np.moveaxis(t, 1, -1) for t in (total, tabs, count))
        t, ta, c = total[mask], tabs[mask], np.broadcast_to(count, total.shape)[mask]
        v = t * sx / (c * sy)
        exact = [Fraction(int(p)) * Fraction(sx) / (Fraction(int(q)) * Fraction(sy)) for p, q in zip(t, c)]
        k = int(np.prod(kernel))
        bound = 2.0 * ((k + 4) * U32 * ta * sx / (c * sy) + 4 * U32 * np.abs(v))
        dist = np.array([float(abs(e - (e.numerator // e.denominator) - Fraction(1, 2))) for e in exact])
        return dist.reshape(v.shape), bound

    def _float_sum_error(self, node, env, mask):
        """For a quantize whose float input is an integer accumulation dequantized at
        f32(sx*sw[c]) [+ a float bias] [-> Relu/Clip] (a QONNX conv/Gemm with a float bias, read
        as qonnx's executor computes it): a float32 reference computes that sum in float, off
        the exact value by at most (K+4) u S + 2 u |bias| + 2 u |x|, S = sum_k |x_k w_k| sx sw[c]
        (in the quantize input's units), at the masked elements; None for any other input."""
        g = self.prog.graph
        p, bias = self._producers.get(node.inputs[0]), None
        while p is not None and p.op == "onnx" and p.attrs.get("op_type") in ("Relu", "Clip", "Add"):
            if p.attrs["op_type"] == "Add":
                consts = [i for i in p.inputs[1:] + p.inputs[:1] if i in g.constants]
                if not consts:
                    return None
                bias = np.asarray(g.constants[consts[0]], np.float64)
                data = [i for i in p.inputs if i not in g.constants]
            else:
                data = p.inputs[:1]
            p = self._producers.get(data[0]) if data else None
        if p is None or p.op != "dequantize" or p.inputs[0] not in self._producers:
            return None
        acc = self._producers[p.inputs[0]]
        if not accumulates(acc.op) or acc.attrs.get("requant"):
            return None
        try:
            s_abs = self._accumulators(acc).abs_sum(env).astype(np.float64)
        except (KeyError, TypeError, ValueError):      # an isolated view without the layer's inputs
            return None
        scale = np.asarray(g.constants[p.inputs[1]], np.float64)
        if scale.size > 1:
            view = [1] * s_abs.ndim
            view[p.attrs["axis"]] = -1
            scale = scale.reshape(view)
        s_abs = np.broadcast_to(s_abs * scale, s_abs.shape)
        k = products_per_output(acc, np.asarray(g.constants[acc.inputs[3]]))
        b = np.abs(np.broadcast_to(bias, s_abs.shape)) if bias is not None else 0.0
        x = np.abs(np.asarray(value(node.inputs[0], self._accumulators(acc).exact_ctx, env), np.float64))
        return ((k + 4) * U32 * s_abs + 2 * U32 * b + 2 * U32 * x)[mask]

    # ------------------------------------------------------------------ elementwise nodes
    def _elementwise_terms(self, node, env, mask):
        ctx = self.prog._ctx
        vals = [value(n, ctx, env) for n in node.inputs]
        f = lambda i: np.float64(np.asarray(vals[i], np.float32).reshape(-1)[0])  # noqa: E731
        z = lambda i: np.int64(np.asarray(vals[i]).reshape(-1)[0]) if vals[i] is not None else np.int64(0)  # noqa: E731
        if node.op == "quantize":
            x = np.asarray(vals[0], np.float32)
            s = np.asarray(vals[1], np.float32)
            if s.size != 1:
                return None, None
            xs = x[mask].astype(np.float64)
            v = xs / f(1)
            terms = [(Fraction(float(a)), Fraction(float(f(1)))) for a in xs]
            exact = [a / b for a, b in terms]
            bound = 2.0 * 2 * U32 * np.abs(v)
            upstream = self._float_sum_error(node, env, mask)
            if upstream is not None:
                bound = bound + 2.0 * upstream / f(1)
        else:
            a, b = np.broadcast_arrays(np.asarray(vals[0], np.int64) - z(2), np.asarray(vals[3], np.int64) - z(5))
            a, b = a[mask], b[mask]
            sa, sb, sc = f(1), f(4), f(6)
            if node.op == "add":
                v = (sa * a + sb * b) / sc
                exact = [(Fraction(float(sa)) * int(p) + Fraction(float(sb)) * int(q)) / Fraction(float(sc))
                         for p, q in zip(a, b)]
                bound = 2.0 * (4 * U32 * (np.abs(sa * a) + np.abs(sb * b)) / sc + 4 * U32 * np.abs(v))
            else:
                v = sa * sb * a * b / sc
                exact = [Fraction(float(sa)) * Fraction(float(sb)) * int(p) * int(q) / Fraction(float(sc))
                         for p, q in zip(a, b)]
                bound = 2.0 * 4 * U32 * np.abs(v)
        dist = np.array([float(abs(e - (e.numerator // e.denominator) - Fraction(1, 2))) for e in exact])
        return dist.reshape(v.shape), bound
