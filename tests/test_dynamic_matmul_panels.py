"""A dynamically quantized MatMulInteger / ConvInteger (x zero point fed at run time by
DynamicQuantizeLinear, constant weights): the weight panels are packed once for all runs and
the node's binding is kept per zero point (intsim.steps.compute._weight_panels, _bound_of),
and every run still equals onnxruntime bit for bit, whatever zero point the input brings."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import intsim
from intsim.steps import engines
from kernels.cpu import best_isa

from .ortutil import run_ort


def _model(conv: bool, w_zp: int):
    rng = np.random.default_rng(7 + conv)
    if conv:
        w = rng.integers(-128, 128, (6, 5, 3)).astype(np.int8)
        x_shape, y_shape = [2, 5, 19], [2, 6, 17]
        op = helper.make_node("ConvInteger", ["xq", "w", "xz", "wz"], ["acc"], name="mm")
    else:
        w = rng.integers(-128, 128, (24, 16)).astype(np.int8)
        x_shape, y_shape = [3, 7, 24], [3, 7, 16]
        op = helper.make_node("MatMulInteger", ["xq", "w", "xz", "wz"], ["acc"], name="mm")
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dq"), op,
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["xs", "ws"], ["s"], name="scales"),
             helper.make_node("Mul", ["accf", "s"], ["y"], name="out")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(w_zp, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.0123, np.float32), "ws")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m, x_shape


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("w_zp", [0, -128, 127])
def test_dynamic_zero_points_equal_onnxruntime(conv, w_zp, monkeypatch):
    packs = []
    # the packers the engines call (the exact SIMD GEMM's, the pair-saturating one's, the conv's)
    for mod, name in [(engines.packing, "pack_b"), (engines.fast_pairs, "pack_b_pairs"),
                      (engines.fast_conv, "pack_conv")]:
        monkeypatch.setattr(mod, name, lambda *a, _f=getattr(mod, name), **k: packs.append(1) or _f(*a, **k))
    m, shape = _model(conv, w_zp)
    prog = intsim.load(m, target="ort")
    rng = np.random.default_rng(3)
    zps = set()
    # inputs all >= 0, all <= 0 (zero points 0 and 255), spanning both signs, and repeats
    for lo, hi in [(0.0, 3.0), (-3.0, 0.0), (-1.0, 2.0), (-2.5, 0.5), (0.0, 3.0), (-1.0, 2.0), (-9.0, 1.0)]:
        x = rng.uniform(lo, hi, shape).astype(np.float32)
        x.flat[0], x.flat[-1] = lo, hi
        want = run_ort(m, {"x": x})["y"]
        zps.add(int(run_ort(_zp_model(m), {"x": x})["xz"]))
        got = prog.run({"x": x})["y"]
        assert np.array_equal(got, want), int(np.sum(got != want))
    assert {0, 255} <= zps and len(zps) >= 4         # the runs met several zero points
    if best_isa() != "portable":
        assert len(packs) == 1                          # panels packed once, not per run or per zero point


def _zp_model(m):
    """m with DynamicQuantizeLinear's zero point as an extra output (to see the runs' zero points)."""
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    m2.graph.output.append(helper.make_tensor_value_info("xz", TensorProto.UINT8, []))
    return m2


@pytest.mark.parametrize("shape", [(), (1,), (5,), (3, 7, 24), (2, 33)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dynamic_quantize_equals_onnxruntime(shape, seed):
    """intsim.steps.quant.dynamic_quantize (y, scale, zero point) against onnxruntime's
    DynamicQuantizeLinear: signs mixed, all >= 0, all <= 0, all zero, half-way ties."""
    from intsim.steps.quant import dynamic_quantize
    g = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in
                           [("y", TensorProto.UINT8, list(shape)), ("s", TensorProto.FLOAT, []),
                            ("z", TensorProto.UINT8, [])]])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    rng = np.random.default_rng(seed)
    for lo, hi in [(-3.0, 5.0), (0.0, 2.0), (-7.0, 0.0), (0.0, 0.0)]:
        x = rng.uniform(lo, hi, shape).astype(np.float32)
        if x.size > 2 and hi > lo:
            x.flat[0], x.flat[1] = lo, hi
            step = np.float32((max(hi, 0) - min(lo, 0)) / 255)
            x.flat[2:] = (np.round(x.flat[2:] / step) + np.float32(0.5)) * step   # ties of rint(x / scale)
            x.flat[2:] = np.clip(x.flat[2:], lo, hi)
        want = run_ort(m, {"x": x})
        y, s, z = dynamic_quantize(x)
        assert np.array_equal(y, want["y"]) and y.dtype == np.uint8 and y.shape == shape
        assert np.float32(s) == want["s"] and np.uint8(z) == want["z"]
