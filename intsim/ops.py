"""The op table: one row per IR op, holding every fact about the op that code outside its step
needs (passes, batch split, layout, info, dump, verify, overflow).

Adding an IR op = its row here + its step (`intsim/steps`, registered under the same name) +
its NumPy reference (named in the row). `tests/test_ops.py` checks the three agree.

This module imports nothing from intsim: steps, kernels and references are named by dotted
strings, so any module can read the table without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

# `OpRow.reference` of an op whose step already computes in plain NumPy (no Numba kernel):
# the step is its own reference.
STEP_IS_REFERENCE = "step"

# Batch-split rule kinds (`OpRow.batch`); batch_split maps each kind to its check.
BATCH_KINDS = ("data_first", "softmax", "matmul", "broadcast", "concat", "quant", "whole_tensor", "trunc", "onnx")
# QDQ fusion kinds (`OpRow.qdq_rule`); passes/fuse_qdq maps each kind to its rewrite.
QDQ_KINDS = ("compute", "binary", "unary", "concat")
# Weight layouts of accumulating ops (`OpRow.weights`): where K and the output channels are.
WEIGHT_LAYOUTS = ("OIHW", "KN")


@dataclass(frozen=True)
class OpRow:
    """Every per-op fact of one IR op.

    op            the IR op name (the key of `steps.STEPS`)
    step          the module whose `@step(op)` prepares it
    reference     dotted name of the NumPy int64 reference that defines its integers, or
                  STEP_IS_REFERENCE (the step is plain NumPy), or the ONNX reference evaluator
    movement      True when the op only moves values (no arithmetic of its own; no IR op
                  today: data movement runs as `onnx` over the ONNX_MOVEMENT op types)
    integer_arith True when it computes new integers from integers or floats: a target must
                  supply a rule for it (requantization, rounding)
    scale_inputs  input positions of scales; zero points sit right after each (`zp_positions`)
    variadic      (first, stride): from input `first` on, groups of (data, scale, zp) repeat
    batch         batch-split rule kind (BATCH_KINDS)
    same_rank     output 0 has the rank of input 0
    nhwc_reader   reads a channels-last input without a layout move
    weights       weight layout of an accumulating op (K, MACs, channel axis), None otherwise
    dumped        the golden-vector dump writes this op's layers (quantization ops: no)
    dump_layout   (role, layout) pairs the golden-vector dump writes for this op
    lowered_from  ONNX op types (QOperator, QONNX, quantization ops) whose lowering
                  (`importer.registry.find(domain, op_type)`) emits this op
    qdq_from      ONNX op types a DQ -> op -> Q pattern of which becomes this op
    qdq_rule      the QDQ fusion kind (QDQ_KINDS) for those ONNX types
    """
    op: str
    step: str
    reference: str
    batch: str
    movement: bool = False
    integer_arith: bool = True
    scale_inputs: tuple[int, ...] = ()
    variadic: Optional[tuple[int, int]] = None
    same_rank: bool = False
    nhwc_reader: bool = False
    weights: Optional[str] = None
    dumped: bool = True
    dump_layout: tuple[tuple[str, str], ...] = ()
    lowered_from: tuple[str, ...] = ()
    qdq_from: tuple[str, ...] = ()
    qdq_rule: str = ""

    @property
    def accumulates(self) -> bool:
        """A GEMM-like op: products summed into an accumulator that the target requantizes."""
        return self.weights is not None

    def scale_positions(self, n_inputs: int) -> tuple:
        """Positions of the scale inputs of a node with n_inputs inputs."""
        extra = () if self.variadic is None else tuple(range(self.variadic[0] + 1, n_inputs, self.variadic[1]))
        return tuple(i for i in self.scale_inputs + extra if i < n_inputs)

    def zp_positions(self, n_inputs: int) -> tuple:
        """Positions of the zero-point inputs (each right after its scale)."""
        return tuple(i + 1 for i in self.scale_positions(n_inputs) if i + 1 < n_inputs)


# ONNX op types that only move, select or compare values: integer in, same integers out (the
# `onnx` IR op runs them; the importer keeps the input's quantization on their output).
ONNX_MOVEMENT = frozenset({
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Pad", "Identity",
    "MaxPool", "Resize", "Concat", "Split", "Gather", "Expand", "Tile", "DepthToSpace",
    "SpaceToDepth", "GlobalMaxPool", "ReduceMax", "ReduceMin", "Upsample",
})
# float ops of the standard domain computed value by value: each output element is a function of
# the same element of each input (operands of one shape, or broadcast from one value). A float
# island made of them, from one per-tensor 8-bit dequantize to one quantize, is a function of
# the input code alone (intsim.runtime.island_tables)
FLOAT_ELEMENTWISE = frozenset({
    "Abs", "Add", "Ceil", "Celu", "Clip", "Cos", "Div", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
    "HardSwish", "Identity", "LeakyRelu", "Log", "Max", "Min", "Mish", "Mul", "Neg", "Pow", "PRelu",
    "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Sub",
    "Tanh", "ThresholdedRelu",
})
# ONNX ops whose outputs depend on their inputs' shapes only, and ops that compute on integers or
# move data deterministically: a chain of these from Shape/Size nodes and constants (the shape
# arithmetic of a dynamic-batch reshape) has the same values for every run of one feed key
SHAPE_SOURCES = frozenset({"Shape", "Size"})
SHAPE_ARITH = frozenset({
    "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Cast", "Add", "Sub", "Mul", "Div", "Mod", "Neg",
    "Abs", "Max", "Min", "Equal", "Where", "Range", "ConstantOfShape", "Expand", "Identity", "ReduceProd",
    "ReduceSum", "Flatten", "Transpose", "Floor", "Ceil", "Sqrt", "Less", "Greater", "Not", "And", "Or", "Tile",
})
# ONNX compute op types: one left as a float island (not fused to an integer op) is reported.
ONNX_COMPUTE = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
# com.microsoft float compute ops (intsim.importer.ms_attention): reported the same way, except an
# Attention that only carries QAttention's float part (attrs["integer_projection"])
MS_COMPUTE = frozenset({"Attention", "MultiHeadAttention", "FusedMatMul"})
# ONNX op types the `onnx` step runs channels-last without a layout move.
ONNX_NHWC_READERS = frozenset({"MaxPool"})

_QLINEAR = (1, 4, 6)        # a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp[, bias]
_UNARY = (1, 3)             # x, x_scale, x_zp, y_scale, y_zp
_QONNX_QUANT = ("Quant", "IntQuant", "BipolarQuant")   # QONNX: quantize then dequantize
# com.microsoft float ops (onnxruntime's transformer optimizer) lowered to `onnx` float islands
MS_FLOAT_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization",
             "SimplifiedLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "QuickGelu", "FusedMatMul",
             "BiasAdd", "BiasSoftmax")
_CONV_DUMP = (("input", "NCHW"), ("weights", "OIHW"), ("acc", "NCHW"), ("output", "NCHW"), ("bias", "O"))

_ROWS = (
    OpRow("conv", "intsim.steps.compute", "kernels.conv.conv2d_acc_ref", "data_first", scale_inputs=_QLINEAR,
          same_rank=True, nhwc_reader=True, weights="OIHW", dump_layout=_CONV_DUMP,
          lowered_from=("QLinearConv", "ConvInteger"), qdq_from=("Conv",), qdq_rule="compute"),
    OpRow("matmul", "intsim.steps.compute", "kernels.gemm.gemm_acc_ref", "matmul", scale_inputs=_QLINEAR,
          same_rank=True, weights="KN", lowered_from=("QLinearMatMul", "MatMulInteger", "QGemm"),
          qdq_from=("MatMul", "Gemm"), qdq_rule="compute"),
    OpRow("add", "intsim.steps.eltwise", "kernels.eltwise.qlinear_add_ref", "broadcast", scale_inputs=_QLINEAR,
          nhwc_reader=True, lowered_from=("QLinearAdd",), qdq_from=("Add",), qdq_rule="binary"),
    OpRow("mul", "intsim.steps.eltwise", "kernels.eltwise.qlinear_mul_ref", "broadcast", scale_inputs=_QLINEAR,
          nhwc_reader=True, lowered_from=("QLinearMul",), qdq_from=("Mul",), qdq_rule="binary"),
    # y_scale, y_zp, then (x, x_scale, x_zp) per input; an input in other quantization is requantized
    OpRow("concat", "intsim.steps.eltwise", "kernels.lut.apply_table_ref", "concat", scale_inputs=(0,),
          variadic=(2, 3), lowered_from=("QLinearConcat",), qdq_from=("Concat",), qdq_rule="concat"),
    OpRow("lut", "intsim.steps.eltwise", "kernels.lut.apply_table_ref", "data_first", scale_inputs=_UNARY,
          same_rank=True, nhwc_reader=True, lowered_from=("QLinearSigmoid", "QLinearLeakyRelu"),
          qdq_from=("Sigmoid", "LeakyRelu"), qdq_rule="unary"),
    # com.microsoft QLinearSoftmax: a table of float exponentials, a float sum, a float divide
    OpRow("softmax", "intsim.steps.qsoftmax", "kernels.qsoftmax.qlinear_softmax_ref", "softmax",
          scale_inputs=_UNARY, same_rank=True, lowered_from=("QLinearSoftmax",), qdq_from=("Softmax",),
          qdq_rule="unary"),
    # TFLite PRELU: (x, x_scale, x_zp, alpha, alpha_scale, alpha_zp, y_scale, y_zp), alpha broadcast
    OpRow("prelu", "intsim.steps.prelu", "kernels.tflite_prelu.tflite_prelu_ref", "broadcast",
          scale_inputs=_QLINEAR, same_rank=True),
    # TFLite RESIZE_BILINEAR of NHWC codes: (x, x_scale, x_zp, y_scale, y_zp), attrs size, align_corners,
    # half_pixel_centers
    OpRow("resize_bilinear", "intsim.steps.resize", "kernels.tflite_resize.resize_bilinear_ref", "data_first",
          scale_inputs=_UNARY, same_rank=True),
    # TFLite TRANSPOSE_CONV of NHWC codes: conv's input layout, weights (O, KH, KW, I); attrs strides,
    # pads (top, left), out_hw
    OpRow("transpose_conv", "intsim.steps.transpose_conv", "kernels.tflite_transpose_conv.transpose_conv_acc_ref",
          "data_first", scale_inputs=_QLINEAR, same_rank=True),
    # TFLite SUM of 8-bit codes over constant axes (never the batch axis), dimensions kept:
    # (x, x_scale, x_zp, y_scale, y_zp), attr axes
    OpRow("reduce_sum", "intsim.steps.reduce", "kernels.tflite_sum.sum_requant_ref", "data_first",
          scale_inputs=_UNARY, same_rank=True),
    OpRow("avgpool", "intsim.steps.pool", "kernels.pool.avgpool_ref", "data_first", scale_inputs=_UNARY,
          same_rank=True, lowered_from=("QLinearAveragePool",), qdq_from=("AveragePool",), qdq_rule="unary"),
    OpRow("global_avgpool", "intsim.steps.pool", "kernels.pool.global_avgpool_ref", "data_first",
          scale_inputs=_UNARY, same_rank=True, nhwc_reader=True, lowered_from=("QLinearGlobalAveragePool",),
          qdq_from=("GlobalAveragePool",), qdq_rule="unary"),
    OpRow("quantize", "intsim.steps.quant", "kernels.eltwise.quantize_linear_ref", "quant", scale_inputs=(1,),
          same_rank=True, dumped=False, lowered_from=("QuantizeLinear",) + _QONNX_QUANT),
    OpRow("dequantize", "intsim.steps.quant", "kernels.eltwise.dequantize_linear_ref", "quant",
          integer_arith=False, scale_inputs=(1,), same_rank=True, dumped=False,
          lowered_from=("DequantizeLinear",) + _QONNX_QUANT),
    OpRow("dynamic_quantize", "intsim.steps.quant", "intsim.steps.quant.dynamic_quantize", "whole_tensor",
          dumped=False, lowered_from=("DynamicQuantizeLinear",)),
    # QONNX Trunc computes in float32 as qonnx does: its NumPy step is the reference; the
    # format defines its arithmetic, the same under every target (no target rule)
    OpRow("qonnx_trunc", "intsim.steps.quant", STEP_IS_REFERENCE, "trunc", same_rank=True,
          integer_arith=False, lowered_from=("Trunc",)),
    # standard ONNX ops (importer.generic.lower_generic, the fallback for every op without a
    # lowering of its own): integers through ONNX_MOVEMENT ops, float islands on the ONNX reference
    OpRow("onnx", "intsim.steps.onnx_op", "onnx.reference.ReferenceEvaluator", "onnx", integer_arith=False,
          lowered_from=MS_FLOAT_OPS + ("QAttention",)),   # QAttention: MatMulInteger (matmul) + float onnx nodes
)

OPS: dict[str, OpRow] = {r.op: r for r in _ROWS}


def accumulates(op: str) -> bool:
    """IR op `op` is GEMM-like (`OpRow.accumulates`)."""
    r = OPS.get(op)
    return r is not None and r.accumulates


def qdq_target(op_type: str) -> Optional[str]:
    """The IR op a QDQ pattern around ONNX op `op_type` becomes (None: no integer fusion)."""
    for r in _ROWS:
        if op_type in r.qdq_from:
            return r.op
    return None


def float_compute(graph) -> list:
    """(node, reason) for each ONNX compute node (ONNX_COMPUTE, MS_COMPUTE) the graph runs in float; the
    reason is the one the QDQ pass recorded (attrs["float_reason"])."""
    def is_compute(n):
        if n.attrs.get("domain"):
            return n.attrs.get("op_type") in MS_COMPUTE and not n.attrs.get("integer_projection")
        return n.attrs.get("op_type") in ONNX_COMPUTE
    return [(n, n.attrs.get("float_reason", "no quantized pattern around it"))
            for n in graph.nodes if n.op == "onnx" and is_compute(n)]


def float_compute_message(graph) -> str:
    """One line naming the compute nodes left float and why ("" when there are none)."""
    found = float_compute(graph)
    if not found:
        return ""
    parts = [f"'{n.name}' ({n.attrs['op_type']}): {why}" for n, why in found[:4]]
    more = f"; and {len(found) - 4} more" if len(found) > 4 else ""
    return (f"{len(found)} compute node(s) run as float islands, not in integers: " + "; ".join(parts) + more)


def reads_nhwc(node) -> bool:
    """The node reads a channels-last input without a layout move."""
    if node.op == "onnx":
        return node.attrs.get("op_type") in ONNX_NHWC_READERS
    r = OPS.get(node.op)
    return r is not None and r.nhwc_reader


def w_channel_axis(node, w) -> int:
    """Axis of an accumulating node's stored weight tensor that holds the output channels."""
    if OPS[node.op].weights == "OIHW":
        return 0
    return w.ndim - 2 if node.attrs.get("transB") else w.ndim - 1


def out_channel_axis(node, ndim: int) -> int:
    """Axis of an accumulating node's output (of rank ndim) that holds the channels."""
    return 1 if OPS[node.op].weights == "OIHW" else ndim - 1


def products_per_output(node, w) -> int:
    """K: the products summed into one accumulator of an accumulating node with weights w."""
    if OPS[node.op].weights == "OIHW":
        return int(w.size // max(w.shape[0], 1))
    return int(w.shape[-1] if node.attrs.get("transB") else w.shape[-2])
