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

from types import MappingProxyType

import numpy as np

from kernels.fixedpoint import quantize_multiplier, requant_fixedpoint, requant_fixedpoint_ref
from kernels.requant import requant_double_rhaz, requant_double_rhaz_ref

from ..errors import QuantParamError
from ..ir import Requant
from .base import Requantizer, Target
from .ort import OrtTarget
from .rules import (AccRequant, DoubleRequant, FoldedMean, QuantizeRound, RawAverage, SameQuant,
                    TargetRefusal, TfliteAdd, TfliteTable, XnnpackAdd, XnnpackMul)


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


class FixedPointRequantizer(Requantizer):
    def apply(self, acc, out):
        p = self.params
        requant_fixedpoint(acc, p["multiplier"], p["shift"], p["zero_point"], p["lo"], p["hi"],
                           p["mode"], out)

    def apply_reference(self, acc, out):
        p = self.params
        requant_fixedpoint_ref(acc, p["multiplier"], p["shift"], p["zero_point"], p["lo"], p["hi"],
                               p["mode"], out)


class DoubleRequantizer(Requantizer):
    """rules.DoubleRequant: clamp(round_RHAZ(double(acc) * real[c]) + zp, lo, hi), real[c] =
    double(sx) * double(sw[c]) / double(sy) (kernels.requant.requant_double_rhaz)."""

    def apply(self, acc, out):
        p = self.params
        requant_double_rhaz(acc, p["real_multiplier"], p["zero_point"], p["lo"], p["hi"], out)

    def apply_reference(self, acc, out):
        p = self.params
        requant_double_rhaz_ref(acc, p["real_multiplier"], p["zero_point"], p["lo"], p["hi"], out)


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
        TANH (IR lut, rules.TfliteTable)."""
        return MappingProxyType({
            "conv": AccRequant(), "matmul": AccRequant(), "mul": AccRequant(), "global_avgpool": FoldedMean(self.mode),
            "add": TfliteAdd(self.mode), "avgpool": RawAverage(), "concat": SameQuant(),
            "quantize": QuantizeRound("rhaz"), "lut": TfliteTable(self.mode)})

    def rule_requantizer(self, rule, rq: Requant, channels: int, node) -> Requantizer:
        if not isinstance(rule, DoubleRequant):
            return super().rule_requantizer(rule, rq, channels, node)
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        return DoubleRequantizer(self.name, {"real_multiplier": real, "zero_point": int(rq.out_zp),
                                             "lo": int(rq.lo), "hi": int(rq.hi)})

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        m0, shift = quantize_multiplier(real, single_rounding=self.mode == "single")
        if np.any(shift > 30):
            big = real[shift > 30][:3].tolist()
            raise QuantParamError(f"tensor '{rq.out_name}' (node '{node}'): requant multiplier {big} "
                                  f">= 2**30 is outside the {self.name} shift range -31..30")
        return FixedPointRequantizer(self.name, {
            "real_multiplier": real, "multiplier": m0, "shift": shift, "mode": self.mode,
            "zero_point": int(rq.out_zp), "lo": int(rq.lo), "hi": int(rq.hi)})


class TfliteTarget(FixedPointTarget):
    """TFLite's reference kernels (the interpreter's BUILTIN_REF path, measured with
    ai-edge-litert 2.3): as FixedPointTarget, except FULLY_CONNECTED (IR matmul), which the
    interpreter's reference kernel requantizes in float64 rounding half away from zero
    (rules.DoubleRequant), per tensor and per channel."""
    name = "tflite"
    mode = "double"

    @property
    def rules(self):
        return MappingProxyType({**super().rules, "matmul": DoubleRequant()})


class TfliteBuiltinTarget(FixedPointTarget):
    """TFLite's optimized CPU kernels (the interpreter's BUILTIN_WITHOUT_DEFAULT_DELEGATES
    path, measured with ai-edge-litert 2.3, layer-isolated with hypothesis-drawn parameters):
    CONV_2D and FULLY_CONNECTED requantize with a q31 high multiply then a round-half-up shift
    (kernels.fixedpoint mode "builtin": optimized_integer_ops' cpu_backend_gemm/ruy output
    stage); AVERAGE_POOL_2D, CONCATENATION and the int8 activations (rules.TfliteTable: ReluX's
    MultiplyByQuantizedMultiplier double-rounds here too) compute as the reference kernels. Refused by name
    (measured to differ, not modelled yet): DEPTHWISE_CONV_2D (its rounding depends on the
    channel count: SIMD lanes), ADD, MUL, MEAN, QUANTIZE. DEQUANTIZE (float output, no rule)
    differs from the optimized kernel by up to one float32 ulp."""
    name = "tflite-builtin"
    mode = "builtin"

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "avgpool": RawAverage(),
                                 "concat": SameQuant(), "lut": TfliteTable("double")})

    def rule(self, node):
        if node.op == "conv" and (int(node.attrs.get("group", 1)) > 1 or node.origin.startswith("DEPTHWISE_CONV_2D")):
            raise TargetRefusal(self.name, node, "the optimized depthwise kernels round per SIMD lane group, "
                                                 "not modelled yet")
        return super().rule(node)


class TfliteXnnpackTarget(OrtTarget):
    """The interpreter's default path (XNNPACK delegate, OpResolverType.AUTO; measured with
    ai-edge-litert 2.3, layer-isolated with hypothesis-drawn parameters): XNNPACK's qs8 "fp32"
    requantization (xnn_qs8_requantize_fp32 / the gemm microkernels' fp32 output stage:
    f32(acc) * f32(f32(sx * sw[c]) / sy), rounded half to even, + zy, clamped) is onnxruntime's
    float requantization, so CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED use the `ort`
    requantizer; ADD / SUB and MUL follow XNNPACK's qs8 binary kernels (rules.XnnpackAdd: integer
    multipliers and one shift, ties rounded up; rules.XnnpackMul: float scale, RNE, + zy after
    the rounding), each refused where the delegate leaves the node to the builtin kernels;
    AVERAGE_POOL_2D averages the raw codes as TFLite's reference kernel (RawAverage);
    CONCATENATION moves codes (SameQuant); RELU / RELU6 / RELU_N1_TO_1 / LOGISTIC / TANH /
    HARD_SWISH int8 equal the reference kernels' tables (rules.TfliteTable); QUANTIZE multiplies
    by f32(1 / scale) and rounds half to even (QuantizeRound "rne-recip"). Refused by name:
    LEAKY_RELU (measured to differ), MEAN (measured to differ from
    onnxruntime's float formula at ties, not modelled), and everything not measured. XNNPACK
    itself refuses requantization scales >= 256 (the interpreter fails to prepare)."""
    name = "tflite-xnnpack"

    def __init__(self, name: str | None = None):
        super().__init__(name or self.name, saturating_u8s8=False)

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "add": XnnpackAdd(), "mul": XnnpackMul(),
                                 "avgpool": RawAverage(), "concat": SameQuant(), "lut": TfliteTable("double"),
                                 "quantize": QuantizeRound("rne-recip")})

    def rule(self, node):
        if node.op == "lut" and node.attrs.get("kind") == "leaky_relu":
            raise TargetRefusal(self.name, node, "XNNPACK's LEAKY_RELU was measured to differ from TFLite's "
                                                 "reference kernel, not modelled yet")
        return super().rule(node)
