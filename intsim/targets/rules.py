"""The arithmetic a target uses for each integer op, as typed records (the target seam).

A step asks its target once, at prepare: `rule = ctx.target.rule(node)`, then switches on
the record's type; `run` only calls kernels. A target that has no rule for an op refuses it
by name (`TargetRefusal`: "target tflite has no rule for QLinearSigmoid at node 'x'"), never
borrows another target's arithmetic.

    OrtArith       onnxruntime's float formulas (kernels/eltwise.py, pool.py, lut.py); add/mul
                   also on 16-bit and mixed-type codes (policy "integer": the same formulas,
                   saturating to the output type; onnxruntime itself adds those in float)
    AccRequant     an exact int64 accumulator, then the target's own conv requantizer:
                     mul     acc = (a - za) * (b - zb)                 real = sa*sb / sy
                     pools   acc = sum over the window of (x - zx)     real = sx / (sy*n)
                     add     acc = (a - za)*2^ka + (b - zb)*2^kb       real = s_min / sy
                             (only where sa/sb is a power of two: ka, kb >= 0 integers)
                     concat  acc = x - zx                              real = sx / sy
    TfliteAdd      TFLite's fixed-point ADD (reference_integer_ops::Add / arm_elementwise_add_s8)
    XnnpackAdd     XNNPACK's qs8 ADD / SUB: integer multipliers of sa/sy, sb/sy, one shift (kernels.xnnpack_binary)
    TfliteMul      TFLite's MUL: the product requantized by MultiplyByQuantizedMultiplier with mul.cc's
                   float32 multiplier f32(f32(sa*sb)/sy)
    XnnpackLeakyRelu  XNNPACK's qs8 LEAKY_RELU: 8-bit multipliers, one rounding (kernels.xnnpack_unary)
    XnnpackMean    XNNPACK's qs8 MEAN: int32 sum of codes, float32 scale and zero point (kernels.xnnpack_mean)
    XnnpackSum     XNNPACK's qs8 / qu8 SUM: as XnnpackMean without the 1/n (kernels.xnnpack_mean.sum_params)
    XnnpackMul     XNNPACK's qs8 MUL: f32 product times f32(f32(sa*sb)/sy), RNE, + zy (kernels.xnnpack_binary)
    RawAverage     TFLite's AVERAGE_POOL_2D: the raw codes averaged, half away from zero
                   (reference_integer_ops::AveragePool); input and output quantization equal
    DivideRound    pools on a shift-only datapath with an exact divider:
                     y = round(sum(x - zx) * 2^k / n) + zy,  sx/sy = 2^k,  `rounding` the target's
    SameQuant      the op moves codes only: every input's quantization equals the output's
                   (TFLite CONCATENATION for int8/int16)
    QuantizeRound  float QuantizeLinear rounding: "rne" (ONNX) or "rhaz" (TFLite's Quantize)
    FoldedMean     TFLite MEAN: MultiplyByQuantizedMultiplier of sum(x - zx) by sx/sy with 1/n
                   folded into the q31 multiplier in integers (reference_ops::QuantizedMeanOrSum)
    OptimizedMean  TFLite's optimized int8 MEAN over H, W with keep_dims (optimized_integer_ops::Mean)
    TfliteTable    TFLite's int8 activations (RELU family, LEAKY_RELU, LOGISTIC, TANH, HARD_SWISH) as the
                   interpreter computes each input code (kernels.tflite_act), applied as a table
    DoubleRequant  conv/matmul requantized in float64, half away from zero (TFLite's reference
                   FULLY_CONNECTED): `target.rule_requantizer(rule, rq, C, node)`
    TflitePrelu    TFLite's PRELU: two q31 multipliers, identity and alpha (kernels.tflite_prelu)
    TfliteResize   TFLite's RESIZE_BILINEAR of codes in 10-bit fixed point (kernels.tflite_resize)
    TfliteSoftmax  TFLite's 8-bit SOFTMAX: a float32 exponential table (kernels.tflite_softmax) or,
                   the reference kernel, gemmlowp fixed point (kernels.tflite_softmax_fixed)
    TfliteSum      TFLite's optimized SUM of 8-bit / int16 codes, requantized in float32 (kernels.tflite_sum)
    FoldedSum      TFLite's reference SUM: MultiplyByQuantizedMultiplier of sum(x) - zx*n by sx/sy
    TfliteRequantize  TFLite's QUANTIZE of integer codes to another scale and type (IR lut kind requantize) on
                   the optimized kernels (16-lane loop and scalar tail) or XNNPACK's convert
    FixedRequant   an exact accumulator requantized by MultiplyByQuantizedMultiplier in a stated
                   mode, whatever the target's own requantizer: `target.rule_requantizer`
    LaneRequant    as FixedRequant, one mode for the channels of whole SIMD blocks, another for the rest
    BiasShift      a conv/matmul bias with its own power-of-two scale (Quark XINT8) moved onto the
                   accumulator grid by a shift: `target.bias_rule(node)` (pow2 targets only)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import IntsimError
from ..ops import OPS


class TargetRefusal(IntsimError):
    """A target has no rule for an integer op."""

    def __init__(self, target: str, node, why: str = ""):
        op = (node.origin or node.op).split(" (")[0] if node is not None else "?"
        name = node.name if node is not None else "?"
        super().__init__(f"target {target} has no rule for {op} at node '{name}'" + (f": {why}" if why else ""))


@dataclass(frozen=True)
class OrtArith:
    """onnxruntime (MLAS, x86-64) float arithmetic, as the kernels' docstrings write it."""


@dataclass(frozen=True)
class AccRequant:
    """Exact int64 accumulator, requantized by the target's own `requantizer`. `fold_zp` (add,
    mul): where the multiplier is 2**-n exactly, the output zero point joins the sum before the
    rounding (acc + zy * 2**n), as a shift datapath with the offset in its adder does.
    `one_type` (mul of the TFLite-family targets): the kernel takes one type for both operands
    and the output, a 16-bit one int16 with zero points 0; other operands are refused by name."""

    fold_zp: bool = False
    one_type: bool = False


@dataclass(frozen=True)
class TfliteAdd:
    """TFLite fixed-point ADD: inputs shifted left by `left_shift` (20 for 8-bit, 15 for
    16-bit), scaled by q31 multipliers of s/(2*max(sa, sb)), summed, and scaled by
    2*max(sa, sb)/(2**left_shift * sy); each scaling is MultiplyByQuantizedMultiplier in the
    target's `mode` (double / single / cmsis). `narrow16`: the optimized CPU kernel narrows the
    requantized sum to int16 before the output clamp (measured: a sum past int16 wraps), so where
    the sum can leave int16 (255 * (sa + sb) / sy + |zy| > 32767) the op is refused, not modelled.
    `lanes`: that kernel's vector blocks (optimized_integer_ops::AddElementwise, 16 lanes) fold
    each input's right shift into the left shift before the high multiply
    (kernels.fixedpoint.tflite_add_lanes); 0: every element takes the scalar arithmetic."""

    mode: str
    narrow16: bool = False
    lanes: int = 0


@dataclass(frozen=True)
class XnnpackAdd:
    """XNNPACK's qs8 ADD, and SUB as ADD with b's scale negated (xnn_init_qs8_add_minmax_scalar_params,
    qs8-vadd microkernels): shift = 20 - floor(log2(max|s/sy|)), m = rint(f32(s/sy) * 2**shift),
    y = clamp((2**(shift-1) + ma*(a - za) + mb*(b - zb)) >> shift + zy). Ratios outside
    [2**-10, 2**8) are not delegated (the interpreter's builtin kernel runs): refused."""


@dataclass(frozen=True)
class TfliteMul:
    """TFLite's quantized MUL (mul.cc Prepare, reference_integer_ops::Mul): the multiplier is
    computed in float32, real = f32(f32(sa * sb) / sy) (the C++ expression multiplies the float
    scales before widening to double), (m0, s) = QuantizeMultiplier(double(real)), and
    y = clamp(MultiplyByQuantizedMultiplier((a - za) * (b - zb), m0, s) + zy) in `mode`.
    `narrow16`: the optimized kernel (optimized_integer_ops::MulElementwise / MulSimpleBroadcast,
    16 lanes at a time) saturates the requantized product to int16 and adds zy in int16 with
    wrap-around before saturating to int8 (measured: off by 255), so where the product can leave
    int16 (max|r| + |zy| > 32767) the op is refused, not modelled."""

    mode: str
    narrow16: bool = False


@dataclass(frozen=True)
class XnnpackMul:
    """XNNPACK's qs8 MUL (xnn_init_qs8_mul_minmax_scalar_params, qs8-vmul fp32 microkernels):
    y = clamp(rint_RNE(f32((a - za)*(b - zb)) * f32(f32(sa*sb)/sy)) + zy). A ratio outside
    [2**-16, 2**8) is not delegated: refused."""


@dataclass(frozen=True)
class XnnpackLeakyRelu:
    """XNNPACK's qs8 / qu8 LEAKY_RELU (xnn_init_qs8_lrelu_scalar_params, qs8-vlrelu kernels):
    mp = lrintf(256*f32(sx/sy)), mn = lrintf(256*f32(f32(sx/sy)*alpha)), y = clamp(zy +
    floor(((x - zx)*(mp if x >= zx else mn) + 128) / 256)), as a table (kernels.xnnpack_unary). Scales
    the delegate does not take (kernels.xnnpack_unary.delegated) run TFLite's builtin kernel:
    TfliteTable("double")'s LEAKY_RELU (measured)."""


@dataclass(frozen=True)
class XnnpackMean:
    """XNNPACK's qs8 / qu8 MEAN over H, W (create_reduce_nd; kernels.xnnpack_mean): the raw codes'
    int32 sum times s = f32(f32(sx/sy) * f32(1/n)), plus zp = f32(zy - f32(n*zx) * s), rounded
    half to even in float32 and saturated (measured with and without keep_dims)."""


@dataclass(frozen=True)
class XnnpackSum:
    """XNNPACK's qs8 / qu8 SUM over constant axes (VisitReduceNode -> xnn_define_static_reduce_v2,
    reduce-nd.c; kernels.xnnpack_mean.sum_params): the raw codes' int32 sum times s = f32(sx / sy),
    plus zp = f32(zy - f32(n*zx) * s), rounded half to even in float32 and saturated,
    y = saturate(nearbyint(f32(f32(sum) * s) + zp)). It differs from the builtin kernel's float32
    SUM (TfliteSum: the bias added the other way, ties rounded away from zero) at ties (measured
    on int8 and uint8 with drawn scale ratios; int16 is not delegated: TfliteSum)."""


@dataclass(frozen=True)
class RawAverage:
    """TFLite AVERAGE_POOL_2D: sum of raw codes over the valid window, divided by the count
    rounding half away from zero; needs equal input and output quantization."""


@dataclass(frozen=True)
class DivideRound:
    """Average pools: y = clamp(round(sum(x - zx) * 2**k / n) + zy), sx / sy = 2**k exactly,
    n the window's count; the quotient rounded exactly in `rounding` (floor | rhu | rne | rhaz)."""

    rounding: str


@dataclass(frozen=True)
class SameQuant:
    """Codes move unchanged; a differing input quantization is refused."""


@dataclass(frozen=True)
class QuantizeRound:
    """QuantizeLinear of float input: saturate(round(x / scale) + zp), `rounding` rne | rhaz, or
    rne-recip: saturate(rint(f32(x * f32(1 / scale))) + zp) (XNNPACK's f32 -> qs8 convert), or
    tflite-builtin: TFLite's optimized AffineQuantize, per tensor: rne-recip with f32(1 / double(scale))
    over the first 8*floor(n/8) values, RHAZ of double(x) / double(scale) over the rest
    (intsim.numerics.tflite_builtin_round), or tflite-reference: TFLite's reference AffineQuantize,
    rhaz of the float32 quotient; both convert to int32 as x86 does (NaN and values beyond int32
    give INT32_MIN) and add zp in int32 (intsim.numerics.x86_int32)."""

    rounding: str


@dataclass(frozen=True)
class TfliteTable:
    """TFLite's int8 elementwise activations on the IR `lut` op, one table entry per input code
    computed as the interpreter does (kernels.tflite_act): RELU / RELU6 / RELU_N1_TO_1
    (QuantizedReluX -> ReluX: MultiplyByQuantizedMultiplier in `mode`, clamped to the
    activation range), LEAKY_RELU (reference_ops::QuantizeLeakyRelu), LOGISTIC and TANH
    (PopulateLookupTable: float32 expf / tanhf, std::round), HARD_SWISH (reference_ops::
    HardSwish, int16 fixed point). int16 (65536-entry tables): RELU / RELU6 and LEAKY_RELU as
    for int8, LOGISTIC and TANH as reference_integer_ops::Logistic / Tanh (kernels.tflite_act16).
    `optimized16`: the interpreter's optimized kernels run gemmlowp's int16 logistic / tanh
    where the input scale is a power of two (activations.cc SigmoidEval / TanhEval;
    kernels.gemmlowp16)."""

    mode: str
    optimized16: bool = False


@dataclass(frozen=True)
class DoubleRequant:
    """An exact accumulator requantized in float64: y = clamp(int32(round_RHAZ(double(acc) *
    (double(sx) * double(sw[c]) / double(sy)))) + zy, lo, hi), as TFLite's reference
    FULLY_CONNECTED does (reference_integer_ops::FullyConnected / FullyConnectedPerChannel, the
    overloads taking float scales; kernels.requant.requant_double_rhaz). TFLM's FC instead
    double-rounds through MultiplyByQuantizedMultiplier (AccRequant)."""


@dataclass(frozen=True)
class FoldedMean:
    """TFLite MEAN over H, W (global average): (m0, s) = QuantizeMultiplier(double(sx) /
    double(sy)); k = min(floor(log2 n), 32, 31 + s); m = (m0 << k) // n;
    y = clamp(MultiplyByQuantizedMultiplier(sum(x - zx), m, s - k) + zy) in the target's
    `mode` (reference_ops::QuantizedMeanOrSum, tensorflow/lite/kernels/internal/reference/
    reduce.h; kernels.fixedpoint.mean_multiplier)."""

    mode: str


@dataclass(frozen=True)
class OptimizedMean:
    """TFLite's optimized int8 MEAN over H, W of a 4-D tensor with keep_dims (reduce.cc EvalMean,
    kGenericOptimized -> optimized_integer_ops::Mean; single-threaded, the interpreter's default):
    (m0, s, bias) = kernels.fixedpoint.optimized_mean_params (float32 bias f32(zx*sx)/sy rounded
    half away and truncated; m0, s = QuantizeMultiplier(f32(sx / f32(n*sy)))); acc = sum of the
    raw codes (zx not subtracted); y = clamp(mbqm(acc, m0, s) + bias, -128, 127), mbqm in mode
    "builtin" (MultiplyByQuantizedMultiplier4Rows: a round-half-up shift) for the channels of the
    16-wide vector blocks, c < 16*floor(C/16), and "double" (the scalar loop) for the rest."""


@dataclass(frozen=True)
class FixedRequant:
    """An exact accumulator requantized as y = clamp(MultiplyByQuantizedMultiplier(acc, m0[c],
    shift[c]) + zy, lo, hi) in `mode` (kernels.fixedpoint), not by the target's own
    requantizer: TFLite's optimized TRANSPOSE_CONV (optimized_integer_ops::TransposeConvV2's
    output stage) double-rounds as the reference kernel does, unlike its CONV_2D."""

    mode: str


@dataclass(frozen=True)
class LaneRequant:
    """An exact accumulator requantized per output channel c as FixedRequant, in mode `vector`
    for c < lanes * floor(C / lanes) and in mode `scalar` for the remaining C mod lanes channels:
    TFLite's optimized DEPTHWISE_CONV_2D (optimized_integer_ops::depthwise_conv::DepthwiseConvGeneral,
    the x86 path; its output stage optimized_ops::Quantize runs 8 channels at a time with
    vqrdmulhq + vrshlq, a round-half-up shift = kernels.fixedpoint mode "builtin", and the left-over
    channels through MultiplyByQuantizedMultiplier, "double")."""

    lanes: int
    vector: str
    scalar: str


@dataclass(frozen=True)
class TflitePrelu:
    """TFLite PRELU (activations.cc PreluPrepare + reference_ops::BroadcastPrelu4DSlow):
    y = clamp(zy + (x - zx >= 0 ? mbqm(x - zx, m1, s1) : mbqm((x - zx) * (alpha - za), m2, s2))),
    (m1, s1) = QuantizeMultiplier(f32(sx / sy)), (m2, s2) = QuantizeMultiplier(f32(f32(sx * sa) / sy)),
    mbqm MultiplyByQuantizedMultiplier in the target's `mode` (kernels.tflite_prelu)."""

    mode: str


@dataclass(frozen=True)
class TfliteResize:
    """TFLite RESIZE_BILINEAR of 8-bit codes, input and output quantization equal
    (kernels.tflite_resize): `arithmetic` "reference" (reference_ops::ResizeBilinearInteger:
    10-bit source coordinates, an int64 sum of the four corners times their weights, divided by
    2**20 half away from zero) or "xnnpack" (the delegate's float32 coordinates, 11-bit
    weights, two lerps in int32, >> 22)."""

    arithmetic: str = "reference"


@dataclass(frozen=True)
class TfliteSoftmax:
    """TFLite 8-bit SOFTMAX. `kernel` "optimized" (optimized_ops::PopulateSoftmaxLookupTable +
    optimized_ops::Softmax): e = expf(-sx*beta*(max - x)) from a float32 table, a float32 sum in
    order, y = round_RHAZ(e * f32(1 / (sum * sy))) + zy (kernels.tflite_softmax); "reference"
    (SoftmaxPrepare<kReference> + reference_ops::Softmax): gemmlowp int32 fixed point, exp of
    FixedPoint<int32, 5> differences, a FixedPoint<int32, 12> sum, 1/(1+x) by Newton-Raphson
    (kernels.tflite_softmax_fixed). int16 (every kernel path): reference_ops::SoftmaxInt16, exp
    and 1/(1+x) tables with interpolation (kernels.tflite_softmax16)."""

    kernel: str = "optimized"


@dataclass(frozen=True)
class TfliteSum:
    """TFLite's optimized SUM of int8, uint8 and int16 codes (optimized_ops::QuantizedMeanOrSum, compute_sum):
    the raw codes summed, y = clamp(round_RHAZ(f32(f32(sum) * f32(sx / sy)) + f32(-zx * scale * n))
    + zy) in float32 (kernels.tflite_sum)."""


@dataclass(frozen=True)
class FoldedSum:
    """TFLite's reference SUM (reference_ops::QuantizedMeanOrSum with compute_sum, reference/reduce.h):
    (m0, s) = QuantizeMultiplier(double(sx) / double(sy)) (reduce.cc PrepareMeanOrSum);
    y = clamp(MultiplyByQuantizedMultiplier(int32(sum(x) - zx*n), m0, s) + zy) in `mode`
    (kernels.fixedpoint.requant_fixedpoint), n the reduced count."""

    mode: str


@dataclass(frozen=True)
class TfliteRequantize:
    """TFLite's QUANTIZE of integer codes to another scale (IR lut kind requantize; quantize.cc
    Prepare: (m0, s) = QuantizeMultiplier(double(sx) / double(sy))), one type in and out or another
    (int8 <-> uint8, int16 -> int8: importer.tflite_model.REQUANTIZE_TYPES). `kernel` "optimized":
    8-bit codes to 8-bit codes (any signedness) run optimized_ops::Requantize<int8_t, int8_t>,
    <int8_t, uint8_t>, <uint8_t, int8_t>, <uint8_t, uint8_t> over the flat tensor of n codes: the
    first 16*floor(n/16) through MultiplyByQuantizedMultiplier4Rows (vqrdmulh then a rounding
    shift: kernels.fixedpoint mode "builtin"), the rest through MultiplyByQuantizedMultiplier (mode
    "double"), y = clamp(mbqm(x - zx, m0, s) + zy) to the output type (kernels.tflite_act.
    requantize_table per mode); int16 -> int8 has no optimized form: every code through mode
    "double" (reference_ops::Requantize, measured). "xnnpack": the delegate's convert where it takes
    the node (one 8-bit type in and out, the ratio in range: kernels.xnnpack_unary.cvt_table,
    cvt_delegated), else "optimized" (the interpreter's builtin kernel; a type change is never
    delegated, measured). The reference kernel (reference_ops::Requantize), int8 / uint8 -> int16
    and int16 -> int16 on every path are MultiplyByQuantizedMultiplier of every code: TfliteTable's
    requantize (measured on all three paths)."""

    kernel: str = "optimized"


@dataclass(frozen=True)
class BiasShift:
    """A bias b with its own scale 2**-eb added to an accumulator of scale x_scale*w_scale[c] =
    2**-ea[c], as a shift-only NPU datapath does: k = ea - eb; k >= 0: acc += b << k (exact);
    k < 0: acc += round(b / 2**-k) in `rounding` (floor | rhu | rne | rhaz). Both scales must
    be powers of two."""

    rounding: str


# the IR ops that compute integers from integers (or quantize floats) and so need a rule
INTEGER_OPS = tuple(op for op, row in OPS.items() if row.integer_arith)
