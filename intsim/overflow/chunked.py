"""`intsim overflow --jobs N | --scheduler ADDRESS`: the observed ranges and overflow events of a
dataset, chunk by chunk on Dask workers (intsim.runtime.distributed), merged by
merge_observations into the report one run on all samples gives."""
from __future__ import annotations

import numpy as np

from ..accumulator import Accumulator
from ..pipeline import import_onnx
from ..progress import Bar
from ..runtime import Program, distributed
from ..targets.registry import get_target
from .analysis import EXACT_REFERENCE, analyze, merge_observations, observe_chunk

CHUNK = 32


class Session:
    """One worker's model: the graph, the exact Program and the one at the chosen accumulator."""

    def __init__(self, model_bytes: bytes, acc_bits: int, overflow: str, target, tile, fusion=None):
        self.graph = import_onnx(model_bytes, fusion or get_target(target).qdq_fusion)
        self.acc = Accumulator(acc_bits, overflow, tile)
        self.programs = (Program(self.graph, target=target, accumulator=EXACT_REFERENCE),
                         Program(self.graph, target=target, accumulator=self.acc))
        self.target = target


def observe_part(s: Session, feeds: dict) -> dict:
    """observe_chunk of one chunk on the worker's session."""
    return observe_chunk(s.graph, feeds, s.acc, s.target, s.programs)


def _samples(feeds: dict) -> int:
    return int(np.asarray(next(iter(feeds.values()))).shape[0])


def analyze_chunked(model_bytes: bytes, graph, feeds: dict, acc_bits: int = 32, overflow: str = "wrap",
                    target: str = "ort", model: str = "", tile=None, *, jobs: int = 2,
                    scheduler=distributed.LOCAL, progress: bool = False, chunk: int = CHUNK,
                    fusion: str | None = None) -> dict:
    """analyze(graph, feeds, ...) with the samples in chunks on Dask workers: a local cluster of
    `jobs` workers (scheduler LOCAL), or the workers of the scheduler at that address. The same
    report, to the byte. `fusion`: the QDQ fusion policy `graph` was imported with (default the
    target's), which each worker's import repeats."""
    Accumulator(acc_bits, overflow, tile)       # refused here, before a cluster starts
    n = _samples(feeds)
    args = (model_bytes, acc_bits, overflow, target, tile, fusion)
    c = distributed.client(jobs, scheduler)
    try:
        size = distributed.chunk_size(n, distributed.workers(c), chunk, progress)
        parts = [{k: np.asarray(v)[i:i + size] for k, v in feeds.items()} for i in range(0, n, size)]
        bar = Bar("overflow", n, progress)
        results = distributed.map_chunks(c, Session, args, distributed.session_key(*args), observe_part, parts,
                                         [_samples(p) for p in parts], bar.step)
    finally:
        distributed.close(c)
    return analyze(graph, None, acc_bits, overflow, target, model, tile, observations=merge_observations(results))
