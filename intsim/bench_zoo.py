"""`intsim bench --suite zoo`: whole architectures (models.zoo's architecture zoo: torchvision's
MobileNetV3-Small, EfficientNet-B0, ShuffleNetV2 x1.0, RegNetX-400MF, SqueezeNet 1.1, ResNet-50, a
Conv1d audio net, a small transformer encoder; random weights) quantized by onnxruntime, timed
through `intsim.load(path, target="ort").run(feeds)` against onnxruntime on the same file in the
same process (intsim.bench's machinery: all graph optimizations, the same thread count on both
sides, `allow_spinning=0`, alternating runs, medians, after a warm-up of WARMUP +
tune.settle_runs(split=True) runs each: intsim's steady state is a frozen run whose thread choices are made).

Each row: model, form (zoo.ARCH_FORMS; "dynamic" and "dynamic_opt" for the encoder only), batch, threads, the
medians, ratio = ort ms / intsim ms (> 1: intsim faster), `equal_pct`: the share of output
elements where intsim's `ort` target equals onnxruntime's session output (100: bit-exact), and
`first_run_s` (intsim.load plus the first batch-1 run of that model/form, the file already built:
compiles on a cold cache). Models are
built on demand into models/cache/arch/ (the float export needs torch, the `models` extra);
`res` shrinks the input for quick runs (zoo.arch_input_shape).

    run_zoo_suite(threads=(1, 2), batches=(1, 8), res=224, ...) -> list[dict]
"""
from __future__ import annotations

import time

import numpy as np
import onnx

from .bench import RUNS, WARMUP, median_times, ort_session, set_threads, timing_row
from .pipeline import load
from .runtime import tune

DEFAULT_FORMS = ("qdq_u8", "qop_u8")
ENCODER_FORMS = ("dynamic", "dynamic_opt")     # quantize_dynamic, without and after the transformer optimizer
BATCHES = (1, 8)
THREADS = (1, 2)


def _zoo():
    """models.zoo, imported late: the zoo lives beside the package in a source checkout."""
    try:
        from models import zoo
    except ImportError as e:
        raise RuntimeError(f"bench --suite zoo needs the models/ directory of a source checkout on the path ({e})") \
            from e
    return zoo


def zoo_cases(names=None, forms=None) -> list[tuple[str, str]]:
    """(model, form) pairs: every architecture (or `names`) in `forms` (default DEFAULT_FORMS),
    plus ENCODER_FORMS for the encoder; an encoder-only form is skipped for the CNNs."""
    zoo = _zoo()
    names = list(names or zoo.ARCHS)
    unknown = [n for n in names if n not in zoo.ARCHS]
    if unknown:
        raise ValueError(f"unknown zoo model(s) {', '.join(unknown)} (known: {', '.join(zoo.ARCHS)})")
    out = []
    for n in names:
        todo = list(forms or DEFAULT_FORMS) + (list(ENCODER_FORMS) if forms is None and zoo.ARCHS[n] == "tokens"
                                               else [])
        for f in todo:
            if f not in zoo.ARCH_FORMS:
                raise ValueError(f"unknown zoo form {f!r} (known: {', '.join(zoo.ARCH_FORMS)})")
            if f in ENCODER_FORMS and zoo.ARCHS[n] != "tokens":
                continue
            out.append((n, f))
    return out


def zoo_model_path(spec: str, res: int | None = None):
    """`<model>.<form>` (e.g. "resnet50.qop_u8") -> its quantized file at input size res
    (default 224), built on demand."""
    zoo = _zoo()
    name, _, form = spec.rpartition(".")
    if not name:
        raise ValueError(f"expected <model>.<form>, got {spec!r}")
    return zoo.arch_quantized_model(name, form, zoo.ARCH_RES if res is None else res)


def equal_pct(got: np.ndarray, want: np.ndarray) -> float:
    """Percent of elements equal (100.0: bit-exact); 0 on a shape mismatch."""
    if got.shape != want.shape:
        return 0.0
    return float(np.mean(got == want) * 100.0) if got.size else 100.0


def bench_zoo_model(name: str, form: str, threads, batches, res: int, runs: int, progress=None,
                    done: list | None = None, total: int = 0) -> list[dict]:
    """The rows of one model/form: every threads x batch combination (see the module doc)."""
    zoo = _zoo()
    path = zoo.arch_quantized_model(name, form, res)
    model = onnx.load(str(path))
    t0 = time.perf_counter()
    prog = load(str(path), target="ort")
    feeds1 = {zoo.INPUT_NAME: zoo.arch_inputs(name, 1, 0, res)}
    prog.run(feeds1)
    first = time.perf_counter() - t0
    rows = []
    for th in threads:
        set_threads(th)
        sess = ort_session(model, th)
        for b in batches:
            case = f"{name}.{form}@b{b}t{th}"
            feeds = {zoo.INPUT_NAME: zoo.arch_inputs(name, b, 1, res)}
            try:
                t = median_times({"intsim": lambda: prog.run(feeds), "ort": lambda: sess.run(None, feeds)}, runs,
                                 warmup=WARMUP + tune.settle_runs(split=True))   # timed once the thread choices are made
                got = prog.run(feeds)[zoo.OUTPUT_NAME]
                want = sess.run([zoo.OUTPUT_NAME], feeds)[0]
                row = timing_row(case, list(feeds[zoo.INPUT_NAME].shape), 1.0, t,
                                 {"model": name, "form": form, "batch": b, "threads": th, "res": res,
                                  "equal_pct": equal_pct(got, want), "ort_equal": bool(np.array_equal(got, want)),
                                  "first_run_s": first})
                row.update(intsim_gops=None, ort_gops=None, numpy_gops=None, numpy_ms=None)  # ops not counted
            except Exception as e:  # noqa: BLE001 - the suite reports the failure and goes on
                row = {"case": case, "model": name, "form": form, "batch": b, "threads": th,
                       "error": f"{type(e).__name__}: {e}"}
            rows.append(row)
            if progress is not None and done is not None:
                done.append(row)
                progress(row, len(done), total)
    return rows


def run_zoo_suite(threads=THREADS, batches=BATCHES, res: int | None = None, runs: int = RUNS,
                  names=None, forms=None, progress=None) -> list[dict]:
    """Every (model, form) of zoo_cases(names, forms) at each batch and thread count; a model that
    cannot be built or loaded gets one row with an `error` field."""
    if runs < 7:
        raise ValueError(f"bench: runs must be >= 7 for medians, got {runs}")
    zoo = _zoo()
    res = zoo.ARCH_RES if res is None else res
    cases = zoo_cases(names, forms)
    total, done, rows = len(cases) * len(threads) * len(batches), [], []
    for name, form in cases:
        try:
            rows += bench_zoo_model(name, form, threads, batches, res, runs, progress, done, total)
        except Exception as e:  # noqa: BLE001
            rows.append({"case": f"{name}.{form}", "model": name, "form": form,
                         "error": f"{type(e).__name__}: {e}"})
            if progress is not None:
                done.append(rows[-1])
                progress(rows[-1], len(done), total)
    return rows


def format_zoo_table(rows: list[dict]) -> str:
    """Markdown table: model, form, batch, threads, the medians, ratio, equal %, first run."""
    lines = ["| model | form | batch | threads | intsim ms | ort ms | ratio | equal % | first run s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('model', r['case'])} | {r.get('form', '')} | {r.get('batch', '')} | "
                         f"{r.get('threads', '')} | error: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['form']} | {r['batch']} | {r['threads']} | {r['intsim_ms']:.2f} | "
                     f"{r['ort_ms']:.2f} | {r['ratio']:.2f} | {r['equal_pct']:.1f} | {r['first_run_s']:.1f} |")
    return "\n".join(lines)
