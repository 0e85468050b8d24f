"""Parity verification: does intsim's integer pipeline compute what a reference computed, and
if not, where and why (DESIGN §5, issue 4).

    rep = intsim.verify("model.onnx", {"input": x}, reference="ort-fakequant")
    rep.passed, rep.first_divergence, rep.as_dict()

Everything is compared in integer codes: every integer tensor intsim holds that the ONNX model
also computes is exposed as an extra output of a copy of the model, so the reference returns
its own integers; a float graph output produced by DequantizeLinear is mapped back to codes
with that DequantizeLinear's QParams: q = rint(y / scale) + zp (float64, exact for such y).
d = intsim - reference, in LSBs of the tensor. Two views:

- whole model: intsim runs end to end on the feeds, the reference too;
- layer isolated: each intsim node runs alone on the reference's own values of its inputs,
  so a rounding difference inside a layer is told apart from one that arrived from upstream.

Final outputs (pass/fail, exact fraction, max |d|) are judged against the unmodified model
run as it would be deployed (for the onnxruntime references a second, plain session: extra
graph outputs can change onnxruntime's optimizer choices); the tapped run only localizes, and
where its final outputs differ from the plain run's the report says so (reference_consistency)
and its intermediate tensors no longer count towards pass/fail.

The first divergence is the earliest node, in intsim's topological order, whose output differs
(whole-model view) while all its inputs agree. Mismatches are classified by
`intsim.verify.explain` and the share of each class is reported.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import IntsimError, ShapeError
from ..importer.tflite_model import is_tflite
from ..ir import IntType
from ..limits import check_shape
from ..loader import load_model
from ..onnx_core import proto
from ..passes.qdq_policy import check_policy
from ..pipeline import import_onnx
from ..progress import Bar
from ..runtime import Program
from ..runtime import distributed
from ..targets.registry import get_target
from .explain import CLASSES, Explainer
from .refs import PLAIN_SESSION, REFERENCES, exposed_tensors, float_to_codes, make_reference, qonnx_taps, with_outputs
from .tflite_ref import PATH_TARGETS, check_kernel_path, tflite_reference

CHUNK = 32
PROGRESS_INTERVAL = 0.5     # seconds: the bar is redrawn at most this often, and after whole chunks


# ------------------------------------------------------------------------------ statistics
@dataclass
class Stats:
    """Mergeable comparison counts of one tensor: elements, equal elements, max |d|, the
    histogram of d = intsim - reference (LSB) and mismatch classes."""
    elements: int = 0
    equal: int = 0
    max_abs: int = 0
    hist: dict = field(default_factory=dict)
    classes: dict = field(default_factory=dict)

    def add(self, got: np.ndarray, want: np.ndarray) -> np.ndarray:
        d = np.asarray(got, np.int64) - np.asarray(want, np.int64)
        self.elements += int(d.size)
        self.equal += int(np.count_nonzero(d == 0))
        if d.size:
            self.max_abs = max(self.max_abs, int(np.abs(d).max()))
        vals, counts = np.unique(d, return_counts=True)
        for v, c in zip(vals.tolist(), counts.tolist()):
            self.hist[int(v)] = self.hist.get(int(v), 0) + int(c)
        return d

    def add_classes(self, counts: dict) -> None:
        for k, v in counts.items():
            self.classes[k] = self.classes.get(k, 0) + int(v)

    def merge(self, other: "Stats") -> None:
        self.elements += other.elements
        self.equal += other.equal
        self.max_abs = max(self.max_abs, other.max_abs)
        for k, v in other.hist.items():
            self.hist[k] = self.hist.get(k, 0) + v
        self.add_classes(other.classes)

    @property
    def mismatches(self) -> int:
        return self.elements - self.equal

    def as_dict(self) -> dict:
        return {"elements": self.elements,
                "exact_fraction": (self.equal / self.elements) if self.elements else 1.0,
                "max_abs_lsb": self.max_abs,
                "histogram": {str(k): v for k, v in sorted(self.hist.items())},
                "explanations": dict(sorted(self.classes.items()))}


def _merge_maps(into: dict, other: dict) -> None:
    for k, s in other.items():
        if k in into:
            into[k].merge(s)
        else:
            into[k] = s


# --------------------------------------------------------------------------------- context
class _Session:
    """intsim Program + reference runner + exposure map for one model; lives in one process."""

    def __init__(self, model_bytes: bytes, reference: str, target, accumulator, fusion: str | None = None):
        self.model = load_model(model_bytes)
        target = get_target(target)
        self.graph = import_onnx(self.model, fusion or target.qdq_fusion)
        self.prog = Program(self.graph, target=target, accumulator=accumulator)
        self.exposed = exposed_tensors(self.graph, self.model)
        taps = qonnx_taps(self.graph, self.model) if reference == "qonnx" else {}
        self.exposed += [t for t in taps if t not in self.exposed]
        self.ref = make_reference(reference, with_outputs(self.model, self.graph, self.exposed)
                                  if reference != "qonnx" else self.model, self.graph, taps)
        # the deployed session: the unmodified model, the same session options
        self.plain = make_reference(reference, self.model) if reference in PLAIN_SESSION else None
        self.producer = self.graph.producers()
        self.explainer = Explainer(self.prog)
        self.fixed_batch = _fixed_batch(self.model)

    def classify(self, node, env: dict, got, want) -> dict:
        return self.explainer.classify(node, env, got, want)

    def isolate(self, ref: dict, feeds: dict) -> dict:
        """{tensor: Stats} of each node run alone on the reference's values of its inputs."""
        isolated = {}
        for node, fn in self.prog._steps:
            isolated.update(_isolated(self, node, fn, ref, feeds) or {})
        return isolated


class _TfliteSession:
    """intsim on a .tflite and the TFLite interpreter (kernel path `kernel_path`) on the same
    bytes: the exposed tensors are the IR's integer node outputs that the interpreter also holds
    by name (NHWC both). The layer-isolated view runs intsim's steps in order on the
    interpreter's values of every exposed tensor, so a TFLite operator lowered to several IR
    nodes (conv between Transposes) is isolated as one."""

    def __init__(self, data: bytes, kernel_path: str, target, accumulator):
        self.prog = Program(import_onnx(data), target=target, accumulator=accumulator)
        self.graph = self.prog.graph        # fused activations resolved for the target (lo / hi)
        self.ref = tflite_reference(data, kernel_path)
        self.plain = None
        names = self.ref.names()
        self.exposed = [o for node in self.graph.nodes for o in node.outputs
                        if o in names and isinstance(self.graph.tensors[o].dtype, IntType)]
        self.producer = self.graph.producers()
        self.explainer = Explainer(self.prog)
        self.fixed_batch = self.ref.batch1

    def classify(self, node, env: dict, got, want) -> dict:
        """Mismatch classes of `node`'s output; the NHWC output Transpose of a lowered conv is
        classified as the conv it moves (env holds the conv's inputs: the whole-model env, or
        the isolated run's inputs of every node so far)."""
        prod = self.producer.get(node.inputs[0]) if node.op == "onnx" and node.inputs else None
        if (prod is not None and node.attrs.get("op_type") == "Transpose" and prod.op == "conv"
                and np.ndim(got) == 4):
            inv = tuple(np.argsort(node.attrs["node"].attribute[0].ints))
            return self.explainer.classify(prod, env, np.transpose(got, inv), np.transpose(want, inv))
        return self.explainer.classify(node, env, got, want)

    def isolate(self, ref: dict, feeds: dict) -> dict:
        env, res, seen = {k: np.asarray(v) for k, v in feeds.items()}, {}, {}
        exposed = set(self.exposed)
        for node, fn in self.prog._steps:
            for i in node.inputs:
                if i in exposed and i in ref:
                    env[i] = np.asarray(ref[i]).astype(self.graph.tensors[i].dtype.storage, copy=False)
            seen.update((i, env[i]) for i in node.inputs if i in env)
            inputs = dict(seen)
            fn(env, None)
            res.update((t, _isolated_stats(self, node, inputs, env[t], ref[t]))
                       for t in node.outputs if t in exposed and t in ref)
        return res


def _fixed_batch(model: proto.ModelProto) -> bool:
    """True when some graph input declares a batch dimension of exactly 1."""
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            return True
    return False


def _run_both(s: _Session, feeds: dict):
    """(intsim env of every tensor, tapped reference values, plain reference values or None,
    [(feeds, tapped reference values)] of each run); per sample when the batch is fixed at 1."""
    n = _samples(feeds)
    parts = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(n)] if s.fixed_batch and n > 1 else [feeds]
    envs, refs, plains = [], [], []
    for f in parts:
        outs, taps = s.prog.run(f, taps=True)
        env = dict(f)
        for tap in taps.values():
            env.update(tap["outputs"])
        env.update(outs)
        envs.append(env)
        refs.append(s.ref.run(_ref_feeds(s, f)))
        if s.plain is not None:
            plains.append(s.plain.run(_ref_feeds(s, f)))
    return _cat(envs), _cat(refs), (_cat(plains) if plains else None), list(zip(parts, refs))


def _ref_feeds(s: _Session, feeds: dict) -> dict:
    out = {}
    for name, x in feeds.items():
        t = s.graph.tensors[name]
        out[name] = np.ascontiguousarray(x, dtype=t.dtype.storage)
    return out


def _cat(dicts: list) -> dict:
    if len(dicts) == 1:
        return dicts[0]
    keys = set.intersection(*(set(d) for d in dicts))
    out = {}
    for k in keys:
        vals = [np.asarray(d[k]) for d in dicts]
        out[k] = np.concatenate(vals) if vals[0].ndim and all(v.shape[1:] == vals[0].shape[1:] for v in vals) else vals[0]
    return out


def _samples(feeds: dict) -> int:
    sizes = {np.asarray(v).shape[0] if np.asarray(v).ndim else 1 for v in feeds.values()}
    if len(sizes) != 1:
        raise ShapeError(f"inputs disagree on the number of samples (leading axis): {sorted(sizes)}")
    return sizes.pop()


# ---------------------------------------------------------------------- output code maps
def _output_codes(s: _Session, name: str, y: np.ndarray):
    """Integer codes of a graph output: integers as they are; a DequantizeLinear output mapped
    back with its QParams; None for a float output with no quantization."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    p = s.producer.get(name)
    if p is None or p.op != "dequantize":
        return None
    qp = s.graph.tensors[p.inputs[0]].qparams
    if qp is None:
        return None
    return float_to_codes(y, qp)


def _output_stats(s: _Session, name: str, got, want) -> Stats:
    """got vs want of graph output `name`, in codes (float equality when it has none)."""
    a, b = _output_codes(s, name, got), _output_codes(s, name, want)
    st = Stats()
    if a is None or b is None:
        eq = np.asarray(got) == np.asarray(want)
        st.elements, st.equal = int(eq.size), int(eq.sum())
    else:
        st.add(a, b)
    return st


# ------------------------------------------------------------------------------ one chunk
def _compare_chunk(s: _Session, feeds: dict) -> dict:
    env, ref, plain, runs = _run_both(s, feeds)
    whole, isolated, outputs, consistency = {}, {}, {}, {}
    differs = set()
    for node, fn in s.prog._steps:
        for t in node.outputs:
            if t not in s.exposed or t not in ref:
                continue
            st = Stats()
            d = st.add(env[t], ref[t])
            if np.any(d):
                differs.add(t)
                if _inputs_differ(s, node, differs):
                    st.add_classes({"propagated": int(np.count_nonzero(d))})
                else:
                    st.add_classes(s.classify(node, env, env[t], ref[t]))
            whole[t] = st
    for part, part_ref in runs:     # one isolated run per reference run (per sample at a fixed batch of 1)
        for t, st in s.isolate(part_ref, part).items():
            isolated.setdefault(t, Stats()).merge(st)
    for name in s.graph.outputs:
        deployed = ref if plain is None else plain
        outputs[name] = _output_stats(s, name, env[name], deployed[name])
        if plain is not None:   # d = tapped - plain
            consistency[name] = _output_stats(s, name, ref[name], plain[name])
    return {"whole": whole, "isolated": isolated, "outputs": outputs, "consistency": consistency,
            "samples": _samples(feeds)}


def _inputs_differ(s: _Session, node, differs: set, seen=None) -> bool:
    """Does any (transitive, through unexposed tensors) input of node differ?"""
    seen = set() if seen is None else seen
    for i in node.inputs:
        if not i or i in seen:
            continue
        seen.add(i)
        if i in differs:
            return True
        if i not in s.exposed and i in s.producer and _inputs_differ(s, s.producer[i], differs, seen):
            return True
    return False


def _isolated(s: _Session, node, fn, ref: dict, feeds: dict):
    """Run node alone on the reference's values of its inputs; None if one is missing."""
    outs = [t for t in node.outputs if t in s.exposed and t in ref]
    if not outs:
        return None
    env = {}
    for i in node.inputs:
        if not i or i in s.graph.constants:
            continue
        if i in ref:
            env[i] = np.asarray(ref[i]).astype(s.graph.tensors[i].dtype.storage, copy=False) \
                if isinstance(s.graph.tensors[i].dtype, IntType) else np.asarray(ref[i])
        elif i in feeds:
            env[i] = np.asarray(feeds[i])
        else:
            return None
    inputs = dict(env)
    fn(env, None)
    return {t: _isolated_stats(s, node, inputs, env[t], ref[t]) for t in outs}


def _isolated_stats(s, node, inputs: dict, got, want) -> Stats:
    """Stats of one isolated output, its mismatches classified on the node's inputs."""
    st = Stats()
    if np.any(st.add(got, want)):
        st.add_classes(s.classify(node, inputs, got, want))
    return st


# ------------------------------------------------------------------------- multiprocessing
_WORKER: dict = {}


def _session(model_bytes, reference, target, accumulator, kernel_path, fusion=None):
    if reference == "tflite":
        return _TfliteSession(model_bytes, kernel_path, target, accumulator)
    return _Session(model_bytes, reference, target, accumulator, fusion)


def _worker_init(model_bytes, reference, target, accumulator, kernel_path, fusion=None):
    _WORKER["s"] = _session(model_bytes, reference, target, accumulator, kernel_path, fusion)


def _worker_chunk(feeds):
    return _compare_chunk(_WORKER["s"], feeds)


def progress_bar(total: int, enabled: bool):
    """verify's bar (intsim.progress.Bar), redrawn at most every PROGRESS_INTERVAL seconds."""
    return Bar("verify", total, enabled, PROGRESS_INTERVAL)


def _chunks(feeds: dict, size: int) -> list:
    n = _samples(feeds)
    return [{k: np.asarray(v)[i:i + size] for k, v in feeds.items()} for i in range(0, n, size)]


def _run_chunks(model_bytes, feeds, reference, target, accumulator, jobs, progress, chunk, scheduler=None,
                kernel_path=None, fusion=None):
    args = (model_bytes, reference, target, accumulator, kernel_path, fusion)
    if scheduler and isinstance(target, str) and (scheduler != distributed.LOCAL or _samples(feeds) > 1):
        return _run_dask(model_bytes, feeds, args, jobs, progress, chunk, scheduler), None
    if progress and jobs > 1:     # smaller chunks: the bar moves more often than every jobs x 32 samples
        chunk = max(1, min(chunk, _samples(feeds) // (4 * jobs)))
    parts = _chunks(feeds, chunk)
    bar = progress_bar(_samples(feeds), progress)
    results = []
    if jobs > 1 and len(parts) > 1 and isinstance(target, str):
        # fork: intsim/__main__.py runs the CLI at import, which a spawned child would redo;
        # the parent has created no onnxruntime session or thread pool at this point.
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with mp.get_context(method).Pool(min(jobs, len(parts)), _worker_init, args) as pool:
            for r in pool.imap(_worker_chunk, parts):
                results.append(r)
                bar.step(r["samples"])
        return results, None
    s = _session(*args)
    if progress:
        return _run_paced(s, feeds, chunk, bar), s
    for p in parts:
        results.append(_compare_chunk(s, p))
        bar.step(results[-1]["samples"])
    return results, s


def _run_dask(model_bytes, feeds, args, jobs, progress, chunk, scheduler) -> list:
    """The chunks as Dask tasks (intsim.runtime.distributed): a session per worker."""
    n = _samples(feeds)
    c = distributed.client(jobs, scheduler)
    try:
        parts = _chunks(feeds, distributed.chunk_size(n, distributed.workers(c), chunk, progress))
        bar = progress_bar(n, progress)
        return distributed.map_chunks(c, _session, args, distributed.session_key(model_bytes, *args[1:]),
                                      _compare_chunk, parts, [_samples(p) for p in parts], bar.step)
    finally:
        distributed.close(c)


def _run_paced(s, feeds: dict, chunk: int, bar) -> list:
    """The serial run with a progress bar: one sample first (it also pays for compilation), then
    chunks sized from the last one's time to take about PROGRESS_INTERVAL each (1..chunk
    samples), so the bar moves after every sample or every half second, whichever is rarer."""
    n, i, size, results = _samples(feeds), 0, 1, []
    while i < n:
        part = {k: np.asarray(v)[i:i + size] for k, v in feeds.items()}
        t = time.monotonic()
        results.append(_compare_chunk(s, part))
        per = (time.monotonic() - t) / size
        i += size
        bar.step(results[-1]["samples"])
        size = max(1, min(chunk, int(PROGRESS_INTERVAL / per) if per > 0 else chunk))
    return results


# ---------------------------------------------------------------------------------- report
@dataclass
class VerifyReport:
    model: str
    target: str
    reference: str
    samples: int
    passed: bool
    outputs: dict
    tensors: list
    first_divergence: dict | None
    explanations: dict
    criteria: dict
    reference_consistency: dict | None = None
    fusion: str | None = None       # the QDQ fusion policy of intsim's graph (None: a TFLite model)

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "fusion": self.fusion, "reference": self.reference,
                "samples": self.samples, "passed": self.passed, "outputs": self.outputs,
                "tensors": self.tensors, "first_divergence": self.first_divergence,
                "explanations": self.explanations, "criteria": self.criteria,
                "reference_consistency": self.reference_consistency}

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent)


def _shares(stats) -> dict:
    """Class counts and shares of the mismatches of `stats`; explained_share is None (with a
    note) when no tensor was compared, so that nothing compared never reads as all explained."""
    stats = list(stats)
    total = sum(s.mismatches for s in stats)
    counts = {c: 0 for c in CLASSES}
    for s in stats:
        for k, v in s.classes.items():
            counts[k] += v
    d = {"mismatches": total, "compared_tensors": len(stats),
         "classes": {c: {"count": n, "share": (n / total) if total else 0.0} for c, n in counts.items()},
         "explained_share": (1.0 - counts["unexplained"] / total) if total else 1.0}
    if not stats:
        d["explained_share"], d["note"] = None, "nothing compared"
    return d


def _consistency(reference: str, stats: dict) -> dict:
    """Do the tapped reference run's final outputs equal the plain (deployed) run's?"""
    if reference not in PLAIN_SESSION:
        return {"plain_session": False, "consistent": True, "outputs": {},
                "note": f"reference '{reference}' computes the same values whatever it exposes: one run"}
    outs = {k: {kk: v for kk, v in st.as_dict().items() if kk != "explanations"} for k, st in stats.items()}
    consistent = all(st.mismatches == 0 for st in stats.values())
    note = ("the session with intermediate outputs computes the deployed session's final outputs" if consistent else
            "exposing intermediate outputs changed the reference's final outputs (d = tapped - plain); final "
            "outputs are judged against the plain session, intermediate tensors only localize")
    return {"plain_session": True, "consistent": consistent, "outputs": outs, "note": note}


def _qparams_json(t) -> dict:
    qp = t.qparams
    d = {"tensor": t.name, "dtype": str(t.dtype)}
    if qp is not None:
        d.update(scale=[float(v) for v in qp.scale.reshape(-1)], zero_point=[int(v) for v in qp.zero_point.reshape(-1)],
                 axis=qp.axis)
    return d


def _first_divergence(graph, exposed: list, whole: dict) -> dict | None:
    producer = graph.producers()
    bad = {t for t, s in whole.items() if s.mismatches}

    def differs(name, seen):
        if name in bad:
            return True
        if name in exposed or name not in producer or name in seen:
            return False
        seen.add(name)
        return any(differs(i, seen) for i in producer[name].inputs if i)

    for node in graph.nodes:
        outs = [t for t in node.outputs if t in bad]
        if outs and not any(differs(i, set()) for i in node.inputs if i):
            ins = [_qparams_json(graph.tensors[i]) for i in node.inputs
                   if i and i in graph.tensors and i not in graph.constants]
            return {"tensor": outs[0], "node": node.name, "op": node.op, "origin": node.origin,
                    "mismatches": whole[outs[0]].mismatches, "max_abs_lsb": whole[outs[0]].max_abs,
                    "inputs": ins, "output": _qparams_json(graph.tensors[outs[0]])}
    return None


def _ok(st: Stats, max_lsb: int, min_exact: float) -> bool:
    frac = st.equal / st.elements if st.elements else 1.0
    return st.max_abs <= max_lsb and frac >= min_exact


def _finalize(graph, exposed, results, meta) -> VerifyReport:
    whole, isolated, outputs, consistency = {}, {}, {}, {}
    for r in results:
        _merge_maps(whole, r["whole"])
        _merge_maps(isolated, r["isolated"])
        _merge_maps(outputs, r["outputs"])
        _merge_maps(consistency, r.get("consistency", {}))
    producer = graph.producers()
    tensors = []
    for t in exposed:
        if t not in whole:
            continue
        node = producer[t]
        entry = {"tensor": t, "node": node.name, "op": node.op, **whole[t].as_dict(),
                 "isolated": isolated[t].as_dict() if t in isolated else None}
        tensors.append(entry)
    max_lsb, min_exact = meta["max_lsb"], meta["min_exact"]
    rc = _consistency(meta["reference"], consistency)
    # intermediates count when the tapped run is the deployed one; otherwise they only localize
    judged = list(outputs.values()) + (list(whole.values()) if rc["consistent"] else [])
    passed = all(_ok(s, max_lsb, min_exact) for s in judged)
    return VerifyReport(
        model=meta["model"], target=meta["target"], reference=meta["reference"],
        samples=sum(r["samples"] for r in results), passed=bool(passed),
        outputs={k: v.as_dict() for k, v in outputs.items()}, tensors=tensors,
        first_divergence=_first_divergence(graph, exposed, whole),
        explanations={"whole_model": _shares(whole.values()), "layer_isolated": _shares(isolated.values())},
        criteria={"max_abs_lsb": max_lsb, "min_exact_fraction": min_exact,
                  "intermediate_tensors_judged": bool(rc["consistent"])},
        reference_consistency=rc, fusion=meta.get("fusion"))


# ------------------------------------------------------------------------------ public API
def _model_bytes(model) -> tuple:
    if isinstance(model, proto.ModelProto):
        return model.SerializeToString(), model.graph.name or "<in-memory model>"
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "<bytes>"
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise IntsimError(f"model file '{path}' does not exist")
    with open(path, "rb") as f:
        return f.read(), path


def verify(model, feeds: dict | None = None, reference: str | None = None, target=None,
           accumulator=None, *, random: int | None = None, seed: int = 0, jobs: int = 1,
           progress: bool = False, chunk: int = CHUNK, max_lsb: int = 0,
           min_exact: float = 1.0, scheduler: str | None = None, kernel_path: str = "reference",
           fusion: str | None = None) -> VerifyReport:
    """Compare intsim on `target` with `reference` on `feeds` (name -> array with a leading
    sample axis) or on `random` random samples in each input's calibrated range.

    passed: every compared tensor and output has max |d| <= max_lsb and an exact fraction
    >= min_exact in the whole-model view. jobs > 1: a process pool over sample chunks;
    scheduler="local" runs the chunks on a new local Dask cluster of `jobs` workers, an address
    on that Dask scheduler's workers (intsim.runtime.distributed; needs dask distributed).

    A .tflite model is compared with the TFLite interpreter (reference "tflite", its default;
    `kernel_path` reference | builtin | xnnpack | tflm, see intsim.verify.tflite_ref); its default
    target is the one modelling that kernel path (tflite, tflite-builtin, tflite-xnnpack). An
    ONNX model's defaults are reference "ort-fakequant" and target "ort". `fusion`: the QDQ
    fusion policy of intsim's graph (passes/qdq_policy.py; default the target's `qdq_fusion`)."""
    data, label = _model_bytes(model)
    tfl = is_tflite(data)
    reference = reference or ("tflite" if tfl else "ort-fakequant")
    if reference not in REFERENCES:
        raise IntsimError(f"unknown reference '{reference}' (known: {', '.join(REFERENCES)})")
    if not isinstance(jobs, (int, np.integer)) or isinstance(jobs, bool) or jobs < 1:
        raise IntsimError(f"jobs must be an integer >= 1, got {jobs!r}")
    if not np.isfinite(float(min_exact)):
        raise IntsimError(f"min_exact must be a finite fraction, got {min_exact!r}")
    if int(max_lsb) < 0:
        raise IntsimError(f"max_lsb must be >= 0, got {max_lsb!r}")
    if tfl != (reference == "tflite"):
        raise IntsimError(f"'{label}' is a TFLite model: its reference is 'tflite' (the TFLite interpreter)" if tfl else
                          f"reference 'tflite' (the TFLite interpreter) needs a .tflite model; '{label}' is ONNX")
    if tfl:
        check_kernel_path(kernel_path)
    if fusion is not None:
        check_policy(fusion)
    target = target or (PATH_TARGETS[kernel_path] if tfl else "ort")
    if feeds is None:
        if not random:
            raise IntsimError("verify needs feeds (--input) or a number of random samples (--random N)")
        feeds = random_feeds(import_onnx(data), int(random), seed)
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    if feeds and _samples(feeds) == 0:
        raise IntsimError("no samples to compare: " + ", ".join(f"input '{k}' has shape {v.shape}"
                                                                for k, v in feeds.items()))
    results, s = _run_chunks(data, feeds, reference, target, accumulator, max(1, int(jobs)), progress,
                             max(1, int(chunk)), scheduler, kernel_path, fusion)
    if s is None and tfl:
        s = _TfliteSession(data, kernel_path, target, accumulator)
    if s is None:
        s = _Session.__new__(_Session)
        s.model = load_model(data)
        s.graph = import_onnx(s.model, fusion or get_target(target).qdq_fusion)
        s.exposed = exposed_tensors(s.graph, s.model)
        if reference == "qonnx":
            s.exposed += [t for t in qonnx_taps(s.graph, s.model) if t not in s.exposed]
    tname = target if isinstance(target, str) else getattr(target, "name", type(target).__name__)
    meta = {"model": label, "target": tname, "reference": reference + (f" ({kernel_path})" if tfl else ""),
            "fusion": None if tfl else fusion or get_target(target).qdq_fusion,
            "max_lsb": int(max_lsb),
            "min_exact": float(min_exact)}
    return _finalize(s.graph, s.exposed, results, meta)


def random_feeds(graph, n: int, seed: int = 0) -> dict:
    """n random samples per graph input, uniform in the input's calibrated range: the range
    [(qmin - zp) * scale, (qmax - zp) * scale] of the QuantizeLinear that reads it; integer
    inputs uniform over their type; other float inputs standard normal."""
    if n < 1:
        raise IntsimError(f"--random needs N >= 1, got {n}")
    rng = np.random.default_rng(seed)
    consumers = graph.consumers()
    feeds = {}
    for name in graph.inputs:
        t = graph.tensors[name]
        shape = (n,) + tuple(d if d else 1 for d in (t.shape or (1,))[1:])
        check_shape(shape, 8, f"--random {n}: samples of input '{name}'")
        if isinstance(t.dtype, IntType):
            feeds[name] = rng.integers(t.dtype.qmin, t.dtype.qmax + 1, shape).astype(t.dtype.storage)
            continue
        q = next((c for c in consumers.get(name, []) if c.op == "quantize"), None)
        qp = graph.tensors[q.outputs[0]].qparams if q is not None else None
        if qp is None or qp.scale.size != 1:
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
            continue
        ot = q.attrs["out_type"]
        s, z = float(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])
        feeds[name] = rng.uniform((ot.qmin - z) * s, (ot.qmax - z) * s, shape).astype(np.float32)
    return feeds

