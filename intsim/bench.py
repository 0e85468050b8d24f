"""`intsim bench`: speed of the fast integer kernels against onnxruntime in the same process.

For each case: warm-up, then >= 7 runs alternating intsim and onnxruntime (and the naive NumPy
int32 baseline), medians, GOP/s = 2*M*N*K / median, ratio = ort_median / intsim_median (> 1:
intsim is faster). onnxruntime runs with the same thread count and
`session.intra_op.allow_spinning = 0` (DESIGN §2: a spinning pool steals the cores from the
next run). `ort_equal` says whether onnxruntime's output equals intsim's exact one on the case's
random data: its AVX2 u8s8 kernel saturates pairs in int16, so it often does not.

    run_suite("gemm" | "conv" | "models", threads=2) -> list[dict]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from kernels import fast_conv as fc
from kernels import fast_pairs as fp
from kernels import threads as kernel_threads
from kernels.conv import ConvGeom
from kernels.conv_plan import ConvPlan, run_plan
from kernels.depthwise_nhwc import plan_depthwise_layer, run_depthwise_layer
from kernels.simd import packing, wrappers
from kernels.x86pairs import host_saturates_u8s8

from .pipeline import load
from .runtime import tune

RUNS = 7
WARMUP = 2

# (name, M, K, N): squares and the im2col GEMMs (M = OH*OW, K = C*KH*KW, N = out channels)
GEMM_CASES = [("square256", 256, 256, 256), ("square512", 512, 512, 512),
              ("square1024", 1024, 1024, 1024), ("square2048", 2048, 2048, 2048),
              ("resnet18.conv1", 12544, 147, 64), ("resnet18.layer1.3x3", 3136, 576, 64),
              ("resnet18.layer2.3x3", 784, 1152, 128), ("resnet18.layer3.3x3", 196, 2304, 256),
              ("resnet18.layer4.3x3", 49, 4608, 512), ("mobilenetv2.stem", 12544, 27, 32),
              ("mobilenetv2.expand56", 3136, 24, 144), ("mobilenetv2.project28", 784, 192, 32),
              ("mobilenetv2.expand7", 49, 160, 960), ("mobilenetv2.last1x1", 49, 320, 1280)]

# (name, C, H, W, M, KH, KW, stride, pad, group), batch 1, 224x224 networks
CONV_CASES = [("resnet18.conv1.7x7s2", 3, 224, 224, 64, 7, 7, 2, 3, 1),
              ("resnet18.layer1.3x3", 64, 56, 56, 64, 3, 3, 1, 1, 1),
              ("resnet18.layer2.3x3s2", 64, 56, 56, 128, 3, 3, 2, 1, 1),
              ("resnet18.layer2.down1x1s2", 64, 56, 56, 128, 1, 1, 2, 0, 1),
              ("resnet18.layer3.3x3", 256, 14, 14, 256, 3, 3, 1, 1, 1),
              ("resnet18.layer4.3x3", 512, 7, 7, 512, 3, 3, 1, 1, 1),
              ("mobilenetv2.stem.3x3s2", 3, 224, 224, 32, 3, 3, 2, 1, 1),
              ("mobilenetv2.dw112", 32, 112, 112, 32, 3, 3, 1, 1, 32),
              ("mobilenetv2.pw112", 32, 112, 112, 16, 1, 1, 1, 0, 1),
              ("mobilenetv2.expand56", 24, 56, 56, 144, 1, 1, 1, 0, 1),
              ("mobilenetv2.dw56s2", 144, 56, 56, 144, 3, 3, 2, 1, 144),
              ("mobilenetv2.dw7", 960, 7, 7, 960, 3, 3, 1, 1, 960),
              ("mobilenetv2.pw7", 320, 7, 7, 1280, 1, 1, 1, 0, 1)]


def median_times(fns: dict, runs: int = RUNS, warmup: int = WARMUP, max_runs: dict | None = None) -> dict:
    """Median seconds of each callable, the callables alternating run by run after warm-up.
    max_runs caps the runs of slow baselines (their count is part of the result). The warm-up
    alternates too: intsim's thread choices, measured during its warm-up (tune.settle_runs), are
    then made with the other side's runs between its own, as in the timed runs (back to back, a
    2-thread run finds Numba's team still spinning from the run before; after an onnxruntime
    run the team has gone to sleep)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for i in range(runs):
        for k, fn in (list(fns.items()) if i % 2 == 0 else list(fns.items())[::-1]):
            if max_runs and k in max_runs and len(times[k]) >= max_runs[k]:
                continue
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: (statistics.median(v), len(v)) for k, v in times.items()}


def ort_session(model, threads: int, profile_prefix: str | None = None):
    """An onnxruntime session timed fairly against intsim (DESIGN §2); with profile_prefix, its
    per-node profile is on (written by end_profiling() to a file of that prefix)."""
    import onnxruntime as ort   # deferred: the gemm/conv suites' module import stays light without it
    so = ort.SessionOptions()
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.qdqisint8allowed", "1")  # int8-activation QDQ fused too
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def graph_model(nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "bench", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def matmul_integer_model(b: np.ndarray):
    """MatMulInteger(a: uint8 (M, K), b: int8 (K, N) initializer) -> int32."""
    k, n = b.shape
    return graph_model([helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
                       [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, k])],
                       [helper.make_tensor_value_info("y", TensorProto.INT32, [None, n])],
                       [numpy_helper.from_array(b, "b")])


def qlinear_conv_model(w, bias, x_shape, stride, pad, group, scales, zps):
    """QLinearConv(x uint8 NCHW, w int8 per-tensor, bias int32) -> uint8."""
    sx, sw, sy = scales
    zx, zy = zps
    inits = [numpy_helper.from_array(np.array(sx, np.float32), "sx"), numpy_helper.from_array(np.array(zx, np.uint8), "zx"),
             numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(sw, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"), numpy_helper.from_array(np.array(sy, np.float32), "sy"),
             numpy_helper.from_array(np.array(zy, np.uint8), "zy"), numpy_helper.from_array(bias.astype(np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["y"],
                            strides=[stride, stride], pads=[pad] * 4, group=group,
                            kernel_shape=list(w.shape[2:]))
    return graph_model([node], [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x_shape))],
                       [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)


def timing_row(case, shape, ops, t, extra=None):
    ti, ni = t["intsim"]
    to, no = t["ort"]
    tn, nn = t.get("numpy", (float("nan"), 0))
    row = {"case": case, "shape": shape, "intsim_gops": ops / ti / 1e9, "ort_gops": ops / to / 1e9,
           "numpy_gops": ops / tn / 1e9, "ratio": to / ti, "intsim_ms": ti * 1e3, "ort_ms": to * 1e3,
           "numpy_ms": tn * 1e3, "runs": {"intsim": ni, "ort": no, "numpy": nn}}
    row.update(extra or {})
    return row


def bench_gemm_case(name, m, k, n, threads, rng, runs=RUNS):
    """One MatMulInteger (u8 x s8): the `intsim` columns time the engine the `ort` target takes on
    this host (onnxruntime's AVX2 pair-saturating sum, kernels.fast_pairs, where the host has no
    VNNI; ort_equal must then be True), the `exact_*` fields the exact engine (kernels.simd,
    exact_equal: equal to the int64 product) in the same alternation."""
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    packed, pp, zeros = packing.pack_b(b, 0), fp.pack_b_pairs(b), np.zeros(n, np.int64)
    acc, acc_exact = np.empty((m, n), np.int32), np.empty((m, n), np.int32)
    sess = ort_session(matmul_integer_model(b), threads)
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    pairs = host_saturates_u8s8()
    fns = {"intsim": (lambda: fp.gemm_pairs_packed(a, 0, pp, zeros, zeros, acc)) if pairs
           else (lambda: wrappers.gemm_packed(a, 0, packed, 0, acc)),
           "exact": lambda: wrappers.gemm_packed(a, 0, packed, 0, acc_exact),
           "ort": lambda: sess.run(None, {"a": a}),
           "numpy": lambda: a32 @ b32}
    slow = 2 * m * n * k > 2**31
    t = median_times(fns, runs, max_runs={"numpy": 1 if slow else runs})
    ops, te = 2 * m * n * k, t["exact"][0]
    exact = bool(np.array_equal(acc_exact, a.astype(np.int64) @ b.astype(np.int64)))
    return timing_row(name, [m, k, n], ops, t,
                      {"isa": packed.isa, "engine": "x86-u8s8-pairs" if pairs else "exact",
                       "ort_equal": bool(np.array_equal(sess.run(None, {"a": a})[0], acc)),
                       "exact_gops": ops / te / 1e9, "exact_ms": te * 1e3, "exact_ratio": t["ort"][0] / te,
                       "exact_equal": exact})


def _im2col_numpy(x, kh, kw, stride, pad):
    xp = np.pad(x[0].astype(np.int32), ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    c, oh, ow = win.shape[:3]
    return win.transpose(1, 2, 0, 3, 4).reshape(oh * ow, c * kh * kw)


def _conv_runner(plan, x, out):
    """A call of a prepared conv plan (what the executor runs per layer: weights packed and
    parameters checked once, x and out checked per call)."""
    if isinstance(plan, ConvPlan):
        return lambda: run_plan(plan, x, out)
    layer = plan_depthwise_layer(plan, x.shape, x.dtype, out.dtype)
    return lambda: run_depthwise_layer(layer, x, out)


def bench_conv_case(name, c, h, w, m, kh, kw, stride, pad, group, threads, rng, runs=RUNS):
    """One QLinearConv (u8 x s8, NCHW, batch 1): intsim runs the path the `ort` target takes on
    this host, prepared once as the executor prepares a layer (`intsim` columns: onnxruntime's
    AVX2 pair-saturating sum where the host has no VNNI, else the exact engine; ort_equal must
    then be True) and, in the same alternation, the exact vpmaddwd engine (`exact_*` fields)."""
    x = rng.integers(0, 256, (1, c, h, w)).astype(np.uint8)
    wt = rng.integers(-128, 128, (m, c // group, kh, kw)).astype(np.int8)
    bias = rng.integers(-5000, 5000, m).astype(np.int64)
    geom = ConvGeom(stride, stride, pad, pad, pad, pad, 1, 1, group)
    sx, sw, sy, zx, zy = 0.02, 0.004, 0.5, 128, 100
    pc = fc.pack_conv(wt, 0, geom)
    pp = fp.pack_conv_pairs(wt, geom)
    zeros = np.zeros(m, np.int64)
    mult = np.float32(np.float32(np.float32(sx) * np.float32(sw)) / np.float32(sy))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    out, out_exact = np.empty((1, m, oh, ow), np.uint8), np.empty((1, m, oh, ow), np.uint8)
    sess = ort_session(qlinear_conv_model(wt, bias, x.shape, stride, pad, group, (sx, sw, sy), (zx, zy)), threads)
    pairs = host_saturates_u8s8()
    rq = (True, np.full(m, mult, np.float32), np.int64(zy), np.int64(0), np.int64(255))
    exact = _conv_runner(fc.plan_conv_exact(pc, x.shape[1:], x.dtype, zx, bias, rq) if pc.kind == "gemm"
                         else fc.plan_depthwise(pc, zx, bias, rq), x, out_exact)
    ours = exact if not pairs else _conv_runner(
        fp.plan_conv_pairs(pp, x.shape[1:], zx, zeros, bias, rq) if pp.kind == "gemm"
        else fc.plan_depthwise(pc, zx, bias, rq), x, out)
    if not pairs:
        out = out_exact
    fns = {"intsim": ours, "exact": exact, "ort": lambda: sess.run(None, {"x": x})}
    if group == 1:
        wmat = wt.reshape(m, -1).T.astype(np.int32)
        fns["numpy"] = lambda: _im2col_numpy(x, kh, kw, stride, pad) @ wmat
    ops = 2 * m * (c // group) * kh * kw * oh * ow
    t = median_times(fns, runs, max_runs={"numpy": 3})
    want = sess.run(None, {"x": x})[0]
    te = t["exact"][0]
    return timing_row(name, [c, h, w, m, kh, kw, stride, pad, group], ops, t,
                      {"kind": pc.kind, "engine": "x86-u8s8-pairs" if pairs else "exact",
                       "ort_equal": bool(np.array_equal(want, out)), "exact_gops": ops / te / 1e9,
                       "exact_ms": te * 1e3, "exact_ratio": t["ort"][0] / te})


def _models_suite(threads, rng, runs, progress=None):
    """Whole quantized models (models/*.{qdq_u8_pc,qdq_s8_pt,qop_u8}.onnx, and the ResNet-18-style
    ones when models/cache holds them) at batch 1 and 8: milliseconds per run for intsim's
    executor and onnxruntime (all optimizations on), the throughput ratio, and whether the
    outputs are bit-identical. A model that cannot run gets an `error` field."""
    rows = []
    root = Path(__file__).resolve().parent.parent / "models"
    paths = [p for form in ("qdq_u8_pc", "qdq_s8_pt", "qop_u8")
             for p in sorted(root.glob(f"*.{form}.onnx")) + sorted((root / "cache").glob(f"*.{form}.onnx"))]
    for path in paths:
        for batch in (1, 8):
            try:
                model = onnx.load(str(path))
                sess = ort_session(model, threads)
                inp = sess.get_inputs()[0]
                shape = [batch] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
                feeds = {inp.name: rng.standard_normal(shape).astype(np.float32).clip(0, None)
                         if shape[1] == 1 else rng.standard_normal(shape).astype(np.float32)}
                prog = load(str(path))
                # timed once the frozen run is recorded and its thread choices are made (intsim.runtime.tune;
                # with WARMUP alone, 2-thread batch-8 rows timed the recording and the probing runs)
                t = median_times({"intsim": lambda: prog.run(feeds), "ort": lambda: sess.run(None, feeds)}, runs,
                                 warmup=WARMUP + tune.settle_runs(split=True))
                want = sess.run(None, feeds)
                got = list(prog.run(feeds).values())
                equal = all(np.array_equal(a, b) for a, b in zip(got, want))
                row = timing_row(f"{path.name}@b{batch}", shape, 1.0, t, {"ort_equal": equal})
                row.update(intsim_gops=None, ort_gops=None, numpy_gops=None)   # ops not counted: see *_ms
                rows.append(row)
            except Exception as e:  # noqa: BLE001 - the suite reports the failure and goes on
                rows.append({"case": f"{path.name}@b{batch}", "error": f"{type(e).__name__}: {e}"})
            if progress is not None:
                progress(rows[-1], len(rows), 2 * len(paths))
    return rows


def set_threads(threads: int) -> None:
    """intsim's kernels (the kernels.threads pool and Numba's team) on `threads` threads."""
    kernel_threads.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def run_suite(name: str, threads: int = 2, runs: int = RUNS, cases: list | None = None,
              seed: int = 0, progress=None) -> list[dict]:
    """Measure one suite ("gemm", "conv" or "models") with `threads` threads on both sides.
    progress(row, done, total), if given, is called after each case."""
    if runs < 7:
        raise ValueError(f"bench: runs must be >= 7 for medians, got {runs}")
    set_threads(threads)
    rng = np.random.default_rng(seed)
    if name in ("gemm", "conv"):
        bench_case = bench_gemm_case if name == "gemm" else bench_conv_case
        todo = cases or (GEMM_CASES if name == "gemm" else CONV_CASES)
        rows = []
        for c in todo:
            rows.append(bench_case(*c, threads, rng, runs))
            if progress is not None:
                progress(rows[-1], len(rows), len(todo))
        return rows
    if name == "models":
        return _models_suite(threads, rng, runs, progress)
    raise ValueError(f"bench: unknown suite {name!r} (gemm, conv, models)")


def summary(rows: list[dict]) -> dict:
    ratios = [r["ratio"] for r in rows if "ratio" in r]
    out = {"cases": len(rows), "median_ratio": statistics.median(ratios) if ratios else None,
           "min_ratio": min(ratios, default=None), "max_ratio": max(ratios, default=None)}
    exact = [r["exact_ratio"] for r in rows if "exact_ratio" in r]
    if exact:
        out.update(exact_median_ratio=statistics.median(exact), exact_min_ratio=min(exact))
    return out


def format_summary(s: dict) -> str:
    """The summary as one readable line: intsim's speed relative to onnxruntime (ort time /
    intsim time, > 1: intsim faster), median and range."""
    if s["median_ratio"] is None:
        return f"{s['cases']} cases, no ratio measured"
    text = (f"{s['cases']} cases: speed vs onnxruntime (ort time / intsim time) median {s['median_ratio']:.2f} "
            f"(min {s['min_ratio']:.2f}, max {s['max_ratio']:.2f})")
    if "exact_median_ratio" in s:
        text += f"; exact path median {s['exact_median_ratio']:.2f} (min {s['exact_min_ratio']:.2f})"
    return text


def format_table(rows: list[dict]) -> str:
    head = f"{'case':28} {'shape':>26} {'intsim':>8} {'ort':>8} {'numpy':>8} {'ratio':>6} {'ort=':>5}  (GOP/s)"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['case']:28} error: {r['error']}")
            continue
        if r["intsim_gops"] is None:
            lines.append(f"{r['case']:28} {str(r['shape']):>26} {r['intsim_ms']:6.2f}ms {r['ort_ms']:6.2f}ms "
                         f"{'':>8} {r['ratio']:6.2f}")
            continue
        numpy = "" if r["numpy_gops"] is None else f"{r['numpy_gops']:8.2f}"
        lines.append(f"{r['case']:28} {str(r['shape']):>26} {r['intsim_gops']:8.1f} {r['ort_gops']:8.1f} "
                     f"{numpy:>8} {r['ratio']:6.2f} {str(r.get('ort_equal', '')):>5}")
    return "\n".join(lines)


def progress_line(row: dict, done: int, total: int) -> None:
    """One line on stderr per finished case (bench runs for minutes)."""
    what = f"error: {row['error']}" if "error" in row else f"ratio {row['ratio']:.2f}"
    print(f"bench [{done}/{total}] {row['case']}: {what}", file=sys.stderr, flush=True)
