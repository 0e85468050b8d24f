"""Graph -> Graph passes, one idea each."""
from __future__ import annotations

from ..ir import Graph
from .bias_scale import warn_bias_scales
from .dead_code import remove_dead_nodes
from .fold_bn import fold_batchnorm
from .fuse_qdq import fuse_qdq
from .qdq_policy import INTEGER
from .shape_of_quantized import read_shapes_from_integers
from .sink_qonnx_dequantize import sink_qonnx_dequantize


def import_passes(graph: Graph, fusion: str = "onnxruntime") -> Graph:
    """The passes every imported graph goes through, in order; `fusion` is the QDQ fusion
    policy (passes/qdq_policy.py), the target's `qdq_fusion`."""
    graph = fold_batchnorm(graph)
    graph = sink_qonnx_dequantize(graph, qdq=fusion == INTEGER)
    graph = fuse_qdq(graph, fusion)
    graph = read_shapes_from_integers(graph)
    return warn_bias_scales(remove_dead_nodes(graph))
