"""One thread budget (issue 19): a model with a float-island MatMul, run by intsim with NumPy's
BLAS left at its own thread count (before: INTSIM_LIMIT_BLAS=0) and held to 1 thread during runs
(after: the default, intsim.runtime.threads), alternating run by run in one process, medians.

The model: QLinearMatMul (u8, M x K @ K x K, Numba's kernels on `--threads` threads) ->
DequantizeLinear -> float MatMul (K x N, the ONNX reference evaluator -> NumPy -> OpenBLAS) ->
QuantizeLinear, the shape of the issue's measurement (64x256x128). Also times the float matmul
alone, the way the island calls it, with BLAS at its own count and at 1.

    python -m benchmarks.blas_threads [--threads 2] [--runs 41] [--json F]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def island_model(m=64, k=256, n=128, seed=0):
    """x float (m, k) -> Q -> QLinearMatMul (k x k, int8) -> DQ -> MatMul (float k x n) -> Q u8."""
    rng = np.random.default_rng(seed)
    f = lambda v, name, t=np.float32: numpy_helper.from_array(np.array(v, t), name)  # noqa: E731
    inits = [f(0.05, "s"), f(128, "z", np.uint8), f(0.01, "sw"), f(0, "zw", np.int8), f(0.5, "sq"),
             numpy_helper.from_array(rng.integers(-128, 128, (k, k)).astype(np.int8), "wq"),
             numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "wf"), f(0.25, "so")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("QLinearMatMul", ["xq", "s", "z", "wq", "sw", "zw", "sq", "z"], ["hq"]),
             helper.make_node("DequantizeLinear", ["hq", "sq", "z"], ["h"]),
             helper.make_node("MatMul", ["h", "wf"], ["y"]),
             helper.make_node("QuantizeLinear", ["y", "so", "z"], ["yq"])]
    g = helper.make_graph(nodes, "island", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("yq", TensorProto.UINT8, [m, n])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=41)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import threadpoolctl

    import intsim
    from intsim.bench import median_times
    from intsim.runtime import threads as budget
    from kernels import threads as kernel_threads

    kernel_threads.set_num_threads(args.threads)
    model = island_model()
    # target tflite: its float islands run on the ONNX reference evaluator, i.e. NumPy's BLAS (under
    # `ort` they run in one-thread onnxruntime sessions and never call it)
    budget.LIMIT_BLAS = False
    before = intsim.load(model, target="tflite")
    budget.LIMIT_BLAS = True
    after = intsim.load(model, target="tflite")
    x = np.random.default_rng(1).standard_normal((64, 256)).astype(np.float32)
    feeds = {"x": x}
    assert np.array_equal(before.run(feeds)["yq"], after.run(feeds)["yq"])
    blas = threadpoolctl.threadpool_info()
    blas_threads = [i["num_threads"] for i in blas if i["user_api"] == "blas"]
    t = median_times({"before": lambda: before.run(feeds), "after": lambda: after.run(feeds)}, args.runs)
    h = np.random.default_rng(2).standard_normal((64, 256)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((256, 128)).astype(np.float32)
    ctl = threadpoolctl.ThreadpoolController()
    with ctl.limit(limits=1, user_api="blas"):
        one = median_times({"matmul": lambda: h @ w}, args.runs)["matmul"]
    own = median_times({"matmul": lambda: h @ w}, args.runs)["matmul"]
    res = {"threads": args.threads, "blas_threads": blas_threads, "runs": args.runs,
           "model_before_ms": t["before"][0] * 1e3, "model_after_ms": t["after"][0] * 1e3,
           "matmul_blas_own_ms": own[0] * 1e3, "matmul_blas_1_ms": one[0] * 1e3}
    print(f"float-island model 64x256x256 -> 64x256x128, {args.threads} kernel threads, BLAS {blas_threads} threads, "
          f"median of {args.runs} alternating runs:")
    print(f"  before (BLAS its own threads): {res['model_before_ms']:.3f} ms")
    print(f"  after  (BLAS 1 thread in runs): {res['model_after_ms']:.3f} ms")
    print(f"  the float matmul alone: BLAS own threads {res['matmul_blas_own_ms']:.3f} ms, 1 thread "
          f"{res['matmul_blas_1_ms']:.3f} ms")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
