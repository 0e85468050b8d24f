"""DequantizeLinear -> MatMul/Gemm with no QuantizeLinear after it (transformer and dynamically
quantized graphs): onnxruntime fuses it into com.microsoft MatMulIntegerToFloat or a QGemm with
a float output (integer accumulation, int32 bias inside, times f32(a_scale * b_scale)); intsim
emits the same integer matmul and the dequantization of its accumulator, and equals
onnxruntime bit for bit. A MatMul -> Add(bias) that onnxruntime's MatMulAddFusion turns into a
float Gemm first stays float."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import intsim
from intsim.pipeline import import_onnx

from ..ortutil import optimized_op_types, run_ort
from .qdq_build import Builder


def _model(tx, per_channel, rank3, dynamic_b, bias_shape):
    rng = np.random.default_rng(int(per_channel) + 2 * rank3 + 4 * dynamic_b)
    b = Builder()
    zx = tx(0 if tx is np.int8 else 131)
    xs = np.float32(0.0173)
    x = b.dq(b.q("x", xs, zx), xs, zx)
    if dynamic_b:
        wd = b.dq(b.q("w", np.float32(0.0291), zx), np.float32(0.0291), zx)
        w_shape = [4, 24, 16] if rank3 else [24, 16]
    else:
        ws = rng.uniform(0.005, 0.02, 16).astype(np.float32) if per_channel else np.float32(0.011)
        wd = b.dq(b.const("w", rng.integers(-128, 128, (24, 16)).astype(np.int8)), ws,
                  np.zeros(16, np.int8) if per_channel else np.int8(0), axis=1 if per_channel else None)
        w_shape = None
    out = "mm" if bias_shape else "y"
    b.node("MatMul", [x, wd], [out], name="matmul")
    if bias_shape:
        b.node("Add", [out, b.const("bias", rng.normal(size=bias_shape).astype(np.float32))], ["y"])
    x_shape = [4, 7, 24] if rank3 else [7, 24]
    y_shape = x_shape[:-1] + [16]
    inputs = [("x", x_shape)] + ([("w", w_shape)] if dynamic_b else [])
    return b.model(inputs, [("y", y_shape)]), {k: rng.normal(0, 2, s).astype(np.float32) for k, s in inputs}


@pytest.mark.parametrize("tx", [np.uint8, np.int8])
@pytest.mark.parametrize("per_channel,rank3,dynamic_b,bias_shape", [
    (False, False, False, None), (True, False, False, None), (False, True, True, None),
    (True, True, False, (7, 16)),       # 3-D input, bias not (N): no MatMulAddFusion
    (False, False, True, (7, 1, 16))])  # bias of rank 3: no MatMulAddFusion
def test_dq_matmul_without_q_is_matmul_integer_to_float(tx, per_channel, rank3, dynamic_b, bias_shape):
    m, feeds = _model(tx, per_channel, rank3, dynamic_b, bias_shape)
    assert "MatMulIntegerToFloat" in optimized_op_types(m)
    ops = [n.op if n.op != "onnx" else n.attrs["op_type"] for n in import_onnx(m).nodes]
    assert "matmul" in ops and "MatMul" not in ops
    want = run_ort(m, feeds)["y"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # nothing is left float: no warning
        got = intsim.load(m, target="ort").run(feeds)["y"]
    assert np.array_equal(got, want), int(np.sum(got != want))


@pytest.mark.parametrize("rank3", [False, True])
def test_matmul_then_bias_add_stays_float_as_onnxruntime_makes_it_a_float_gemm(rank3):
    m, feeds = _model(np.uint8, True, rank3, False, (16,))
    assert "Gemm" in optimized_op_types(m) and "MatMulIntegerToFloat" not in optimized_op_types(m)
    with pytest.warns(UserWarning, match="MatMulAddFusion makes MatMul -> Add a float Gemm"):
        prog = intsim.load(m, target="ort")
    assert "matmul" not in [n.op for n in prog.graph.nodes]


@pytest.mark.parametrize("tx", [np.uint8, np.int8])
@pytest.mark.parametrize("bias,per_channel", [(False, False), (True, False), (True, True)])
def test_dq_gemm_without_q_is_qgemm_with_float_output(tx, bias, per_channel):
    """QGemm without y_scale: (acc + int32 bias) * f32(a_scale * b_scale[n]) in float32."""
    rng = np.random.default_rng(int(bias) + 2 * int(per_channel))
    b = Builder()
    zx, xs = tx(0 if tx is np.int8 else 3), np.float32(0.0173)
    x = b.dq(b.q("x", xs, zx), xs, zx)
    ws = rng.uniform(0.005, 0.02, 16).astype(np.float32) if per_channel else np.float32(0.011)
    wd = b.dq(b.const("w", rng.integers(-128, 128, (16, 24)).astype(np.int8)), ws,
              np.zeros(16, np.int8) if per_channel else np.int8(0), axis=0 if per_channel else None)
    ins = [x, wd]
    if bias:
        ins.append(b.dq(b.const("bias", rng.integers(-9999, 9999, 16).astype(np.int32)),
                        (xs * np.asarray(ws, np.float32)).astype(np.float32),
                        np.zeros(16, np.int32) if per_channel else np.int32(0), axis=0 if per_channel else None))
    b.node("Gemm", ins, ["y"], name="gemm", transB=1)
    m = b.model([("x", [8, 24])], [("y", [8, 16])])
    assert "QGemm" in optimized_op_types(m)
    assert "matmul" in [n.op for n in import_onnx(m).nodes]
    feeds = {"x": rng.normal(0, 2, (8, 24)).astype(np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = intsim.load(m, target="ort").run(feeds)["y"]
    want = run_ort(m, feeds)["y"]
    assert np.array_equal(got, want), int(np.sum(got != want))
