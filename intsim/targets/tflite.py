"""Targets `tflite`, `tflite-single`, `cmsis-nn`: q31 fixed-point requantization (DESIGN §3).

Prepare (once per node, float64 as TFLite's QuantizeMultiplier does):

    real[c]        = double(a_scale) * double(b_scale[c]) / double(out_scale)
    m0[c], shift[c] = QuantizeMultiplier(real[c])   (frexp, RHAZ to q31, flush below 2**-31;
                                                     `tflite-single` caps shift at 30)

Run (int32 as the C++ kernels, see kernels/fixedpoint.py for every integer rule):

    out = clamp(wrap32(MultiplyByQuantizedMultiplier(acc, m0[c], shift[c]) + out_zp), lo, hi)

    tflite         double rounding: SRDHM (RHU, INT32_MIN**2 saturates) then RDBPOT (RHAZ)
    tflite-single  (acc*m0 + 2**(30-shift)) >> (31-shift), one RHU in int64
    cmsis-nn       arm_nn_requantize default: as tflite with the non-saturating doubling
                   high multiply. Since m0 >= 0 always, it equals `tflite` on every input a
                   prepared node can produce; the two differ only for m0 == INT32_MIN.

A multiplier >= 2**30 (shift > 30) cannot be applied by the double-rounding path and raises
QuantParamError naming the output tensor.
"""
from __future__ import annotations

from functools import partial

from types import MappingProxyType

import numpy as np

from kernels.fixedpoint import quantize_multiplier, requant_fixedpoint, requant_fixedpoint_ref
from kernels.requant import requant_double_rhaz, requant_double_rhaz_ref

from ..errors import QuantParamError
from ..ir import Requant
from .activation import xnnpack_range
from .base import Requantizer, Target
from .ort import OrtTarget
from .rules import (AccRequant, DoubleRequant, FixedRequant, FoldedMean, QuantizeRound, RawAverage, SameQuant,
                    TargetRefusal, TfliteAdd, TflitePrelu, TfliteResize, TfliteSoftmax, TfliteTable, XnnpackAdd,
                    XnnpackMul)


def real_multiplier(rq: Requant, channels: int) -> np.ndarray:
    """float64 (C,): double(a_scale) * double(b_scale[c]) / (double(out_scale) * divisor)."""
    a = np.asarray(rq.a_scale, np.float32).astype(np.float64).reshape(-1)
    b = np.asarray(rq.b_scale, np.float32).astype(np.float64).reshape(-1)
    o = np.asarray(rq.out_scale, np.float32).astype(np.float64).reshape(-1)
    real = a * b / (o * np.float64(rq.divisor))
    if real.size == 1:
        return np.full(channels, real[0], np.float64)
    if real.size != channels:
        raise QuantParamError(f"tensor '{rq.out_name}': {real.size} per-channel scales for {channels} channels")
    return np.ascontiguousarray(real)


def check_real(rq: Requant, real: np.ndarray) -> None:
    if not np.all(np.isfinite(real)) or np.any(real <= 0):
        bad = real[~(np.isfinite(real) & (real > 0))][:3].tolist()
        raise QuantParamError(f"tensor '{rq.out_name}': requant multiplier must be finite and > 0, got {bad}")


def batch_matmul(node) -> bool:
    """An IR matmul marked attr batch_matmul: TFLite's BATCH_MATMUL (activations x activations,
    read from a .tflite or fused from tf2onnx's DQ -> MatMul -> Q, passes/fuse_qdq.py): every kernel
    path requantizes it by MultiplyByQuantizedMultiplier, double rounding (batch_matmul.cc:
    GetQuantizedConvolutionMultipler, reference_ops::BatchMatMul / the optimized and XNNPACK
    paths measured equal), unlike FULLY_CONNECTED."""
    return node.op == "matmul" and bool(node.attrs.get("batch_matmul"))


def rule_16x8(node):
    """The rule of a 16x8 CONV_2D / DEPTHWISE_CONV_2D (IR conv) or FULLY_CONNECTED (IR matmul)
    with a 16-bit output, as every TFLite kernel path computes it (measured; XNNPACK does not
    take int16): conv sums in int64 and requantizes with MultiplyByQuantizedMultiplier's int64
    overload and its reduced 16-bit multiplier (reference_integer_ops::ConvPerChannel /
    DepthwiseConvPerChannel for int16, rules.FixedRequant "reduced64"); FULLY_CONNECTED
    requantizes in float64, half away from zero (rules.DoubleRequant). None for any other node."""
    t = node.attrs.get("out_type")
    if node.op not in ("conv", "matmul") or getattr(t, "bits", 8) != 16 or batch_matmul(node):
        return None
    return FixedRequant("reduced64") if node.op == "conv" else DoubleRequant()


def rule_int16(node):
    """The rule of a 16-bit ADD / SUB (IR add), MUL or MEAN (IR global_avgpool) as all three
    kernel paths compute it (measured equal to the reference kernels: XNNPACK does not take
    int16 and the optimized kernels keep the reference arithmetic for it): TfliteAdd and
    FoldedMean in mode "double", MUL's product requantized by MultiplyByQuantizedMultiplier
    (rules.FixedRequant "double"). None for any other node."""
    t = node.attrs.get("out_type")
    if getattr(t, "bits", 8) != 16:
        return None
    return {"add": TfliteAdd("double"), "mul": FixedRequant("double"),
            "global_avgpool": FoldedMean("double")}.get(node.op)


def fixed_rule_requantizer(name: str, rule, rq: Requant, channels: int, node):
    """The requantizer rules.FixedRequant or DoubleRequant names (None for another rule)."""
    if isinstance(rule, FixedRequant):
        return FixedPointTarget(name, rule.mode).fixed_requantizer(rq, channels, node.name, rule.mode)
    if isinstance(rule, DoubleRequant):
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        return DoubleRequantizer(name, {"real_multiplier": real, "zero_point": int(rq.out_zp),
                                        "lo": int(rq.lo), "hi": int(rq.hi)})
    return None


class FixedPointRequantizer(Requantizer):
    kernel, twin = staticmethod(requant_fixedpoint), staticmethod(requant_fixedpoint_ref)
    arg_names = ("multiplier", "shift", "zero_point", "lo", "hi", "mode")


class DoubleRequantizer(Requantizer):
    """rules.DoubleRequant: clamp(int32(round_RHAZ(double(acc) * real[c])) + zp, lo, hi), real[c] =
    double(sx) * double(sw[c]) / double(sy) (kernels.requant.requant_double_rhaz, int32_cast:
    the C++ int32_t conversion and addition)."""
    kernel = staticmethod(partial(requant_double_rhaz, int32_cast=True))
    twin = staticmethod(partial(requant_double_rhaz_ref, int32_cast=True))
    arg_names = ("real_multiplier", "zero_point", "lo", "hi")


class FixedPointTarget(Target):
    """The q31 targets: `tflite-single` (mode "single") and `cmsis-nn` (mode "cmsis") are
    instances (targets.registry); `tflite` and `tflite-builtin` subclass it."""

    name = "tflite"
    mode = "double"

    def __init__(self, name: str | None = None, mode: str | None = None):
        self.name, self.mode = name or self.name, mode or self.mode

    @property
    def rules(self):
        """TFLite's int8/int16 builtin ops (reference kernels, as TFLM and CMSIS-NN compute them):
        CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED and MUL (MultiplyByQuantizedMultiplier of
        the int32 sum or product), MEAN (MultiplyByQuantizedMultiplier of the zero-point-free
        sum by sx/sy with 1/n folded into the multiplier in integers, as TFLite's and TFLM's
        shared reference_ops::QuantizedMeanOrSum does), ADD (fixed point), AVERAGE_POOL_2D (raw codes, half away from
        zero), CONCATENATION (equal quantization only), Quantize (round(x / scale) half away
        from zero), the int8 activations RELU / RELU6 / RELU_N1_TO_1 / LEAKY_RELU / LOGISTIC /
        TANH (IR lut, rules.TfliteTable), PRELU (two q31 multipliers, rules.TflitePrelu),
        TRANSPOSE_CONV (the scattered int32 sum requantized as CONV_2D)."""
        return MappingProxyType({
            "conv": AccRequant(), "matmul": AccRequant(), "mul": AccRequant(), "global_avgpool": FoldedMean(self.mode),
            "add": TfliteAdd(self.mode), "avgpool": RawAverage(), "concat": SameQuant(),
            "quantize": QuantizeRound("rhaz"), "lut": TfliteTable(self.mode), "prelu": TflitePrelu(self.mode),
            "transpose_conv": AccRequant()})

    def rule(self, node):
        """16x8 conv / FC: rule_16x8 under mode "double" (TFLite's reference kernels, as TFLM);
        refused by name under the other modes (not modelled)."""
        r16 = rule_16x8(node)
        if r16 is None:
            return super().rule(node)
        if self.mode != "double":
            raise TargetRefusal(self.name, node, "16x8 (int16 activations) is not modelled for this target")
        return r16

    def rule_requantizer(self, rule, rq: Requant, channels: int, node) -> Requantizer:
        r = fixed_rule_requantizer(self.name, rule, rq, channels, node)
        return r if r is not None else super().rule_requantizer(rule, rq, channels, node)

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        return self.fixed_requantizer(rq, channels, node, self.mode)

    def fixed_requantizer(self, rq: Requant, channels: int, node: str, mode: str) -> Requantizer:
        """MultiplyByQuantizedMultiplier requantization in `mode` (module doc)."""
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        m0, shift = quantize_multiplier(real, single_rounding=mode == "single")
        if mode == "reduced64" and np.any(shift > 14):
            big = real[shift > 14][:3].tolist()
            raise QuantParamError(f"tensor '{rq.out_name}' (node '{node}'): requant multiplier {big} >= 2**14 is "
                                  f"outside TFLite's 16x8 arithmetic (shift <= 14)")
        if np.any(shift > 30):
            big = real[shift > 30][:3].tolist()
            raise QuantParamError(f"tensor '{rq.out_name}' (node '{node}'): requant multiplier {big} "
                                  f">= 2**30 is outside the {self.name} shift range -31..30")
        return FixedPointRequantizer(self.name, {
            "real_multiplier": real, "multiplier": m0, "shift": shift, "mode": mode,
            "zero_point": int(rq.out_zp), "lo": int(rq.lo), "hi": int(rq.hi)})


class TfliteTarget(FixedPointTarget):
    """TFLite's reference kernels (the interpreter's BUILTIN_REF path, measured with
    ai-edge-litert 2.3): as FixedPointTarget, except FULLY_CONNECTED (IR matmul), which the
    interpreter's reference kernel requantizes in float64 rounding half away from zero
    (rules.DoubleRequant), per tensor and per channel (BATCH_MATMUL: MultiplyByQuantizedMultiplier,
    `batch_matmul`); and, measured on this path, int8 SOFTMAX
    through the optimized kernel's float32 table (rules.TfliteSoftmax) and RESIZE_BILINEAR in
    10-bit fixed point (rules.TfliteResize). On .onnx files: QDQ fusion policy "tflite"
    (passes/qdq_policy.py), as the other two kernel paths' targets."""
    name = "tflite"
    mode = "double"
    qdq_fusion = "tflite"

    @property
    def rules(self):
        return MappingProxyType({**super().rules, "matmul": DoubleRequant(), "softmax": TfliteSoftmax(),
                                 "resize_bilinear": TfliteResize()})

    def rule(self, node):
        return FixedRequant("double") if batch_matmul(node) else super().rule(node)


class TfliteBuiltinTarget(FixedPointTarget):
    """TFLite's optimized CPU kernels (the interpreter's BUILTIN_WITHOUT_DEFAULT_DELEGATES
    path, measured with ai-edge-litert 2.3, layer-isolated with hypothesis-drawn parameters):
    CONV_2D and FULLY_CONNECTED requantize with a q31 high multiply then a round-half-up shift
    (kernels.fixedpoint mode "builtin": optimized_integer_ops' cpu_backend_gemm/ruy output
    stage); AVERAGE_POOL_2D, CONCATENATION, the int8 activations (rules.TfliteTable: ReluX's
    MultiplyByQuantizedMultiplier double-rounds here too), PRELU, SOFTMAX and RESIZE_BILINEAR
    compute as the reference kernels; TRANSPOSE_CONV and BATCH_MATMUL double-round as the
    reference kernels (rules.FixedRequant "double", measured); int8 ADD and SUB equal the
    reference fixed point (TfliteAdd "double", measured with broadcasting). Refused by name
    (measured to differ, not modelled yet): DEPTHWISE_CONV_2D (its rounding depends on the
    channel count: SIMD lanes), int8 MUL (outputs off by 255: results wrap, as a vector path
    narrowing to int16 would), int8 MEAN (optimized_ops::Mean's float32-derived bias formula
    matched except at ties), QUANTIZE (x * f32(1/scale) rounded to even matched except at a
    tie of a one-element tensor). DEQUANTIZE (float output,
    no rule) differs from the optimized kernel by up to one float32 ulp."""
    name = "tflite-builtin"
    mode = "builtin"
    qdq_fusion = "tflite"

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "avgpool": RawAverage(),
                                 "concat": SameQuant(), "lut": TfliteTable("double"), "prelu": TflitePrelu("double"),
                                 "add": TfliteAdd("double", narrow16=True),
                                 "softmax": TfliteSoftmax(), "resize_bilinear": TfliteResize(),
                                 "transpose_conv": FixedRequant("double")})

    def rule(self, node):
        if batch_matmul(node):
            return FixedRequant("double")
        for special in (rule_16x8(node), rule_int16(node)):
            if special is not None:
                return special
        if node.op == "conv" and (int(node.attrs.get("group", 1)) > 1 or node.origin.startswith("DEPTHWISE_CONV_2D")):
            raise TargetRefusal(self.name, node, "the optimized depthwise kernels round per SIMD lane group, "
                                                 "not modelled yet")
        return super().rule(node)


class TfliteXnnpackTarget(OrtTarget):
    """The interpreter's default path (XNNPACK delegate, OpResolverType.AUTO; measured with
    ai-edge-litert 2.3, layer-isolated with hypothesis-drawn parameters): XNNPACK's qs8 "fp32"
    requantization (xnn_qs8_requantize_fp32 / the gemm microkernels' fp32 output stage:
    f32(acc) * f32(f32(sx * sw[c]) / sy), rounded half to even, + zy, clamped) is onnxruntime's
    float requantization, so CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV use the `ort`
    requantizer (a SAME TRANSPOSE_CONV whose kernel is smaller than its stride has a negative
    padding XNNPACK does not take: the interpreter runs its builtin kernel, which double-rounds,
    rules.FixedRequant "double"; measured; so does a BATCH_MATMUL whose right operand has a
    nonzero zero point, which XNNPACK does not take either: attr symmetric_b); ADD / SUB and MUL
    follow XNNPACK's qs8 binary kernels (rules.XnnpackAdd: integer multipliers and one shift,
    ties rounded up; rules.XnnpackMul: float scale, RNE, + zy after the rounding), each refused
    where the delegate leaves the node to the builtin kernels;
    AVERAGE_POOL_2D averages the raw codes as TFLite's reference kernel (RawAverage);
    CONCATENATION moves codes (SameQuant); RELU / RELU6 / RELU_N1_TO_1 / LOGISTIC / TANH /
    HARD_SWISH int8 equal the reference kernels' tables (rules.TfliteTable); PRELU and int8
    SOFTMAX equal the builtin kernels (rules.TflitePrelu, TfliteSoftmax; measured);
    RESIZE_BILINEAR is XNNPACK's 11-bit interpolation (TfliteResize "xnnpack"); QUANTIZE multiplies
    by f32(1 / scale) and rounds half to even (QuantizeRound "rne-recip"). Refused by name:
    LEAKY_RELU (measured to differ), MEAN (measured to differ from
    onnxruntime's float formula at ties, not modelled), and everything not measured. XNNPACK
    itself refuses requantization scales >= 256 (the interpreter fails to prepare)."""
    name = "tflite-xnnpack"
    qdq_fusion = "tflite"

    def __init__(self, name: str | None = None):
        super().__init__(name or self.name, saturating_u8s8=False)

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "add": XnnpackAdd(), "mul": XnnpackMul(),
                                 "avgpool": RawAverage(), "concat": SameQuant(), "lut": TfliteTable("double"),
                                 "quantize": QuantizeRound("rne-recip"), "prelu": TflitePrelu("double"),
                                 "softmax": TfliteSoftmax(), "transpose_conv": AccRequant(),
                                 "resize_bilinear": TfliteResize("xnnpack")})

    def rule_requantizer(self, rule, rq: Requant, channels: int, node) -> Requantizer:
        r = fixed_rule_requantizer(self.name, rule, rq, channels, node)
        return r if r is not None else super().rule_requantizer(rule, rq, channels, node)

    def fused_activation_range(self, node, bounds, qp, t) -> tuple:
        """XNNPACK quantizes the float bounds the delegate passes (ConvertActivationToOutputRange)
        itself, xnn_qs8_quantize / xnn_qu8_quantize (activation.xnnpack_range), for the nodes it
        computes with their fused activation: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED,
        TRANSPOSE_CONV (rules.AccRequant), ADD / SUB / MUL (XnnpackAdd, XnnpackMul). A node left
        to the builtin kernels (a FixedRequant, DoubleRequant or TfliteAdd rule, or refused), int8
        AVERAGE_POOL_2D (RawAverage: the reference kernel's clamp, measured at ties) and the
        standalone activations (TfliteTable) keep TFLite's CalculateActivationRangeQuantized."""
        try:
            rule = self.rule(node)
        except TargetRefusal:
            rule = None
        if isinstance(rule, (AccRequant, XnnpackAdd, XnnpackMul)):
            return xnnpack_range(bounds, qp, t)
        return super().fused_activation_range(node, bounds, qp, t)

    def rule(self, node):
        for special in (rule_16x8(node), rule_int16(node)):
            if special is not None:
                return special
        if node.op == "quantize" and getattr(node.attrs.get("out_type"), "bits", 8) == 16:
            raise TargetRefusal(self.name, node, "int16 QUANTIZE runs on the builtin kernel, measured to differ "
                                                 "from the reference's rounding, not modelled")
        if (batch_matmul(node) and not node.attrs.get("symmetric_b")) or \
                (node.op == "transpose_conv" and node.attrs.get("pad_clamped")):
            return FixedRequant("double")
        if node.op == "lut" and node.attrs.get("kind") == "leaky_relu":
            raise TargetRefusal(self.name, node, "XNNPACK's LEAKY_RELU was measured to differ from TFLite's "
                                                 "reference kernel, not modelled yet")
        return super().rule(node)
