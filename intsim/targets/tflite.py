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
from kernels.xnnpack_binary import add_delegated, mul_delegated

from ..errors import QuantParamError
from ..ir import Node, Requant
from .activation import xnnpack_range
from .base import Requantizer, Target
from .ort import OrtTarget
from .rules import (AccRequant, DoubleRequant, FixedRequant, FoldedMean, FoldedSum, LaneRequant, OptimizedMean, QuantizeRound,
                    RawAverage, SameQuant, TargetRefusal, TfliteAdd, TfliteMul, TflitePrelu, TfliteRequantize, TfliteResize,
                    TfliteSoftmax, TfliteSum, TfliteTable, XnnpackAdd, XnnpackLeakyRelu, XnnpackMean, XnnpackMul,
                    XnnpackSum)


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


def bmm_rule(node):
    """A BATCH_MATMUL's requantization on every kernel path that runs TFLite's own kernel:
    MultiplyByQuantizedMultiplier double rounding of the int32 sum (8-bit), or its int64
    overload with the reduced 16-bit multiplier for int16 x int16 (reference_ops::BatchMatMul
    with an int64 accumulator, measured on every path)."""
    return FixedRequant("reduced64" if getattr(node.attrs.get("out_type"), "bits", 8) == 16 else "double")


def rule_16x8(node):
    """The rule of a 16x8 CONV_2D / DEPTHWISE_CONV_2D (IR conv), TRANSPOSE_CONV or FULLY_CONNECTED (IR matmul)
    with a 16-bit output, as every TFLite kernel path computes it (measured; XNNPACK does not
    take int16): conv sums in int64 and requantizes with MultiplyByQuantizedMultiplier's int64
    overload and its reduced 16-bit multiplier (reference_integer_ops::ConvPerChannel /
    DepthwiseConvPerChannel for int16, rules.FixedRequant "reduced64"; TRANSPOSE_CONV likewise,
    reference_integer_ops::TransposeConv's int64 scratch buffer, measured); FULLY_CONNECTED
    requantizes in float64, half away from zero (rules.DoubleRequant). None for any other node."""
    t = node.attrs.get("out_type")
    if node.op not in ("conv", "matmul", "transpose_conv") or getattr(t, "bits", 8) != 16 or batch_matmul(node):
        return None
    return DoubleRequant() if node.op == "matmul" else FixedRequant("reduced64")


def rule_int16(node):
    """The rule of a 16-bit ADD / SUB (IR add), MUL or MEAN (IR global_avgpool) on the builtin and
    XNNPACK paths (XNNPACK does not take int16: the builtin kernel runs): ADD of equal shapes
    is optimized_integer_ops::Add -> AddElementwiseInt16, 16-lane blocks with each input's right
    shift folded into the left shift 15 before the high multiply and a reference tail
    (TfliteAdd lanes=16, found by hypothesis at tie-prone scales: 2 of 95 drawn models differ
    from the reference); SUB and broadcast ADD (reference_ops::BroadcastAdd6DSlow) the reference
    fixed point; FoldedMean in mode "double", MUL's product requantized by
    MultiplyByQuantizedMultiplier with mul.cc's float32 multiplier (rules.TfliteMul "double").
    None for any other node."""
    t = node.attrs.get("out_type")
    if getattr(t, "bits", 8) != 16:
        return None
    return {"add": TfliteAdd("double", lanes=16), "mul": TfliteMul("double"),
            "global_avgpool": FoldedMean("double")}.get(node.op)


def requantize8(node) -> bool:
    """An IR lut of kind requantize to 8-bit codes: TFLite's QUANTIZE of 8-bit (or int16) codes to
    another scale and int8 / uint8, whose optimized and XNNPACK kernels are rules.TfliteRequantize
    (an int16 output runs the reference arithmetic on every path, measured: TfliteTable)."""
    return node.op == "lut" and node.attrs.get("kind") == "requantize" and \
        getattr(node.attrs.get("out_type"), "bits", 8) == 8


def fixed_rule_requantizer(name: str, rule, rq: Requant, channels: int, node):
    """The requantizer rules.FixedRequant or DoubleRequant names (None for another rule)."""
    if isinstance(rule, FixedRequant):
        return FixedPointTarget(name, rule.mode).fixed_requantizer(rq, channels, node.name, rule.mode)
    if isinstance(rule, LaneRequant):
        full = FixedPointTarget(name, rule.vector).fixed_requantizer(rq, channels, node.name, rule.vector)
        vec = channels // rule.lanes * rule.lanes
        parts = [(lo, hi, FixedPointRequantizer(name, {**full.params, "mode": mode, **{
                      k: full.params[k][lo:hi] for k in ("multiplier", "shift", "real_multiplier")}}))
                 for lo, hi, mode in ((0, vec, rule.vector), (vec, channels, rule.scalar)) if hi > lo]
        return LaneSplitRequantizer(name, {**full.params, "mode": f"{rule.vector} on channels < {vec}, else "
                                                                   f"{rule.scalar}", "parts": parts})
    if isinstance(rule, DoubleRequant):
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        return DoubleRequantizer(name, {"real_multiplier": real, "zero_point": int(rq.out_zp),
                                        "lo": int(rq.lo), "hi": int(rq.hi)})
    return None


def builtin_mean(target: str, node):
    """The rule of an 8-bit MEAN over H, W (IR global_avgpool) on TFLite's optimized path
    (reduce.cc EvalMean, kGenericOptimized): with keep_dims, int8, optimized_integer_ops::Mean
    (rules.OptimizedMean); without, the reference kernel's QuantizedMeanOrSum (FoldedMean
    "double"). keep_dims is the reader's, or (an ONNX GlobalAveragePool) what policy "tflite" reads
    from the op after it (passes/qdq_tflite.gap_keep_dims). Refused: a node that does not say
    (a GlobalAveragePool fused under another policy), and uint8 with keep_dims (optimized_ops::Mean,
    not modelled)."""
    keep = node.attrs.get("keep_dims")
    if keep is None:
        raise TargetRefusal(target, node, "the graph does not record whether TFLite's MEAN kept its dims, which "
                                          "selects the optimized kernel (keep_dims) or the reference one")
    if not keep:
        return FoldedMean("double")
    if np.dtype(node.attrs["out_type"].storage) != np.int8:
        raise TargetRefusal(target, node, "the optimized uint8 MEAN (optimized_ops::Mean) is not modelled")
    return OptimizedMean()


class FixedPointRequantizer(Requantizer):
    kernel, twin = staticmethod(requant_fixedpoint), staticmethod(requant_fixedpoint_ref)
    arg_names = ("multiplier", "shift", "zero_point", "lo", "hi", "mode")


class LaneSplitRequantizer(Requantizer):
    """rules.LaneRequant: `parts` [(c0, c1, FixedPointRequantizer of channels c0..c1-1)], each
    applied to its channel range of the (outer, C, inner) accumulator (kernels.fixedpoint.
    requant_fixedpoint and its twin); `params` also holds every channel's multiplier and shift."""

    def _split(self, acc, out, reference: bool):
        for lo, hi, r in self.params["parts"]:
            part = np.empty((acc.shape[0], hi - lo, acc.shape[2]), out.dtype)
            (r.apply_reference if reference else r.apply)(np.ascontiguousarray(acc[:, lo:hi]), part)
            out[:, lo:hi] = part

    def apply(self, acc, out):
        self._split(acc, out, False)

    def apply_reference(self, acc, out):
        self._split(acc, out, True)


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
            "conv": AccRequant(), "matmul": AccRequant(), "mul": AccRequant(one_type=True),
            "global_avgpool": FoldedMean(self.mode),
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


_REFERENCE_SUM = ("the interpreter's reference SUM (reduce.cc QuantizedMeanOrSum<T, kReference>) hands int8 data "
                  "(and int16) to reference_ops::QuantizedMeanOrSum as uint8 (codes read as bytes, results clamped to "
                  "0..255 and stored as bytes: measured, -1 for most int8 outputs), an interpreter defect, not "
                  "TFLite's (or TFLM's) arithmetic")



class TfliteTarget(FixedPointTarget):
    """TFLite's reference kernels (the interpreter's BUILTIN_REF path, measured with
    ai-edge-litert 2.3): as FixedPointTarget, except FULLY_CONNECTED (IR matmul), which the
    interpreter's reference kernel requantizes in float64 rounding half away from zero
    (rules.DoubleRequant), per tensor and per channel (BATCH_MATMUL: MultiplyByQuantizedMultiplier,
    `batch_matmul`); MUL, whose multiplier the interpreter computes from the float32 expression
    f32(f32(sa * sb) / sy) (rules.TfliteMul; TFLM casts to double first); QUANTIZE of float input
    with x86's int32 conversion of values beyond int32 (QuantizeRound "tflite-reference"); 8-bit
    SOFTMAX in the reference kernel's gemmlowp fixed point (rules.TfliteSoftmax("reference"),
    reference_ops::Softmax); and, measured on this path, RESIZE_BILINEAR in
    10-bit fixed point (rules.TfliteResize). uint8 SUM: rules.FoldedSum; int8 and int16 SUM are
    refused by name: the interpreter's reference SUM reads their codes as uint8 (_REFERENCE_SUM,
    an interpreter defect). On .onnx files: QDQ
    fusion policy "tflite" (passes/qdq_policy.py), as the other two kernel paths' targets."""
    name = "tflite"
    mode = "double"
    qdq_fusion = "tflite"

    @property
    def rules(self):
        return MappingProxyType({**super().rules, "matmul": DoubleRequant(),
                                 "softmax": TfliteSoftmax("reference"),
                                 "resize_bilinear": TfliteResize(), "mul": TfliteMul("double"),
                                 "quantize": QuantizeRound("tflite-reference")})

    def rule(self, node):
        if node.op == "reduce_sum":
            if not getattr(node.attrs.get("out_type"), "signed", True):
                return FoldedSum(self.mode)     # uint8: the reference kernel reads its own type
            raise TargetRefusal(self.name, node, _REFERENCE_SUM)
        return bmm_rule(node) if batch_matmul(node) else super().rule(node)


class TfliteBuiltinTarget(FixedPointTarget):
    """TFLite's optimized CPU kernels (the interpreter's BUILTIN_WITHOUT_DEFAULT_DELEGATES
    path, measured with ai-edge-litert 2.3, layer-isolated with hypothesis-drawn parameters):
    CONV_2D and FULLY_CONNECTED requantize with a q31 high multiply then a round-half-up shift
    (kernels.fixedpoint mode "builtin": optimized_integer_ops' cpu_backend_gemm/ruy output
    stage); AVERAGE_POOL_2D, CONCATENATION, the int8 activations (rules.TfliteTable: ReluX's
    MultiplyByQuantizedMultiplier double-rounds here too), PRELU, SOFTMAX and RESIZE_BILINEAR
    compute as the reference kernels; SUM (int8, uint8, int16) requantizes in float32 (rules.TfliteSum,
    measured);
    TRANSPOSE_CONV and BATCH_MATMUL double-round as the
    reference kernels (rules.FixedRequant "double", measured); int8 ADD of equal shapes
    (optimized_integer_ops::AddElementwise): whole 16-element blocks fold each input's right
    shift into its left shift before the q31 high multiply, the tail equals the reference fixed
    point (TfliteAdd lanes=16); broadcast int8 ADD follows BroadcastAddFivefold (kernels.fixedpoint.
    tflite_add_broadcast: AddElementwise per inner run, AddScalarBroadcast's truncating input
    shift), its kGenericBroadcast shapes (BroadcastAdd6DSlow, measured 4- to 7-D) the reference fixed
    point; SUB equals the reference fixed point (TfliteAdd "double", measured with broadcasts of
    up to 7 dims); int16 ADD / SUB: `rule_int16` (equal-shape ADD in 16-lane blocks, the rest the
    reference fixed point); MUL as the reference
    kernel (rules.TfliteMul) except that the 8-bit vector path adds zy in int16 (refused where
    that can wrap). DEPTHWISE_CONV_2D (IR conv with groups; TFLite has no other grouped
    convolution): the channels of whole 8-channel blocks round half up after the q31 high
    multiply, the rest double-round (rules.LaneRequant). MEAN over H, W: `builtin_mean`.
    QUANTIZE of float input: optimized_ops::AffineQuantize, vector loop and scalar tail rounding
    differently (QuantizeRound "tflite-builtin"); of 8-bit codes to another scale:
    optimized_ops::Requantize, likewise (rules.TfliteRequantize "optimized", `requantize8`). DEQUANTIZE (float output,
    no rule) differs from the optimized kernel by up to one float32 ulp."""
    name = "tflite-builtin"
    mode = "builtin"
    qdq_fusion = "tflite"

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "avgpool": RawAverage(),
                                 "concat": SameQuant(), "lut": TfliteTable("double", optimized16=True),
                                 "prelu": TflitePrelu("double"),
                                 "add": TfliteAdd("double", narrow16=True, lanes=16),
                                 "softmax": TfliteSoftmax(), "resize_bilinear": TfliteResize(),
                                 "transpose_conv": FixedRequant("double"), "mul": TfliteMul("double", narrow16=True),
                                 "quantize": QuantizeRound("tflite-builtin"), "reduce_sum": TfliteSum()})

    def rule(self, node):
        if batch_matmul(node):
            return bmm_rule(node)
        for special in (rule_16x8(node), rule_int16(node)):
            if special is not None:
                return special
        if node.op == "global_avgpool":
            return builtin_mean(self.name, node)
        if requantize8(node):
            return TfliteRequantize("optimized")
        if node.op == "conv" and (int(node.attrs.get("group", 1)) > 1 or node.origin.startswith("DEPTHWISE_CONV_2D")):
            return LaneRequant(8, "builtin", "double")
        return super().rule(node)


XNN_MAX_TENSOR_DIMS = 6     # the delegate's VisitBinaryNode / VisitReduceNode take inputs of at most 6 dims


def _rank(graph, name):
    """The declared rank of tensor `name` (None when unknown)."""
    if name in graph.constants:
        return np.ndim(graph.constants[name])
    t = graph.tensors.get(name)
    return None if t is None or t.shape is None else len(t.shape)


def _xnnpack_declines(n, graph) -> bool:
    """Whether the XNNPACK delegate leaves node n to the interpreter's builtin kernel
    (TfliteXnnpackTarget.annotate): an 8-bit add / mul whose constant scales fail
    add_delegated / mul_delegated, an 8-bit add / mul with an input of more than
    XNN_MAX_TENSOR_DIMS dims (measured: 7-D ADD / SUB equal the builtin kernel), or an int16
    quantize of float input."""
    bits = getattr(n.attrs.get("out_type"), "bits", 8)
    if n.op == "quantize":
        return bits == 16
    if n.op not in ("add", "mul") or bits != 8:
        return False
    if any((_rank(graph, n.inputs[i]) or 0) > XNN_MAX_TENSOR_DIMS for i in (0, 3)):
        return True
    constants = graph.constants
    vals = [constants.get(n.inputs[i]) if len(n.inputs) > i else None for i in (1, 4, 6)]
    if not all(v is not None and np.asarray(v).size == 1 for v in vals):
        return False
    sa, sb, sy = (float(np.asarray(v, np.float32).reshape(-1)[0]) for v in vals)
    return not (add_delegated if n.op == "add" else mul_delegated)(sa, sb, sy)


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
    ties rounded up; rules.XnnpackMul: float scale, RNE, + zy after the rounding), and where the
    delegate declines the scales (`annotate`) the builtin kernels' rules, as tflite-builtin;
    AVERAGE_POOL_2D averages the raw codes as TFLite's reference kernel (RawAverage);
    CONCATENATION moves codes (SameQuant); RELU / RELU6 / RELU_N1_TO_1 / LOGISTIC / TANH /
    HARD_SWISH int8 equal the reference kernels' tables (rules.TfliteTable); PRELU and int8
    SOFTMAX equal the builtin kernels (rules.TflitePrelu, TfliteSoftmax; measured);
    8-bit SUM is XNNPACK's int32 sum converted in float32, ties to even (rules.XnnpackSum); int16 SUM is
    not delegated: the builtin kernel's float32 requantization (rules.TfliteSum, measured);
    RESIZE_BILINEAR is XNNPACK's 11-bit interpolation (TfliteResize "xnnpack"; int16 is not
    delegated: the reference arithmetic, measured); QUANTIZE multiplies by f32(1 / scale) and
    rounds half to even (QuantizeRound "rne-recip"; to int16, which XNNPACK does not take, the
    builtin kernel's, `annotate`); QUANTIZE of 8-bit codes to another scale is
    XNNPACK's convert where the delegate takes the ratio, else the builtin kernel's
    (rules.TfliteRequantize "xnnpack"); int8 LEAKY_RELU is XNNPACK's
    (rules.XnnpackLeakyRelu; int16 is not delegated and equals the builtin table); 8-bit MEAN over
    H, W is XNNPACK's int32 sum converted in float32 (rules.XnnpackMean). Refused by name:
    everything not measured. XNNPACK
    itself refuses requantization scales >= 256 (the interpreter fails to prepare)."""
    name = "tflite-xnnpack"
    qdq_fusion = "tflite"

    def __init__(self, name: str | None = None):
        super().__init__(name or self.name, saturating_u8s8=False)

    @property
    def rules(self):
        return MappingProxyType({"conv": AccRequant(), "matmul": AccRequant(), "add": XnnpackAdd(), "mul": XnnpackMul(),
                                 "avgpool": RawAverage(), "concat": SameQuant(),
                                 "lut": TfliteTable("double", optimized16=True),
                                 "quantize": QuantizeRound("rne-recip"), "prelu": TflitePrelu("double"),
                                 "softmax": TfliteSoftmax(), "transpose_conv": AccRequant(),
                                 "resize_bilinear": TfliteResize("xnnpack"), "global_avgpool": XnnpackMean(),
                                 "reduce_sum": XnnpackSum()})

    def rule_requantizer(self, rule, rq: Requant, channels: int, node) -> Requantizer:
        r = fixed_rule_requantizer(self.name, rule, rq, channels, node)
        return r if r is not None else super().rule_requantizer(rule, rq, channels, node)

    def annotate(self, graph):
        """Each node the delegate declines gets attr xnnpack_declined: the interpreter runs the
        builtin kernel there, and `rule` returns tflite-builtin's rule for it. Declined: an 8-bit
        ADD / SUB / MUL (IR add, mul) whose constant scales fail the delegate's checks
        (kernels.xnnpack_binary.add_delegated / mul_delegated: TFLite's VisitBinaryNode scale
        checks; measured on both sides of the limits), an 8-bit ADD / SUB / MUL with an input of
        more than 6 dims (`_xnnpack_declines`), and a QUANTIZE of float input to int16
        (IR quantize; VisitQuantizeNode takes no int16 output: measured, the builtin kernel's
        optimized_ops::AffineQuantize, QuantizeRound "tflite-builtin"). A SUM gets attr input_rank:
        one of more than 6 dims the delegate claims and fails to prepare (`rule` refuses it)."""
        nodes, changed = [], False
        for n in graph.nodes:
            if not n.attrs.get("xnnpack_declined") and _xnnpack_declines(n, graph):
                n = Node(n.op, n.name, n.inputs, n.outputs, {**n.attrs, "xnnpack_declined": True}, n.origin)
                changed = True
            if n.op == "reduce_sum" and "input_rank" not in n.attrs and _rank(graph, n.inputs[0]) is not None:
                n = Node(n.op, n.name, n.inputs, n.outputs, {**n.attrs, "input_rank": _rank(graph, n.inputs[0])},
                         n.origin)
                changed = True
            nodes.append(n)
        return graph.replace(nodes=tuple(nodes)) if changed else graph

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
        if node.attrs.get("xnnpack_declined"):
            return TfliteBuiltinTarget().rule(node)     # `annotate`: the builtin kernel runs
        if node.op == "reduce_sum" and getattr(node.attrs.get("out_type"), "bits", 8) == 16:
            return TfliteSum()          # int16 is not delegated: the builtin kernel
        if node.op == "reduce_sum" and node.attrs.get("input_rank", 0) > XNN_MAX_TENSOR_DIMS:
            raise TargetRefusal(self.name, node, f"the XNNPACK delegate claims an 8-bit SUM of "
                                f"{node.attrs['input_rank']} dims and then fails to prepare it (at most "
                                f"{XNN_MAX_TENSOR_DIMS}; measured): the interpreter does not run it")
        if batch_matmul(node) and getattr(node.attrs.get("out_type"), "bits", 8) == 16:
            return bmm_rule(node)       # int16 is not delegated: the builtin kernel
        for special in (rule_16x8(node), rule_int16(node)):
            if special is not None:
                return special
        if requantize8(node):
            return TfliteRequantize("xnnpack")
        if (batch_matmul(node) and not node.attrs.get("symmetric_b")) or \
                (node.op == "transpose_conv" and node.attrs.get("pad_clamped")):
            return FixedRequant("double")
        if node.op == "resize_bilinear" and getattr(node.attrs.get("out_type"), "bits", 8) == 16:
            return TfliteResize()       # int16 is not delegated: the builtin kernel, the reference arithmetic
        if node.op == "lut" and node.attrs.get("kind") == "leaky_relu" and \
                getattr(node.attrs.get("out_type"), "bits", 8) == 8:    # int16: not delegated, the builtin table
            return XnnpackLeakyRelu()
        return super().rule(node)
