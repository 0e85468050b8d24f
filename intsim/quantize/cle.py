"""Cross-layer equalization (Nagel et al. 2019; white paper §4.2) of consecutive convolutions.

For a pair conv1 -> [ReLU | ReLU6 | nothing] -> conv2, with r1_i = max|W1[i,...]| (output
channel i of conv1) and r2_i = max|W2[..., i, ...]| (input channel i of conv2, also the
depthwise case where W2 has shape (C, 1, kh, kw)):

    s_i = sqrt(r1_i / r2_i)            (s_i = 1 where either range is 0)
    W1[i] /= s_i,  b1[i] /= s_i,  W2[:, i] *= s_i

so both ranges become sqrt(r1_i * r2_i). ReLU is positively homogeneous, relu(x/s) = relu(x)/s,
so the float function is unchanged. ReLU6 is not: as the white paper does, a ReLU6 (Clip(0, 6))
between an equalized pair is replaced by ReLU, a deliberate (reported) change of the float
model. Sweeps over all pairs repeat until no scale moves by more than `tol`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import FloatGraph, Layer


@dataclass
class ClePair:
    first: Layer
    second: Layer


def find_pairs(fg: FloatGraph) -> list:
    """Conv pairs whose intermediate tensor (after an optional ReLU/ReLU6) feeds only conv2."""
    layers = fg.layers()
    by_input: dict = {}
    for layer in layers:
        by_input.setdefault(layer.node.input[0], []).append(layer)
    cons = fg.consumers()
    pairs = []
    for l1 in layers:
        if l1.kind != "conv" or (l1.act is not None and l1.act_lo != 0.0):
            continue
        mid = l1.output
        nxt = by_input.get(mid, [])
        if len(cons.get(mid, [])) != 1 or len(nxt) != 1 or nxt[0].kind != "conv" or mid in fg.outputs:
            continue
        pairs.append(ClePair(l1, nxt[0]))
    return pairs


def input_channel_ranges(w2: np.ndarray, groups: int) -> np.ndarray:
    """r2_i = max |W2[:, i]| over the output channels that read input channel i."""
    cout, cpg = w2.shape[:2]
    opg = cout // groups
    a = np.abs(w2).reshape(groups, opg, cpg, -1).max(axis=(1, 3))   # (groups, cpg)
    return a.reshape(-1)


def scale_input_channels(w2: np.ndarray, groups: int, s: np.ndarray) -> np.ndarray:
    cout, cpg = w2.shape[:2]
    opg = cout // groups
    return (w2.reshape(groups, opg, cpg, -1) * s.reshape(groups, 1, cpg, 1)).reshape(w2.shape)


def equalize_pair(fg: FloatGraph, pair: ClePair) -> np.ndarray:
    """Apply one equalization to the pair in place; returns the scales s (float64)."""
    w1 = fg.inits[pair.first.weight].astype(np.float64)
    w2 = fg.inits[pair.second.weight].astype(np.float64)
    r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
    r2 = input_channel_ranges(w2, pair.second.groups)
    ok = (r1 > 0) & (r2 > 0)
    s = np.where(ok, np.sqrt(np.where(ok, r1, 1.0) / np.where(ok, r2, 1.0)), 1.0)
    fg.inits[pair.first.weight] = (w1 / s.reshape(-1, 1, 1, 1)).astype(np.float32)
    if pair.first.bias is not None:
        fg.inits[pair.first.bias] = (fg.inits[pair.first.bias].astype(np.float64) / s).astype(np.float32)
    fg.inits[pair.second.weight] = scale_input_channels(w2, pair.second.groups, s).astype(np.float32)
    return s


def relu6_to_relu(fg: FloatGraph, pair: ClePair) -> bool:
    """Turn a bounded Clip between the pair into Relu; True when it did."""
    act = pair.first.act
    if act is None or act.op_type != "Clip" or not np.isfinite(pair.first.act_hi):
        return False
    act.op_type = "Relu"
    del act.input[1:]
    del act.attribute[:]
    return True


def equalize(fg: FloatGraph, max_sweeps: int = 20, tol: float = 1e-4) -> dict:
    """Equalize every pair of `fg` in place. Returns {"pairs": [(conv1, conv2)], "sweeps": n,
    "relu6_replaced": [conv1 names]}."""
    pairs = find_pairs(fg)
    replaced = [p.first.name for p in pairs if relu6_to_relu(fg, p)]
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):
        moved = max((float(np.max(np.abs(np.log(equalize_pair(fg, p))))) for p in pairs), default=0.0)
        if moved < tol:
            break
    return {"pairs": [(p.first.name, p.second.name) for p in pairs], "sweeps": sweeps,
            "relu6_replaced": replaced}


def range_spread(r: np.ndarray) -> float:
    """max/min of the non-zero channel ranges (1.0 when fewer than one)."""
    r = np.asarray(r, dtype=np.float64)
    r = r[r > 0]
    return float(r.max() / r.min()) if r.size else 1.0
