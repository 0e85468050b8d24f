"""Snap every quantization scale to the nearest power of two in log2 (`--snap-pow2`), so an
affine model shows what a power-of-two accelerator would compute with the same integer codes:

    s' = 2 ** rint(log2(s))

Only constant scales read by integer IR ops change; each change is reported (tensor, old, new).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, QParams, pow2_exponent
from ..ops import OPS


def _scale_names(graph: Graph) -> set:
    names = set()
    for n in graph.nodes:
        r = OPS.get(n.op)
        idx = r.scale_positions(len(n.inputs)) if r is not None else ()
        names.update(n.inputs[i] for i in idx if n.inputs[i])
    return {s for s in names if s in graph.constants}


def snap(scale: np.ndarray) -> np.ndarray:
    s = np.asarray(scale, np.float64)
    return np.exp2(np.rint(np.log2(s))).astype(np.float32)


def snap_pow2(graph: Graph):
    """Return (new graph, report): report lists (tensor, old scales, new scales) that changed."""
    consts, report = dict(graph.constants), []
    for name in sorted(_scale_names(graph)):
        s = consts[name]
        if s.dtype.kind != "f" or pow2_exponent(s) is not None or np.any(~np.isfinite(s)) or np.any(s <= 0):
            continue
        new = snap(s).reshape(s.shape)
        consts[name] = new
        report.append((name, s.reshape(-1)[:4].tolist(), new.reshape(-1)[:4].tolist()))
    tensors = dict(graph.tensors)
    for name, t in graph.tensors.items():  # keep QParams in step with the snapped scales
        if t.qparams is not None and t.qparams.kind != "pow2" and np.all(np.isfinite(t.qparams.scale)):
            qp = t.qparams
            tensors[name] = t.with_(qparams=QParams.make(snap(qp.scale).reshape(qp.scale.shape), qp.zero_point,
                                                         qp.axis, qp.block_size, name=name))
    return graph.replace(constants=consts, tensors=tensors), report
