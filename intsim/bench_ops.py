"""`intsim bench --suite ops`: single quantized ops through the public path, `intsim.load(model)
.run(feeds)` (feed checks, the prepared step, frozen replays: what a user's run costs), against
onnxruntime on the same one-node model in the same process (intsim.bench's machinery: same
thread count, `allow_spinning=0`, alternating runs, medians). Both sides warm up for
WARMUP + tune.settle_runs(split=True) runs: intsim's steady state is a frozen run whose thread choices
(the step's and the whole run's, intsim.runtime.tune) are made; with fewer, a 2-thread pass timed
the whole-run probing (its serial recording runs among them).

Cases: QLinearMatMul (u8 activations (M, K) x s8 weight initializer (K, N), per-tensor, -> u8) on
the gemm suite's shapes plus small-K GEMMs, and QLinearConv (batch 1, u8 x s8 -> u8) on the conv
suite's shapes. `ort_equal`: intsim's output equals onnxruntime's, byte for byte.

    run_ops_suite(threads=2, runs=7, cases=None) -> list[dict]
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .bench import CONV_CASES, GEMM_CASES, RUNS, WARMUP, graph_model, median_times, ort_session, \
    qlinear_conv_model, set_threads, timing_row
from .pipeline import load
from .runtime import tune

SMALL_K_GEMMS = [("smallk.12544x32x288", 12544, 32, 288), ("smallk.12544x16x96", 12544, 16, 96),
                 ("smallk.3136x24x144", 3136, 24, 144), ("smallk.784x32x192", 784, 32, 192)]

# (name, kind, shape): "gemm" shapes (M, K, N), "conv" shapes (C, H, W, M, KH, KW, stride, pad, group)
OPS_CASES = ([("gemm." + c[0], "gemm", c[1:]) for c in GEMM_CASES] +
             [(c[0], "gemm", c[1:]) for c in SMALL_K_GEMMS] +
             [("conv." + c[0], "conv", c[1:]) for c in CONV_CASES])

SA, SB, ZA = 0.02, 0.004, 128     # activation scale and zero point, weight scale (zero point 0)


def qlinear_matmul_model(b: np.ndarray, sy: float, zy: int):
    """QLinearMatMul(a: uint8 (M, K), b: int8 (K, N) initializer, per-tensor) -> uint8."""
    k, n = b.shape
    f = lambda v, name, t=np.float32: numpy_helper.from_array(np.array(v, t), name)  # noqa: E731
    inits = [f(SA, "sa"), f(ZA, "za", np.uint8), numpy_helper.from_array(b, "b"), f(SB, "sb"),
             f(0, "zb", np.int8), f(sy, "sy"), f(zy, "zy", np.uint8)]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])
    return graph_model([node], [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, k])],
                       [helper.make_tensor_value_info("y", TensorProto.UINT8, [None, n])], inits)


def _gemm_case(m, k, n, rng):
    a = rng.integers(0, 256, (m, k)).astype(np.uint8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    sy = SA * SB * 5476 * math.sqrt(k) / 40    # ~3 sigma of the accumulator over the u8 range
    return qlinear_matmul_model(b, sy, 128), {"a": a}, 2 * m * k * n


def _conv_case(c, h, w, m, kh, kw, stride, pad, group, rng):
    x = rng.integers(0, 256, (1, c, h, w)).astype(np.uint8)
    wt = rng.integers(-128, 128, (m, c // group, kh, kw)).astype(np.int8)
    bias = rng.integers(-5000, 5000, m).astype(np.int64)
    sy = SA * SB * 5476 * math.sqrt(c // group * kh * kw) / 40
    model = qlinear_conv_model(wt, bias, x.shape, stride, pad, group, (SA, SB, sy), (ZA, 128))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, [1, m, oh, ow]))
    return model, {"x": x}, 2 * m * (c // group) * kh * kw * oh * ow


def bench_op_case(name, kind, shape, threads, rng, runs=RUNS):
    """One single-op model timed through intsim.load(...).run(...) and onnxruntime, alternating."""
    model, feeds, ops = (_gemm_case if kind == "gemm" else _conv_case)(*shape, rng)
    prog = load(model)
    sess = ort_session(model, threads)
    # warm-up: first sight, recording, then the frozen run's thread measurements (intsim.runtime.tune)
    t = median_times({"intsim": lambda: prog.run(feeds), "ort": lambda: sess.run(None, feeds)}, runs,
                     warmup=WARMUP + tune.settle_runs(split=True))
    got = prog.run(feeds)["y"]
    want = sess.run(None, feeds)[0]
    row = timing_row(name, list(shape), ops, t, {"op": "QLinearMatMul" if kind == "gemm" else "QLinearConv",
                                                 "ort_equal": bool(np.array_equal(got, want))})
    row.update(numpy_gops=None, numpy_ms=None)
    return row


def run_ops_suite(threads: int = 2, runs: int = RUNS, cases: list | None = None, seed: int = 0,
                  progress=None) -> list[dict]:
    """Every case of OPS_CASES (or `cases`, rows of it) on `threads` threads on both sides."""
    if runs < 7:
        raise ValueError(f"bench: runs must be >= 7 for medians, got {runs}")
    set_threads(threads)
    rng = np.random.default_rng(seed)
    todo = cases or OPS_CASES
    rows = []
    for c in todo:
        try:
            rows.append(bench_op_case(*c, threads, rng, runs))
        except Exception as e:  # noqa: BLE001 - the suite reports the failure and goes on
            rows.append({"case": c[0], "error": f"{type(e).__name__}: {e}"})
        if progress is not None:
            progress(rows[-1], len(rows), len(todo))
    return rows
