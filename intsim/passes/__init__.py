"""Graph -> Graph passes, one idea each."""
from __future__ import annotations

from ..ir import Graph
from .dead_code import remove_dead_nodes
from .fold_bn import fold_batchnorm
from .fuse_qdq import fuse_qdq
from .sink_qonnx_dequantize import sink_qonnx_dequantize


def import_passes(graph: Graph) -> Graph:
    """The passes every imported graph goes through, in order."""
    graph = fold_batchnorm(graph)
    graph = sink_qonnx_dequantize(graph)
    graph = fuse_qdq(graph)
    return remove_dead_nodes(graph)
