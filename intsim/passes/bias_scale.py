"""A check, not a rewrite: float Conv / Gemm islands whose bias is dequantized at a scale other
than x_scale * w_scale are named in a warning.

Integer runtimes add bias codes to the accumulator, i.e. at x_scale * w_scale[c] whatever
scale the bias tensor states (TFLite's conv.cc / fully_connected.cc, onnxruntime's fused
QLinearConv); the float graph adds b * b_scale. Where the two scales differ the ONNX graph
states another bias than the source runtime computes: the TFLite converter shares one bias
tensor between layers whose float biases are equal, quantized at the first layer's
x_scale * w_scale, and tf2onnx's DequantizeLinear then carries that scale to the others.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..ir import Graph

_OPS = ("Conv", "Gemm", "ConvTranspose")


def bias_scale_notes(graph: Graph, rtol: float = 1e-5) -> list:
    """Sentences on each float `onnx` Conv/Gemm/ConvTranspose whose x, w and bias are
    DequantizeLinear outputs (constant scales) with b_scale != f32(x_scale * w_scale)."""
    dq = {n.outputs[0]: n for n in graph.nodes if n.op == "dequantize"}

    def scale(name):
        node = dq.get(name)
        if node is None or node.inputs[1] not in graph.constants:
            return None
        return np.asarray(graph.constants[node.inputs[1]], np.float64).reshape(-1)

    notes = []
    for n in graph.nodes:
        if n.op != "onnx" or n.attrs.get("op_type") not in _OPS or len(n.inputs) < 3 or not n.inputs[2]:
            continue
        sx, sw, sb = scale(n.inputs[0]), scale(n.inputs[1]), scale(n.inputs[2])
        if sx is None or sw is None or sb is None or sx.size != 1 or sb.size not in (1, sw.size):
            continue
        want = (np.float32(sx[0]) * sw.astype(np.float32)).astype(np.float64)
        ratio = np.broadcast_to(sb, want.shape) / want
        if np.all(np.abs(ratio - 1) <= rtol):
            continue
        notes.append(f"{n.origin}: bias '{dq[n.inputs[2]].inputs[0]}' is dequantized at scale {float(sb[0]):.9g}, "
                     f"x_scale*w_scale is {float(want[0]):.9g} (ratio {float(ratio.reshape(-1)[0]):.6g}): integer "
                     f"runtimes (TFLite, onnxruntime's fused kernels) add the bias codes at x_scale*w_scale, this "
                     f"float graph at the bias's own scale (a bias tensor shared between layers does this)")
    return notes


def warn_bias_scales(graph: Graph) -> Graph:
    """The graph unchanged; one warning listing bias_scale_notes, if any."""
    notes = bias_scale_notes(graph)
    if notes:
        warnings.warn("; ".join(notes), stacklevel=2)
    return graph
