"""Per-op gaps of issue 19, one synthetic few-node model each (`python -m benchmarks.op_gaps
[--runs N] [--threads T] [--only NAME]`): a float graph quantized by onnxruntime's
quantize_static (QDQ, u8 activations, s8 per-channel weights), then `intsim bench --profile`'s
per-node medians beside onnxruntime's own node profile, and whole-run times (alternating).

Models (shapes of the torchvision layers where the issue measured the gap, batch 1):
concat (ShuffleNetV2: two 58-channel 28x28 branches), se_mul (EfficientNet squeeze-excite:
(1,96,56,56) x sigmoid((1,96,1,1))), sigmoid, hardsigmoid (MobileNetV3), dequantize (the
float output of a quantized tensor), erf (GELU of a transformer, (1,128,512)),
matmul_act (activation x activation, attention scores (1,4,128,64) x (1,4,64,128)),
shuffle_dyn (ShuffleNetV2's channel shuffle with a dynamic batch: Shape/Gather/Reshape).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from intsim.bench import median_times, ort_session, set_threads
from intsim.bench_profile import model_feeds, profile_model
from intsim.pipeline import load


def _model(nodes, inputs, outputs, inits, opset=17):
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _conv(name, x, y, cin, cout, rng, k=1, group=1):
    w = (rng.standard_normal((cout, cin // group, k, k)) * 0.2).astype(np.float32)
    return helper.make_node("Conv", [x, name + "_w"], [y], pads=[k // 2] * 4, group=group), {name + "_w": w}


def concat(rng):
    n1, i1 = _conv("a", "x", "a", 58, 58, rng)
    n2, i2 = _conv("b", "x", "b", 58, 58, rng, 3, 58)
    n3 = helper.make_node("Relu", ["b"], ["br"])
    cat = helper.make_node("Concat", ["a", "br"], ["y"], axis=1)
    return _model([n1, n2, n3, cat], [("x", [1, 58, 28, 28])], [("y", [1, 116, 28, 28])], {**i1, **i2})


def se_mul(rng):
    n1, i1 = _conv("s", "p", "s", 96, 96, rng)
    return _model([helper.make_node("GlobalAveragePool", ["x"], ["p"]), n1,
                   helper.make_node("Sigmoid", ["s"], ["g"]), helper.make_node("Mul", ["x", "g"], ["y"])],
                  [("x", [1, 96, 56, 56])], [("y", [1, 96, 56, 56])], i1)


def sigmoid(rng):
    n1, i1 = _conv("c", "x", "c", 32, 32, rng)
    return _model([n1, helper.make_node("Sigmoid", ["c"], ["y"])], [("x", [1, 32, 112, 112])],
                  [("y", [1, 32, 112, 112])], i1)


def hardsigmoid(rng):
    n1, i1 = _conv("c", "x", "c", 16, 16, rng)
    return _model([n1, helper.make_node("HardSigmoid", ["c"], ["h"], alpha=1 / 6, beta=0.5),
                   helper.make_node("Mul", ["c", "h"], ["y"])], [("x", [1, 16, 112, 112])],
                  [("y", [1, 16, 112, 112])], i1)


def dequantize(rng):
    n1, i1 = _conv("c", "x", "y", 64, 64, rng)
    return _model([n1], [("x", [1, 64, 56, 56])], [("y", [1, 64, 56, 56])], i1)


def erf(rng):
    w = (rng.standard_normal((512, 512)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Div", ["h", "sq2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["h", "e1"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    return _model(nodes, [("x", [1, 128, 512])], [("y", [1, 128, 512])],
                  {"w": w, "sq2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)})


def matmul_act(rng):
    return _model([helper.make_node("MatMul", ["q", "k"], ["y"])], [("q", [1, 4, 128, 64]), ("k", [1, 4, 64, 128])],
                  [("y", [1, 4, 128, 128])], {})


def shuffle_dyn(rng, c=116, hw=28):
    """The channel shuffle (2 groups) of a c-channel hw x hw map on a dynamic batch: target shapes
    from Shape -> Gather -> Unsqueeze -> Concat, then Reshape / Transpose / Reshape."""
    n1, i1 = _conv("c", "x", "c", c, c, rng)
    nodes = [n1, helper.make_node("Shape", ["c"], ["shp"]),
             helper.make_node("Gather", ["shp", "i0"], ["nb"], axis=0),
             helper.make_node("Unsqueeze", ["nb", "ax0"], ["nb1"]),
             helper.make_node("Concat", ["nb1", "g5"], ["s5"], axis=0),
             helper.make_node("Reshape", ["c", "s5"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Concat", ["nb1", "g4"], ["s4"], axis=0),
             helper.make_node("Reshape", ["t", "s4"], ["y"])]
    inits = {"i0": np.array(0, np.int64), "ax0": np.array([0], np.int64),
             "g5": np.array([2, c // 2, hw, hw], np.int64), "g4": np.array([c, hw, hw], np.int64), **i1}
    return _model(nodes, [("x", ["N", c, hw, hw])], [("y", ["N", c, hw, hw])], inits)


MODELS = {f.__name__: f for f in (concat, se_mul, sigmoid, hardsigmoid, dequantize, erf, matmul_act, shuffle_dyn)}


class _Reader:
    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def quantized(name: str, d: str) -> str:
    """The QDQ model of MODELS[name], written under d; its path."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    rng = np.random.default_rng(0)
    m = MODELS[name](rng)
    src, dst = os.path.join(d, name + ".onnx"), os.path.join(d, name + ".qdq.onnx")
    onnx.save(m, src)
    shapes = {i.name: [d.dim_value or 1 for d in i.type.tensor_type.shape.dim] for i in m.graph.input}
    calib = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(4)]
    quantize_static(src, dst, _Reader(calib), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", action="append", default=None)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        for name in args.only or MODELS:
            path = quantized(name, d)
            p = profile_model(path, runs=args.runs, threads=args.threads, batch=1)
            print(f"== {name}: whole run intsim {p['intsim_run_ms']:.3f} ms, onnxruntime {p['ort_run_ms']:.3f} ms "
                  f"(ratio {p['ort_run_ms'] / p['intsim_run_ms']:.2f})")
            for r in p["rows"]:
                if (r["intsim_ms"] or 0) > 0.005 or (r["ort_ms"] or 0) > 0.005:
                    print(f"   {r['op'] or '-':12} {r['node'][:40]:40} intsim "
                          f"{'-' if r['intsim_ms'] is None else round(r['intsim_ms'], 3):>7} ort "
                          f"{'-' if r['ort_ms'] is None else round(r['ort_ms'], 3):>7} {r['ort_op'] or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
