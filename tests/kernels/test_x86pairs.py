"""kernels.x86pairs: the Numba kernel equals its NumPy twin, and the twin equals what
onnxruntime computes on this host for MatMulInteger and ConvInteger (u8 x s8) when the host
has no VNNI (on VNNI hosts onnxruntime is exact, which is checked instead). ConvInteger is exact
in onnxruntime on every host; the pairs conv is checked against QLinearConv in test_qdq_import."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from kernels.conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from kernels.x86pairs import (conv2d_acc_pairs, conv2d_acc_pairs_ref, gemm_acc_pairs, gemm_acc_pairs_ref,
                              host_saturates_u8s8)
from tests.kernels.strategies import int_array, zero_point


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 20), st.integers(1, 37), st.integers(1, 20), st.data())
def test_numba_equals_twin(m, k, n, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    az = data.draw(zero_point(np.uint8))
    bz = np.array([data.draw(zero_point(np.int8)) for _ in range(n)], np.int64)
    bias = np.arange(n, dtype=np.int64)
    got, want = np.empty((m, n), np.int64), np.empty((m, n), np.int64)
    gemm_acc_pairs(a, b, az, bz, bias, got)
    gemm_acc_pairs_ref(a, b, az, bz, bias, want)
    assert np.array_equal(got, want)


def _session(node, inputs, outputs, inits):
    g = helper.make_graph([node], "g", inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 70), st.integers(1, 9), st.data())
def test_matmulinteger_matches_onnxruntime(m, k, n, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    az = data.draw(zero_point(np.uint8))
    s = _session(helper.make_node("MatMulInteger", ["a", "b", "az"], ["y"]),
                 [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
                 [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
                 [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.uint8(az), "az")])
    y = s.run(None, {"a": a})[0]
    acc = np.empty((m, n), np.int64)
    z = np.zeros(n, np.int64)
    if host_saturates_u8s8():
        gemm_acc_pairs_ref(a, b, az, z, z, acc)
    else:
        acc[...] = (a.astype(np.int64) - az) @ b.astype(np.int64)
    assert np.array_equal(acc, y)


@pytest.mark.parametrize("group,cg,mg,k,stride,pad,dil", [
    (1, 3, 4, 3, 1, 1, 1), (1, 5, 2, 3, 2, 0, 1), (2, 3, 2, 3, 1, 1, 2), (1, 7, 3, 1, 1, 0, 1),
    (4, 1, 1, 3, 1, 1, 1)])
def test_convinteger_is_exact_and_pairs_twin_agrees(group, cg, mg, k, stride, pad, dil):
    rng = np.random.default_rng(group * 100 + cg * 10 + k)
    c, m = group * cg, group * mg
    x = rng.choice(np.array([0, 255, 200, 17], np.uint8), size=(2, c, 7, 6))
    w = rng.choice(np.array([-128, 127, -100, 3], np.int8), size=(m, cg, k, k))
    xz = np.uint8(rng.integers(0, 256))
    s = _session(helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], group=group, strides=[stride, stride],
                                  pads=[pad] * 4, dilations=[dil, dil]),
                 [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
                 [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
                 [numpy_helper.from_array(w, "w"), numpy_helper.from_array(xz, "xz")])
    y = s.run(None, {"x": x})[0]
    geom = ConvGeom(stride, stride, pad, pad, pad, pad, dil, dil, group)
    oh, ow = conv_out_hw(7, 6, k, k, geom)
    acc, ref = np.empty((2, m, oh, ow), np.int64), np.empty((2, m, oh, ow), np.int64)
    z = np.zeros(m, np.int64)
    conv2d_acc_pairs(x, w, int(xz), z, z, geom, acc)
    conv2d_acc_pairs_ref(x, w, int(xz), z, z, geom, ref)
    assert np.array_equal(acc, ref)
    conv2d_acc_ref(x, w, int(xz), z, z, geom, acc)
    assert np.array_equal(acc, y)  # ConvInteger: exact int32 sums
