"""Graph -> Graph passes, one idea each."""
from __future__ import annotations

from ..ir import Graph
from .bias_scale import warn_bias_scales
from .dead_code import remove_dead_nodes
from .fold_bn import fold_batchnorm
from .fuse_qdq import fuse_qdq


def import_passes(graph: Graph) -> Graph:
    """The passes every imported graph goes through, in order."""
    graph = fold_batchnorm(graph)
    graph = fuse_qdq(graph)
    return warn_bias_scales(remove_dead_nodes(graph))
