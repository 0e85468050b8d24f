"""Accumulator overflow analysis (DESIGN §4): static bounds, observed ranges, narrow widths.

For a conv or matmul node with K products per output and output channel c,

    acc_c = bias_c + sum_k (x_k - x_zp) * (w_ck - w_zp_c)        (as the kernels add them)

three data-free bounds are computed in exact Python integers, per channel and per layer:

- datatype: x over [qmin, qmax] of its integer type, w over its type:
      acc_c in bias_c -/+ K * max|x - x_zp| * max|w - w_zp_c|
- weights (FINN's weight-aware range, zero points and bias included): x over [xlo, xhi] (the
  clamp range of the producing node when known, else the type), u_k = w_ck - w_zp_c:
      hi_c = bias_c + sum_k max(u_k * (xlo - x_zp), u_k * (xhi - x_zp))     lo_c: min instead
  For a padded conv, taps outside the image add 0; hi_c/lo_c are the extremes over the
  distinct padding patterns that occur (exact, when the input's H and W are known).
- a2q: P_c = ceil(alpha + log2(1 + 2**-alpha) + 1), alpha = log2(||w_c - w_zp_c||_1) + N - signed(x),
  evaluated exactly as P_c = 1 + ceil(log2(||u||_1 * 2**(N - signed) + 1)) (the same number:
  alpha + log2(1 + 2**-alpha) = log2(2**alpha + 1)). It ignores bias and x_zp, as A2Q does.

`signed_bits(lo, hi)` is the least N with -2**(N-1) <= lo and hi <= 2**(N-1) - 1. When every
x range contains x_zp (so each term's extreme has the sign that grows the sum), no partial
sum in the K order exceeds the final weight-aware extremes, so the weight-aware bits also
suffice for `saturate`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from kernels.conv import conv_out_hw

from ..accumulator import Accumulator
from ..errors import IntsimError
from ..ir import IntType
from ..ops import accumulates, float_compute, float_compute_message
from ..passes.fused_activation import prepare_for_target
from ..runtime import Program
from ..steps.compute import conv_geom
from ..targets import get_target

RANGE_KEEPING = ("MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                 "Slice", "Gather", "Pad", "Resize", "SpaceToDepth", "DepthToSpace")
EXACT_REFERENCE = Accumulator(bits=63, overflow="wrap")  # exact for every realistic layer
"""The accumulator used for observed ranges and sweep references: sums in the K order with
no pair saturation, held at 63 bits (nothing in an int8/int16 model gets there)."""


def signed_bits(lo: int, hi: int) -> int:
    """Least N >= 1 such that [lo, hi] fits N-bit two's complement."""
    lo, hi = int(lo), int(hi)
    return 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0)


def a2q_bits(l1: int, in_bits: int, in_signed: bool) -> int:
    """A2Q's P = ceil(alpha + log2(1 + 2**-alpha) + 1), alpha = log2(l1) + N - signed, exactly."""
    v = int(l1) * (1 << (in_bits - int(bool(in_signed)))) + 1
    return 1 + (v - 1).bit_length()


# ---------------------------------------------------------------------------- layer params
@dataclass
class LayerParams:
    """One compute node's integers, centred weights in the canonical K order."""
    node: str
    op: str
    u: np.ndarray            # (M, Cg, KH, KW) int64: w - w_zp per output channel (matmul: (N, K, 1, 1))
    bias: list               # M Python ints
    w_zp: list               # M Python ints
    x_zp: int
    x_type: IntType
    w_type: IntType
    x_lo: int
    x_hi: int
    pad_masks: list = field(default_factory=list)  # (KH, KW) bool arrays; [] = dense only

    @property
    def k(self) -> int:
        return int(np.prod(self.u.shape[1:]))


def _const(graph, name):
    if not name:
        return None
    if name not in graph.constants:
        raise KeyError(name)
    return np.asarray(graph.constants[name])


def _int_type(arr: np.ndarray) -> IntType:
    return IntType(arr.dtype.itemsize * 8, arr.dtype.kind == "i")


def _producer_clamp(graph, tensor: str):
    """(lo, hi) of the node producing `tensor` (through range-keeping data movement), or None."""
    producers = graph.producers()
    seen = 0
    while tensor in producers and seen < 64:
        p = producers[tensor]
        if "lo" in p.attrs and "hi" in p.attrs:
            return int(p.attrs["lo"]), int(p.attrs["hi"])
        if p.op == "onnx" and p.attrs.get("op_type") in RANGE_KEEPING and p.inputs:
            tensor, seen = p.inputs[0], seen + 1
            continue
        return None
    return None


def _x_range(graph, node, x_type: IntType):
    lo, hi = x_type.qmin, x_type.qmax
    clamp = _producer_clamp(graph, node.inputs[0])
    if clamp is not None:
        lo, hi = max(lo, clamp[0]), min(hi, clamp[1])
    return lo, hi


def _per_channel(v, m: int) -> list:
    if v is None:
        return [0] * m
    a = np.asarray(v).reshape(-1)
    return [int(t) for t in (np.broadcast_to(a, (m,)) if a.size == 1 else a)]


def layer_params(graph, node) -> Optional[LayerParams]:
    """The integers of a conv/matmul node, or None when its weights are not constants."""
    ins = list(node.inputs) + [""] * (9 - len(node.inputs))
    try:
        w = _const(graph, ins[3])
        x_zp, w_zp, bias = _const(graph, ins[2]), _const(graph, ins[5]), _const(graph, ins[8])
    except KeyError:
        return None
    x_t = graph.tensors.get(ins[0])
    x_type = x_t.dtype if x_t is not None and isinstance(x_t.dtype, IntType) else None
    if x_type is None:
        x_type = _int_type(x_zp) if x_zp is not None else IntType(8, False)
    if node.op == "matmul":
        if w.ndim != 2:
            return None
        w = w.T if node.attrs.get("transB") else w
        u4 = w.T[:, :, None, None]
    else:
        u4 = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2]) if w.ndim == 3 else w
    m = u4.shape[0]
    u = u4.astype(np.int64) - np.asarray(_per_channel(w_zp, m), np.int64)[:, None, None, None]
    xz = 0 if x_zp is None else int(np.asarray(x_zp).reshape(-1)[0])
    lo, hi = _x_range(graph, node, x_type)
    p = LayerParams(node.name, node.op, u, _per_channel(bias, m), _per_channel(w_zp, m), xz, x_type,
                    _int_type(w), lo, hi)
    if node.op == "conv":
        p.pad_masks = _pad_masks(graph, node, u.shape)
    return p


def _pad_masks(graph, node, ushape) -> list:
    """The padding masks of a conv node ([] when the input's H and W are unknown)."""
    x_t = graph.tensors.get(node.inputs[0])
    shape = getattr(x_t, "shape", None)
    if not shape or len(shape) not in (3, 4) or any(d is None or d <= 0 for d in shape[2:]):
        return []
    one_d = len(shape) == 3
    h, wd = (1, shape[2]) if one_d else (shape[2], shape[3])
    g = conv_geom(node, np.empty((1, 1, h, wd), np.int8), np.empty((1, 1, ushape[2], ushape[3]), np.int8), one_d)
    return conv_pad_masks(h, wd, ushape[2], ushape[3], g)


def conv_pad_masks(h: int, w: int, kh: int, kw: int, geom) -> list:
    """The distinct (KH, KW) boolean masks of in-image taps over all output positions of a
    conv (kernels.conv.ConvGeom) on an h x w input."""
    oh, ow = conv_out_hw(h, w, kh, kw, geom)
    rows = {tuple(0 <= oy * geom.stride_h - geom.pad_top + ky * geom.dil_h < h for ky in range(kh))
            for oy in range(max(oh, 0))}
    cols = {tuple(0 <= ox * geom.stride_w - geom.pad_left + kx * geom.dil_w < w for kx in range(kw))
            for ox in range(max(ow, 0))}
    return [np.outer(r, c) for r in sorted(rows) for c in sorted(cols)]


# ---------------------------------------------------------------------------------- bounds
def _as_object_if_wide(u: np.ndarray, xmag: int) -> np.ndarray:
    umax = int(np.abs(u).max(initial=0))
    return u.astype(object) if umax * xmag * max(u[0].size, 1) >= (1 << 62) else u


def datatype_range(p: LayerParams) -> list:
    """[(lo_c, hi_c)]: bias_c -/+ K * max|x - x_zp| * max|w - w_zp_c| over the full types."""
    amax = max(p.x_type.qmax - p.x_zp, p.x_zp - p.x_type.qmin)
    out = []
    for b, wzp in zip(p.bias, p.w_zp):
        span = p.k * amax * max(p.w_type.qmax - wzp, wzp - p.w_type.qmin)
        out.append((b - span, b + span))
    return out


def weight_range(p: LayerParams) -> list:
    """[(lo_c, hi_c)]: the exact extremes of acc_c over every x in [x_lo, x_hi] (module docstring)."""
    a, b = p.x_lo - p.x_zp, p.x_hi - p.x_zp
    u = _as_object_if_wide(p.u, max(abs(a), abs(b)))
    t_hi = np.maximum(u * a, u * b)
    t_lo = np.minimum(u * a, u * b)
    masks = p.pad_masks or [np.ones(p.u.shape[2:], bool)]
    out = []
    for c, bias in enumerate(p.bias):
        his = [int((t_hi[c] * mk[None]).sum()) for mk in masks]
        los = [int((t_lo[c] * mk[None]).sum()) for mk in masks]
        out.append((bias + min(los), bias + max(his)))
    return out


def a2q_channel_bits(p: LayerParams) -> list:
    """A2Q bits per output channel from ||w_c - w_zp_c||_1 and the input type."""
    return [a2q_bits(int(np.abs(p.u[c]).sum()), p.x_type.bits, p.x_type.signed) for c in range(p.u.shape[0])]


def static_bounds(p: LayerParams) -> dict:
    """Per channel and per layer: ranges (Python ints) and the signed bits each needs."""
    dt, wa, a2 = datatype_range(p), weight_range(p), a2q_channel_bits(p)
    layer = lambda rs: (min(r[0] for r in rs), max(r[1] for r in rs))  # noqa: E731
    return {
        "channels": {"datatype": dt, "weights": wa, "a2q_bits": a2,
                     "datatype_bits": [signed_bits(*r) for r in dt],
                     "weights_bits": [signed_bits(*r) for r in wa]},
        "datatype": layer(dt), "weights": layer(wa),
        "bits": {"datatype": signed_bits(*layer(dt)), "weights": signed_bits(*layer(wa)), "a2q": max(a2)},
    }


# ------------------------------------------------------------------------------- running
def _program(graph, target, accumulator):
    return Program(graph, target=target, accumulator=accumulator)


def observe(graph, feeds: dict, target="ort") -> dict:
    """node -> {"min": [per channel], "max": [...]} of the exact accumulators on `feeds`."""
    _, taps = _program(graph, target, EXACT_REFERENCE).run(feeds, taps=True)
    return {name: {"min": [int(v) for v in t["acc_min"]], "max": [int(v) for v in t["acc_max"]]}
            for name, t in taps.items() if "acc_min" in t}


def simulate(graph, feeds: dict, accumulator: Accumulator, target="ort"):
    """(outputs, taps) of one run with `accumulator` (events per node in taps[...]["overflow_events"])."""
    return _program(graph, target, accumulator).run(feeds, taps=True)


def _mismatch(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a != b)) / a.size if a.size else 0.0


# -------------------------------------------------------------------------------- analysis
def observe_chunk(graph, feeds: dict, accumulator: Accumulator, target="ort", programs=None) -> dict:
    """The mergeable observations of `feeds` (merge_observations adds chunks up exactly):
    samples, and per accumulating node its exact accumulator range per channel, the overflow
    events at `accumulator` and, per output, [mismatching elements, elements] against the exact
    run. programs: (exact Program, Program at `accumulator`) to reuse, else built here."""
    ref, sim = programs or (_program(graph, target, EXACT_REFERENCE), _program(graph, target, accumulator))
    _, ref_taps = ref.run(feeds, taps=True)
    _, sim_taps = sim.run(feeds, taps=True)
    nodes = {}
    for node in graph.nodes:
        r, t = ref_taps.get(node.name), sim_taps.get(node.name)
        if not accumulates(node.op) or (r is None and t is None):
            continue
        e = nodes[node.name] = {}
        if r is not None and "acc_min" in r:
            e["acc_min"], e["acc_max"] = np.asarray(r["acc_min"]), np.asarray(r["acc_max"])
        if t is not None:
            e["events"] = int(t.get("overflow_events", 0))
            e["mismatch"] = {k: [int(np.count_nonzero(t["outputs"][k] != r["outputs"][k])), int(t["outputs"][k].size)]
                             for k in t["outputs"]}
    return {"samples": _samples(graph, feeds), "nodes": nodes}


def merge_observations(parts: list) -> dict:
    """observe_chunk results of disjoint chunks, merged: what one run on all of them observes."""
    out = {"samples": 0, "nodes": {}}
    for p in parts:
        out["samples"] += p["samples"]
        for name, e in p["nodes"].items():
            m = out["nodes"].setdefault(name, {})
            if "acc_min" in e:
                m["acc_min"] = np.minimum(m["acc_min"], e["acc_min"]) if "acc_min" in m else e["acc_min"]
                m["acc_max"] = np.maximum(m["acc_max"], e["acc_max"]) if "acc_max" in m else e["acc_max"]
            if "events" in e:
                m["events"] = m.get("events", 0) + e["events"]
                mm = m.setdefault("mismatch", {})
                for k, (c, n) in e["mismatch"].items():
                    mm[k] = [mm.get(k, [0, 0])[0] + c, mm.get(k, [0, 0])[1] + n]
    return out


def analyze(graph, feeds: Optional[dict] = None, acc_bits: int = 32, overflow: str = "wrap",
            target: str = "ort", model: str = "", tile: Optional[int] = None, *,
            observations: Optional[dict] = None) -> dict:
    """The `intsim overflow` report as a dict (JSON-ready). Without feeds (nor `observations`,
    merged observe_chunk results of the samples, computed elsewhere): static bounds only."""
    if overflow not in ("wrap", "saturate"):
        raise IntsimError(f"overflow analysis simulates wrap or saturate, not '{overflow}'")
    acc = Accumulator(acc_bits, overflow, tile)       # refuses a width outside 2..64 or a tile < 1 up front
    graph = prepare_for_target(graph, get_target(target))   # the clamps the layers' inputs carry
    if feeds is not None:
        observations = observe_chunk(graph, feeds, acc, target)
    nodes = observations["nodes"] if observations is not None else {}
    layers = []
    for node in graph.nodes:
        if accumulates(node.op):
            layers.append(_layer_report(graph, node, acc_bits, nodes.get(node.name)))
    rep = {"model": model, "acc_bits": acc_bits, "acc_overflow": overflow, "acc_tile": tile, "target": target,
           "samples": observations["samples"] if observations is not None else 0, "layers": layers}
    rep["summary"] = _summary(layers, acc_bits)
    islands = float_compute_message(graph)
    if islands:
        rep["float_islands"] = [{"node": n.name, "op_type": n.attrs["op_type"], "reason": why}
                                for n, why in float_compute(graph)]
        if feeds is None:       # with feeds, the Program that runs them has warned already
            warnings.warn(islands, stacklevel=2)
    if not layers:
        rep["reason"] = "no integer conv/matmul layers: " + (islands or "the model has no conv/matmul/gemm")
    return rep


def _samples(graph, feeds):
    if feeds is None:
        return 0
    x = feeds[graph.inputs[0]]
    return int(x.shape[0]) if np.ndim(x) else 1


def _layer_report(graph, node, acc_bits, obs) -> dict:
    p = layer_params(graph, node)
    d = {"node": node.name, "op": node.op, "k": None, "bits": {"datatype": None, "weights": None, "a2q": None,
                                                               "observed": None},
         "observed_min": None, "observed_max": None, "overflow_events": None, "headroom_bits": None}
    if p is not None:
        sb = static_bounds(p)
        d.update(k=p.k, channels=int(p.u.shape[0]), input_range=[p.x_lo, p.x_hi], bits=dict(sb["bits"], observed=None),
                 datatype_range=list(sb["datatype"]), weights_range=list(sb["weights"]),
                 per_channel={"datatype_bits": sb["channels"]["datatype_bits"],
                              "weights_bits": sb["channels"]["weights_bits"],
                              "a2q_bits": sb["channels"]["a2q_bits"]})
    obs = obs or {}
    if "acc_min" in obs:
        lo, hi = int(np.min(obs["acc_min"])), int(np.max(obs["acc_max"]))
        d.update(observed_min=lo, observed_max=hi)
        d["bits"]["observed"] = signed_bits(lo, hi)
        d["per_channel_observed"] = {"min": [int(v) for v in obs["acc_min"]],
                                     "max": [int(v) for v in obs["acc_max"]]}
    if "events" in obs:
        d["overflow_events"] = obs["events"]
        d["output_mismatch"] = sum((float(c) / n if n else 0.0) for c, n in obs["mismatch"].values())
    need = d["bits"]["observed"] if d["bits"]["observed"] is not None else d["bits"]["weights"]
    d["headroom_bits"] = None if need is None else acc_bits - need
    return d


def _summary(layers, acc_bits) -> dict:
    def worst(key):
        vals = [l["bits"][key] for l in layers if l["bits"][key] is not None]
        return max(vals) if vals else None
    return {k: worst(k) for k in ("datatype", "weights", "a2q", "observed")} | {
        "layers_over_width": [l["node"] for l in layers
                              if (l["bits"]["observed"] or l["bits"]["weights"] or 0) > acc_bits]}


# ----------------------------------------------------------------------------------- sweep
def split_labels(feeds: dict):
    """(feeds without 'labels', labels or None)."""
    feeds = dict(feeds)
    labels = feeds.pop("labels", None)
    return feeds, (None if labels is None else np.asarray(labels).reshape(-1))


def _accuracy(outs: dict, labels) -> Optional[float]:
    if labels is None:
        return None
    y = next(iter(outs.values()))
    pred = np.asarray(y).reshape(len(labels), -1).argmax(axis=1)
    return float(np.mean(pred == labels))


def sweep(graph, feeds: dict, widths=range(12, 33), modes=("wrap", "saturate"), target="ort",
          labels=None, model: str = "", progress=None) -> dict:
    """Run at every width and mode; output mismatch against the 32-bit wrap result (the exact
    int32 sums) and, with labels, top-1 accuracy. `narrowest` maps each mode to the least
    width from which every wider one in the sweep has no mismatch (None if even the widest has).
    progress(row, done, total), if given, is called after each width."""
    ref = _program(graph, target, Accumulator(32, "wrap")).run(feeds)
    rows = []
    for mode in modes:
        for bits in widths:
            outs, taps = simulate(graph, feeds, Accumulator(int(bits), mode), target)
            rows.append({"mode": mode, "bits": int(bits),
                         "mismatch": float(np.mean([_mismatch(outs[k], ref[k]) for k in ref])),
                         "events": int(sum(t.get("overflow_events", 0) for t in taps.values())),
                         "accuracy": _accuracy(outs, labels)})
            if progress is not None:
                progress(rows[-1], len(rows), len(modes) * len(widths))
    return {"model": model, "target": target, "samples": _samples(graph, feeds),
            "reference_accuracy": _accuracy(ref, labels), "rows": rows,
            "narrowest": {m: _narrowest([r for r in rows if r["mode"] == m]) for m in modes}}


def _narrowest(rows) -> Optional[int]:
    best = None
    for r in sorted(rows, key=lambda r: -r["bits"]):
        if r["mismatch"] != 0:
            break
        best = r["bits"]
    return best


def sweep_table(res: dict) -> str:
    """A plain-text table of a sweep result."""
    lines = [f"{'mode':<9} {'bits':>4} {'mismatch':>10} {'events':>12} {'accuracy':>9}"]
    for r in res["rows"]:
        acc = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        lines.append(f"{r['mode']:<9} {r['bits']:>4} {r['mismatch']:>10.6f} {r['events']:>12} {acc:>9}")
    for m, b in res["narrowest"].items():
        lines.append(f"narrowest width with no mismatch ({m}): {b}")
    if res.get("reference_accuracy") is not None:
        lines.append(f"32-bit accuracy: {res['reference_accuracy']:.4f}")
    return "\n".join(lines)


def plot_sweep(res: dict, path: str) -> None:
    """Mismatch (and accuracy) against width, one line per mode, written by matplotlib."""
    import matplotlib   # deferred: optional, and heavy to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    has_acc = res.get("reference_accuracy") is not None
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 3.6), squeeze=False)
    for mode in res["narrowest"]:
        rs = [r for r in res["rows"] if r["mode"] == mode]
        axes[0, 0].plot([r["bits"] for r in rs], [r["mismatch"] for r in rs], marker="o", label=mode)
        if has_acc:
            axes[0, 1].plot([r["bits"] for r in rs], [r["accuracy"] for r in rs], marker="o", label=mode)
    axes[0, 0].set(xlabel="accumulator bits", ylabel="output mismatch vs 32-bit", title=res["model"])
    if has_acc:
        axes[0, 1].set(xlabel="accumulator bits", ylabel="top-1 accuracy", title=f"{res['model']} accuracy")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
