"""Low-bit and wide formats end to end: int4/uint4 weights (ONNX INT4, two per byte, first
element in the low nibble) and 16-bit activations, quantized by onnxruntime's quantizer.
onnxruntime runs these through its float path (it has no integer kernel for them), so intsim's
integer result (fusion policy "integer") is compared with onnxruntime's fake-quant result: at most 1 LSB apart and at
least 99.9% equal, every difference on a rounding tie of the exact value."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import intsim
from tests.ortutil import quantize, run_ort
from tests.test_qdq_import import _conv_block, _inputs


@pytest.mark.parametrize("act,weight", [("u8", "s4"), ("u8", "u4"), ("s16", "s8"), ("u16", "s4")])
def test_lowbit_conv_block_within_one_lsb_of_fakequant(act, weight):
    fm = _conv_block(c_in=4, c_out=8, hw=10)
    fm.opset_import[0].version = 21
    calib = [{"x": _inputs(fm, 4, s)} for s in range(8)]
    q = quantize(fm, calib, fmt="qdq", act=act, weight=weight, per_channel=True)
    elem = {"s4": TensorProto.INT4, "u4": TensorProto.UINT4, "s8": TensorProto.INT8}[weight]
    assert any(i.data_type == elem for i in q.graph.initializer), "weights stored in the narrow ONNX type"
    x = _inputs(fm, 16, 5)
    # onnxruntime 1.32 runs 16-bit Conv/Gemm in float (the `ort` target follows it: tests/clients/
    # test_zoo_nq.py); the integer datapath they mean is the "integer" fusion policy
    prog = intsim.load(q, fusion="integer")
    ops = [n.op for n in prog.graph.nodes]
    assert "conv" in ops and "matmul" in ops, ops  # lowered to integer layers
    outs, taps = prog.run({"x": x}, taps=True)
    # compare the integer output of the first conv with onnxruntime's fake-quant value of the same tensor
    conv = next(n for n in prog.graph.nodes if n.op == "conv")
    name = conv.outputs[0]
    m2 = onnx.ModelProto()
    m2.CopyFrom(q)
    m2.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    want = run_ort(m2, {"x": x}, optimized=False)[name].astype(np.int64)
    got = taps[conv.name]["outputs"][name].astype(np.int64)
    d = np.abs(got - want)
    assert d.max() <= 1 and (d == 0).mean() >= 0.999, (d.max(), (d == 0).mean())
