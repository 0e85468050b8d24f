"""passes.shape_of_quantized: Shape of a dequantized tensor reads the integer tensor, and a
DequantizeLinear read only by Shape nodes is dropped; the run stays bit-exact with onnxruntime
(a dynamic-batch channel shuffle quantized by onnxruntime, batches 1 and 3)."""
import numpy as np

import intsim
from benchmarks.op_gaps import shuffle_dyn
from intsim.ir import Graph, IntType, Node, Tensor
from intsim.passes.shape_of_quantized import read_shapes_from_integers

from .ortutil import quantize, run_ort


def test_shuffle_shape_reads_integers_and_equals_onnxruntime():
    rng = np.random.default_rng(0)
    q = quantize(shuffle_dyn(rng, 8, 5), [{"x": rng.standard_normal((2, 8, 5, 5)).astype(np.float32)} for _ in range(4)])
    prog = intsim.load(q)
    g = prog.graph
    shapes = [n for n in g.nodes if n.op == "onnx" and n.attrs.get("op_type") == "Shape"]
    assert shapes and all(isinstance(g.tensors[n.inputs[0]].dtype, IntType) for n in shapes)
    consumers = g.consumers()
    for n in g.nodes:
        if n.op == "dequantize":
            readers = consumers.get(n.outputs[0], [])
            assert n.outputs[0] in g.outputs or any(r.attrs.get("op_type") not in ("Shape", "Size") for r in readers)
    for batch in (1, 3, 1):
        f = {"x": rng.standard_normal((batch, 8, 5, 5)).astype(np.float32)}
        for k, v in run_ort(q, f).items():
            np.testing.assert_array_equal(prog.run(f)[k], v)


def test_only_shape_and_size_of_a_dequantize_are_rewired():
    t8, tf = IntType(8, False), None
    nodes = (Node("dequantize", "dq", ("x", "s", "z"), ("d",), {}),
             Node("onnx", "shape", ("d",), ("shp",), {"op_type": "Shape"}),
             Node("onnx", "size", ("d",), ("sz",), {"op_type": "Size"}),
             Node("onnx", "relu", ("d",), ("r",), {"op_type": "Relu"}),
             Node("onnx", "ms", ("d",), ("m",), {"op_type": "Shape", "domain": "com.example"}))
    tensors = {k: Tensor(k, None, t8 if k == "x" else tf) for k in ("x", "d", "shp", "sz", "r", "m")}
    g = Graph(tensors, nodes, ("x",), ("shp", "sz", "r", "m"), {})
    out = {n.name: n.inputs for n in read_shapes_from_integers(g).nodes}
    assert out["shape"] == ("x",) and out["size"] == ("x",)
    assert out["relu"] == ("d",) and out["ms"] == ("d",) and out["dq"] == ("x", "s", "z")
