"""Which QDQ patterns become integer nodes: the three fusion policies of `fuse_qdq`.

    "onnxruntime"  what onnxruntime's CPU optimizer (1.32) fuses, and nothing more: the `ort*`
                   targets reproduce its deployed session, float where it stays float.
    "integer"      what the format means in integers on an accelerator that runs the whole
                   QDQ graph (power-of-two NPUs, the `pow2*` targets): a Relu/Clip before the Q
                   is always the clamp stage, 16-bit activations and a bias with its own scale
                   (Quark XINT8) fuse; an Add/Mul of 8/16-bit codes fuses whatever their types
                   (int16 residual adds of Quark A16W8, int8 + int8 -> uint8), the target's
                   add/mul rule computing it; how that bias reaches the accumulator is a target rule
                   (`Target.bias_rule`); a conv/matmul whose input type differs from its output's
                   fuses (Brevitas int8 -> uint8); a DQ moves through MaxPool/Flatten/Reshape to
                   the op it feeds (passes/sink_qonnx_dequantize.py); initializers also listed
                   as graph inputs are the constants the file states (importer, one warning).
    "tflite"       tf2onnx's copies of TFLite models (the `tflite*` targets): what "onnxruntime"
                   fuses, and each pattern whose scales and zero points determine the TFLite
                   builtin op it was converted from, lowered to the IR node the .tflite reader
                   (importer/tflite_model.py) emits for that op, so that the target applies the
                   same rule (passes/qdq_tflite.py): DQ -> Tanh / HardSwish / Sigmoid / LeakyRelu /
                   Relu / Clip(0, 6 | -1, 1) / Softmax -> Q (TANH, HARD_SWISH, LOGISTIC,
                   LEAKY_RELU, RELU, RELU6, RELU_N1_TO_1, SOFTMAX), DQ -> Add / Sub / Mul -> Q,
                   DQ -> ConvTranspose -> Q (TRANSPOSE_CONV), DQ -> Resize linear -> Q
                   (RESIZE_BILINEAR), DQ -> ReduceMean over H, W -> Q (MEAN; a GlobalAveragePool
                   with MEAN's keep_dims read from the op after it), DQ -> MatMul of two
                   activations -> Q (BATCH_MATMUL), DQ -> MatMul -> Add(DQ int32 bias) -> Q
                   (FULLY_CONNECTED of a rank-3 input), DQ -> Q of codes of one 8/16-bit type to
                   another scale (QUANTIZE of integer input), 16-bit pools and concat, and the 16x8
                   Conv / Gemm / ConvTranspose whose bias DequantizeLinear is int64 (invalid ONNX
                   tf2onnx writes; TFLite's 16x8 bias) at x_scale*w_scale. A 16-bit pattern fuses
                   where the .tflite reader models its builtin on int16
                   (importer.tflite_model.int16_modelled), else it stays a float island.

A target names its policy (`Target.qdq_fusion`); `intsim.load` applies it.

onnxruntime facts used by the "onnxruntime" policy, each measured on 1.32 (tests/clients/
test_zoo_nq.py, test_fusion_rules.py):
- ReluQuantFusion (qdq_transformer/relu_quantizelinear.cc) removes Relu -> Q only when the Q's
  zero point is its type's minimum (uint8 0, int8 -128, int16 -32768, uint16 0); ClipQuantFusion
  (clip_quantizelinear.cc) removes Clip -> Q only when [min, max] covers the Q's whole range
  within float epsilon: min - f32(s*(qmin - zp)) <= eps and f32(s*(qmax - zp)) - max <= eps,
  per-tensor (0-d) scale only. An activation that stays keeps the conv/gemm/add out of the
  QDQ fusion: it runs in float (Conv+Relu as FusedConv), then Q.
- Conv/Gemm with 16-bit activations are not fused (no 16-bit QLinearConv/QGemm): DQ -> op -> Q
  runs in float; so are 16-bit Add/Mul and an Add/Mul whose types differ (QDQ selectors: one
  8-bit type for QLinearAdd/QLinearMul).
- WeightBiasQuantization (weight_bias_quantization.cc) rewrites a float 1-D bias of a Conv/Gemm
  whose input is a per-tensor DequantizeLinear and whose output goes (through Relu/Clip, no
  branch) to a QuantizeLinear into DQ(int32 Cast(Round(b / f32(x_scale*w_scale)))), whether
  or not the node then fuses: an unfused node adds that dequantized bias.
"""
from __future__ import annotations

import numpy as np

ONNXRUNTIME = "onnxruntime"
INTEGER = "integer"
TFLITE = "tflite"
POLICIES = (ONNXRUNTIME, INTEGER, TFLITE)


def ort_removes_activation(op_type: str, clip_bounds, scale, zp: int, t) -> bool:
    """onnxruntime's level-1 rewrite drops this Relu/Clip in front of a QuantizeLinear with
    (scale, zp) of integer type `t`. clip_bounds: (min or None, max or None) of a Clip whose
    bounds are constants, or None where they are not."""
    if op_type == "Relu":
        return int(zp) == t.qmin
    if clip_bounds is None or np.asarray(scale).ndim != 0:
        return False
    f32 = np.float32
    s = f32(np.asarray(scale).reshape(()))
    lower, upper = f32(s * f32(t.qmin - int(zp))), f32(s * f32(t.qmax - int(zp)))
    lo = f32(np.finfo(np.float32).min) if clip_bounds[0] is None else f32(clip_bounds[0])
    hi = f32(np.finfo(np.float32).max) if clip_bounds[1] is None else f32(clip_bounds[1])
    eps = np.finfo(np.float32).eps
    return not (eps < f32(lo - lower) or eps < f32(upper - hi))


def check_policy(fusion: str) -> str:
    if fusion not in POLICIES:
        raise ValueError(f"unknown QDQ fusion policy {fusion!r} (known: {', '.join(POLICIES)})")
    return fusion
