"""kernels.x86pairs: onnxruntime's AVX2 u8 x s8 pair saturation.

1. The Numba kernels equal their NumPy int64 twins (hypothesis, extremes included).
2. Hand-computed values from the instruction semantics (vpmaddubsw saturates a[k]b[k] +
   a[k+1]b[k+1] at int16; zero points are applied afterwards on raw values).
3. The twins equal what onnxruntime computes on this host, for MatMulInteger, QLinearMatMul,
   QGemm and QLinearConv (group 1, grouped, depthwise, strides, dilations, pads, 1x1; weights
   constant or not). On a host where onnxruntime does not saturate (VNNI, non-x86) the same
   tests check that onnxruntime is exact instead. ConvInteger is exact on every host.
QLinear* outputs are compared after a power-of-two requantization written here independently
(x_scale = w_scale = 1, y_scale = 2^s: q = clamp(rint_RNE(f32(acc) * 2^-s) + 128, 0, 255)).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper

from kernels.conv import ConvGeom
from kernels.x86pairs import (batched_gemm_acc_pairs, batched_gemm_acc_pairs_ref, conv2d_acc_pairs,
                              conv2d_acc_pairs_ref, gemm_acc_pairs, gemm_acc_pairs_ref, host_saturates_u8s8)

SATURATES = host_saturates_u8s8()


Geom = ConvGeom


# ----------------------------------------------------------------------------- strategies
@st.composite
def int_array(draw, shape, dtype):
    info = np.iinfo(dtype)
    mode = draw(st.sampled_from(["random", "min", "max", "ends", "ends"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if mode == "min":
        return np.full(shape, info.min, dtype)
    if mode == "max":
        return np.full(shape, info.max, dtype)
    if mode == "ends":
        vals = np.array([info.min, info.max, info.min + 1, info.max - 1, 0 if info.min < 0 else 1], dtype)
        return rng.choice(vals, size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)


U8_ZP = st.sampled_from([0, 255, 128]) | st.integers(0, 255)
S8_ZP = st.sampled_from([0, -128, 127]) | st.integers(-128, 127)


@st.composite
def conv_case(draw, max_group=3, depthwise=None):
    """x, w, geometry; `depthwise` True/False forces C/group == M/group == 1 or not."""
    dw = draw(st.booleans()) if depthwise is None else depthwise
    group = draw(st.integers(1, max_group))
    cg, mg = (1, 1) if dw else (draw(st.integers(1, 5)), draw(st.integers(1, 4)))
    assume(dw or cg * mg > 1)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    geom = Geom(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *[draw(st.integers(0, 2)) for _ in range(4)],
                draw(st.integers(1, 2)), draw(st.integers(1, 2)), group)
    n, h, w_ = draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    oh, ow = out_hw(h, w_, kh, kw, geom)
    assume(oh >= 1 and ow >= 1)
    x = draw(int_array((n, group * cg, h, w_), np.uint8))
    w = draw(int_array((group * mg, cg, kh, kw), np.int8))
    return x, w, geom


def out_hw(h, w, kh, kw, g):
    return ((h + g.pad_top + g.pad_bottom - g.dil_h * (kh - 1) - 1) // g.stride_h + 1,
            (w + g.pad_left + g.pad_right - g.dil_w * (kw - 1) - 1) // g.stride_w + 1)


# ----------------------------------------------------------------------------- exact references
def exact_gemm(a, b, a_zp, b_zp, bias):
    return (a.astype(np.int64) - a_zp) @ (b.astype(np.int64) - np.asarray(b_zp, np.int64)) + bias


def exact_conv(x, w, x_zp, w_zp, bias, g):
    """Plain int64 convolution, zero-point padding; written for the tests."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = out_hw(h, wd, kh, kw, g)
    xp = np.full((n, c, h + g.pad_top + g.pad_bottom, wd + g.pad_left + g.pad_right), x_zp, np.int64)
    xp[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + wd] = x
    wz = w.astype(np.int64) - np.asarray(w_zp, np.int64)[:, None, None, None]
    out = np.zeros((n, m, oh, ow), np.int64) + np.asarray(bias, np.int64)[None, :, None, None]
    mg = m // g.group
    for oy in range(oh):
        for ox in range(ow):
            patch = xp[:, :, oy * g.stride_h:oy * g.stride_h + g.dil_h * (kh - 1) + 1:g.dil_h,
                       ox * g.stride_w:ox * g.stride_w + g.dil_w * (kw - 1) + 1:g.dil_w] - x_zp
            for mo in range(m):
                gi = mo // mg
                out[:, mo, oy, ox] += (patch[:, gi * cg:(gi + 1) * cg] * wz[mo]).sum(axis=(1, 2, 3))
    return out


def requant_pow2(acc, s):
    """onnxruntime's requant with multiplier 2^-s (exact in float32), RNE, + 128, clamp."""
    v = np.rint(acc.astype(np.float32) * np.float32(2.0 ** -s))
    return np.clip(v + 128, 0, 255).astype(np.uint8)


def shift_for(acc):
    peak = float(np.abs(acc).max())
    return int(max(0, np.ceil(np.log2(max(peak, 1.0) / 100.0))))


def wrap32(v):
    return np.asarray(v, np.int64).astype(np.int32)


# ----------------------------------------------------------------------------- onnxruntime
def _t(dtype):
    return {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8, np.int32: TensorProto.INT32}[dtype]


def run_one_node(node, feeds: dict, inits: dict, opset=13, ms=False):
    out_type = TensorProto.INT32 if node.op_type in ("MatMulInteger", "ConvInteger") else TensorProto.UINT8
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(k, _t(v.dtype.type), list(v.shape)) for k, v in feeds.items()],
        [helper.make_tensor_value_info(node.output[0], out_type, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=ops).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def split(const: bool, name: str, value, feeds: dict, inits: dict):
    (inits if const else feeds)[name] = value


def conv_attrs(w, g):
    return dict(group=g.group, strides=[g.stride_h, g.stride_w], dilations=[g.dil_h, g.dil_w],
                pads=[g.pad_top, g.pad_left, g.pad_bottom, g.pad_right], kernel_shape=list(w.shape[2:]))


def model_gemm(a, b, a_zp, b_zp, bias):
    """What onnxruntime computes on this host: the pairs twin, or exact sums on VNNI/non-x86."""
    if not SATURATES:
        return exact_gemm(a, b, a_zp, b_zp, bias)
    acc = np.empty((a.shape[0], b.shape[1]), np.int64)
    gemm_acc_pairs_ref(a, b, a_zp, np.broadcast_to(np.asarray(b_zp, np.int64), (b.shape[1],)), bias, acc)
    return acc


def model_conv(x, w, x_zp, w_zp, bias, g):
    if not SATURATES:
        return exact_conv(x, w, x_zp, np.full(w.shape[0], w_zp), bias, g)
    acc = np.empty((x.shape[0], w.shape[0]) + out_hw(x.shape[2], x.shape[3], *w.shape[2:], g), np.int64)
    conv2d_acc_pairs_ref(x, w, x_zp, np.full(w.shape[0], w_zp, np.int64), bias, g, acc)
    return acc


# ----------------------------------------------------------------------------- 1. Numba == twin
@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.integers(1, 70), st.integers(1, 12), st.sampled_from([np.int32, np.int64]), st.data())
def test_gemm_numba_equals_twin(m, k, n, acc_dtype, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    a_zp = data.draw(U8_ZP)
    b_zp = np.array(data.draw(st.lists(S8_ZP, min_size=n, max_size=n)), np.int64)
    bias = data.draw(int_array((n,), np.int32)).astype(np.int64)
    got, want = np.empty((m, n), acc_dtype), np.empty((m, n), acc_dtype)
    gemm_acc_pairs(a, b, a_zp, b_zp, bias, got)
    gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, want)
    assert np.array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 40), st.integers(1, 5), st.data())
def test_batched_gemm_numba_equals_twin(batch, m, k, n, data):
    a = data.draw(int_array((batch, m, k), np.uint8))
    b = data.draw(int_array((batch, k, n), np.int8))
    a_zp, b_zp, bias = data.draw(U8_ZP), np.full(n, data.draw(S8_ZP), np.int64), np.zeros(n, np.int64)
    got, want = np.empty((batch, m, n), np.int64), np.empty((batch, m, n), np.int64)
    batched_gemm_acc_pairs(a, b, a_zp, b_zp, bias, got)
    batched_gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, want)
    assert np.array_equal(got, want)


@settings(max_examples=120, deadline=None)
@given(conv_case(), U8_ZP, st.sampled_from([np.int32, np.int64]), st.data())
def test_conv_numba_equals_twin(case, x_zp, acc_dtype, data):
    x, w, g = case
    m = w.shape[0]
    w_zp = np.array(data.draw(st.lists(S8_ZP, min_size=m, max_size=m)), np.int64)
    bias = data.draw(int_array((m,), np.int32)).astype(np.int64)
    shape = (x.shape[0], m) + out_hw(x.shape[2], x.shape[3], *w.shape[2:], g)
    got, want = np.empty(shape, acc_dtype), np.empty(shape, acc_dtype)
    conv2d_acc_pairs(x, w, x_zp, w_zp, bias, g, got)
    conv2d_acc_pairs_ref(x, w, x_zp, w_zp, bias, g, want)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(conv_case(max_group=5, depthwise=True), U8_ZP, S8_ZP)
def test_depthwise_conv_is_exact(case, x_zp, w_zp):
    x, w, g = case
    m = w.shape[0]
    got = np.empty((x.shape[0], m) + out_hw(x.shape[2], x.shape[3], *w.shape[2:], g), np.int64)
    conv2d_acc_pairs(x, w, x_zp, np.full(m, w_zp), np.zeros(m, np.int64), g, got)
    assert np.array_equal(got, exact_conv(x, w, x_zp, np.full(m, w_zp), np.zeros(m), g))


# ----------------------------------------------------------------------------- 2. hand-computed
@pytest.mark.parametrize("fn", [gemm_acc_pairs, gemm_acc_pairs_ref])
@pytest.mark.parametrize("k,a_zp,want", [
    (64, 0, 32 * -32768),                       # 32 pairs of 2*(255*-128) = -65280 -> -32768
    (3, 0, -32768 + 255 * -128),                # lone last product (pairs with 0): -32640
    (1, 0, -32640),
    (64, 255, 32 * -32768 - 255 * (64 * -128)),  # zero point applied after: raw - a_zp * colsum
])
def test_hand_computed_saturation(fn, k, a_zp, want):
    acc = np.empty((2, 3), np.int64)
    fn(np.full((2, k), 255, np.uint8), np.full((k, 3), -128, np.int8), a_zp, np.zeros(3), np.zeros(3), acc)
    assert np.all(acc == want)


def test_pairs_follow_k_order():
    """Only adjacent (even, odd) K pairs saturate: 255*-128 twice in one pair saturates,
    split over two pairs it does not."""
    acc = np.empty((1, 1), np.int64)
    b = np.array([[-128], [-128], [0], [0]], np.int8)
    gemm_acc_pairs(np.array([[255, 255, 0, 0]], np.uint8), b, 0, np.zeros(1), np.zeros(1), acc)
    assert acc[0, 0] == -32768
    b = np.array([[-128], [0], [-128], [0]], np.int8)
    gemm_acc_pairs(np.array([[255, 0, 255, 0]], np.uint8), b, 0, np.zeros(1), np.zeros(1), acc)
    assert acc[0, 0] == -65280


def test_conv_pairs_run_over_ky_kx_c():
    """2 channels, 1x2 kernel: K order (kx=0,c=0), (kx=0,c=1), (kx=1,c=0), (kx=1,c=1). Channel 0
    alone holds -128 weights: in (ky,kx,c) order they sit in different pairs (exact), in
    (c,ky,kx) order they would share one pair (saturated)."""
    x = np.full((1, 2, 1, 2), 255, np.uint8)
    w = np.zeros((1, 2, 1, 2), np.int8)
    w[0, 0] = -128
    acc = np.empty((1, 1, 1, 1), np.int64)
    g = Geom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    for fn in (conv2d_acc_pairs, conv2d_acc_pairs_ref):
        fn(x, w, 0, np.zeros(1), np.zeros(1), g, acc)
        assert acc[0, 0, 0, 0] == -65280
    w = np.zeros((1, 2, 1, 2), np.int8)
    w[0, :, 0, 0] = -128                          # both channels of tap 0: one pair
    conv2d_acc_pairs(x, w, 0, np.zeros(1), np.zeros(1), g, acc)
    assert acc[0, 0, 0, 0] == -32768


# ----------------------------------------------------------------------------- 3. onnxruntime
def test_host_flag_matches_onnxruntime():
    a, b = np.full((1, 64), 255, np.uint8), np.full((64, 1), -128, np.int8)
    y = run_one_node(helper.make_node("MatMulInteger", ["a", "b"], ["y"]), {"a": a}, {"b": b})
    assert y[0, 0] == (-1048576 if SATURATES else -2088960)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([1, 1, 2, 5, 30]), st.integers(1, 200) | st.integers(380, 800), st.integers(1, 20),
       st.booleans(), st.booleans(), st.data())
def test_matmulinteger_matches_onnxruntime(m, k, n, b_const, per_column, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    a_zp = data.draw(U8_ZP)
    b_zp = np.array(data.draw(st.lists(S8_ZP, min_size=n, max_size=n)) if per_column else data.draw(S8_ZP), np.int8)
    feeds, inits = {"a": a}, {"az": np.uint8(a_zp), "bz": b_zp}
    split(b_const, "b", b, feeds, inits)
    y = run_one_node(helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"]), feeds, inits)
    assert np.array_equal(y, wrap32(model_gemm(a, b, a_zp, b_zp.astype(np.int64), np.zeros(n, np.int64))))


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["QLinearMatMul", "QGemm"]), st.sampled_from([1, 3, 17]), st.integers(1, 300),
       st.integers(1, 20), st.booleans(), st.booleans(), st.data())
def test_qlinear_matmul_and_qgemm_match_onnxruntime(op, m, k, n, b_const, per_column, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    a_zp = data.draw(U8_ZP)
    b_zp = np.array(data.draw(st.lists(S8_ZP, min_size=n, max_size=n)) if per_column else data.draw(S8_ZP), np.int8)
    bias = data.draw(int_array((n,), np.int8)).astype(np.int64) * 50 if op == "QGemm" else np.zeros(n, np.int64)
    s = shift_for(exact_gemm(a, b, a_zp, b_zp, bias))
    feeds = {"a": a}
    inits = {"sa": np.float32(1), "az": np.uint8(a_zp), "sb": np.ones(n, np.float32) if per_column else np.float32(1),
             "bz": b_zp, "sy": np.float32(2.0 ** s), "zy": np.uint8(128)}
    split(b_const, "b", b, feeds, inits)
    if op == "QGemm":
        inits["c"] = bias.astype(np.int32)
        node = helper.make_node("QGemm", ["a", "sa", "az", "b", "sb", "bz", "c", "sy", "zy"], ["y"],
                                domain="com.microsoft")
    else:
        node = helper.make_node("QLinearMatMul", ["a", "sa", "az", "b", "sb", "bz", "sy", "zy"], ["y"])
    y = run_one_node(node, feeds, inits, ms=op == "QGemm")
    assert np.array_equal(y, requant_pow2(model_gemm(a, b, a_zp, b_zp, bias), s))


QCONV_PATHS = [  # (group, C/group, M/group, k): which MLAS path onnxruntime takes on AVX2
    (1, 8, 16, 3),    # ConvSym kernel (w_zp 0, C % 4 == 0, M % 8 == 0, M >= 16)
    (1, 16, 32, 1),   # ConvSym pointwise
    (1, 5, 16, 3),    # im2col + u8s8 GEMM (C % 4 != 0)
    (1, 3, 4, 3),     # GEMM, small M
    (1, 1, 1, 3),     # one channel, group 1: ORT's depthwise kernel (exact)
    (1, 1, 3, 3),     # one input channel, 3 outputs: GEMM with K = 9
    (2, 3, 2, 3),     # grouped GEMM
    (4, 1, 2, 3),     # channel multiplier 2: grouped GEMM, not depthwise
    (5, 1, 1, 3),     # depthwise, MlasConvDepthwise (exact)
    (16, 1, 1, 3),    # depthwise, ConvSym depthwise kernel (exact)
]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(QCONV_PATHS), st.integers(1, 2), st.integers(0, 1), st.integers(1, 2),
       st.booleans(), st.sampled_from([0, 0, 3, -128]), U8_ZP, st.data())
def test_qlinearconv_matches_onnxruntime(path, stride, pad, dil, w_const, w_zp, x_zp, data):
    group, cg, mg, k = path
    g = Geom(stride, stride, pad, pad, pad, pad, dil, dil, group)
    x = data.draw(int_array((data.draw(st.integers(1, 2)), group * cg, 6, 5), np.uint8))
    w = data.draw(int_array((group * mg, cg, k, k), np.int8))
    assume(min(out_hw(6, 5, k, k, g)) >= 1)
    m = group * mg
    bias = data.draw(int_array((m,), np.int8)).astype(np.int64) * 30
    s = shift_for(exact_conv(x, w, x_zp, np.full(m, w_zp), bias, g))
    feeds = {"x": x}
    inits = {"sx": np.float32(1), "xz": np.uint8(x_zp), "sw": np.float32(1), "wz": np.int8(w_zp),
             "sy": np.float32(2.0 ** s), "zy": np.uint8(128), "bias": bias.astype(np.int32)}
    split(w_const, "w", w, feeds, inits)
    node = helper.make_node("QLinearConv", ["x", "sx", "xz", "w", "sw", "wz", "sy", "zy", "bias"], ["y"],
                            **conv_attrs(w, g))
    y = run_one_node(node, feeds, inits)
    assert np.array_equal(y, requant_pow2(model_conv(x, w, x_zp, w_zp, bias, g), s))


def test_qlinearconv_case_separates_the_models():
    """The data above can tell the models apart: on all-extreme input a 3x3x8 conv saturates."""
    x, w = np.full((1, 8, 4, 4), 255, np.uint8), np.full((16, 8, 3, 3), -128, np.int8)
    g = Geom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    acc = np.empty((1, 16, 2, 2), np.int64)
    conv2d_acc_pairs_ref(x, w, 0, np.zeros(16), np.zeros(16), g, acc)
    exact = exact_conv(x, w, 0, np.zeros(16), np.zeros(16), g)
    assert np.all(acc == 36 * -32768) and np.all(exact == 72 * 255 * -128)
    s = shift_for(exact)
    assert not np.array_equal(requant_pow2(acc, s), requant_pow2(exact, s))


@settings(max_examples=30, deadline=None)
@given(conv_case(), U8_ZP, S8_ZP)
def test_convinteger_is_exact_in_onnxruntime(case, x_zp, w_zp):
    """ConvInteger hands MLAS the weights as operand A: an s8 x u8 GEMM, portable and exact."""
    x, w, g = case
    y = run_one_node(helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], **conv_attrs(w, g)),
                     {"x": x}, {"w": w, "xz": np.uint8(x_zp), "wz": np.int8(w_zp)})
    assert np.array_equal(y, wrap32(exact_conv(x, w, x_zp, np.full(w.shape[0], w_zp), np.zeros(w.shape[0]), g)))


# ----------------------------------------------------------------------------- 4. bad input
def _gemm_args():
    return (np.zeros((2, 3), np.uint8), np.zeros((3, 4), np.int8), 0, np.zeros(4), np.zeros(4),
            np.empty((2, 4), np.int64))


@pytest.mark.parametrize("fn", [gemm_acc_pairs, gemm_acc_pairs_ref])
@pytest.mark.parametrize("index,value,word", [
    (0, np.zeros((2, 3), np.int8), "a must be"),
    (1, np.zeros((3, 4), np.uint8), "b must be"),
    (1, np.zeros((5, 4), np.int8), "do not multiply"),
    (2, 256, "a_zp"),
    (2, -1, "a_zp"),
    (3, np.full(4, 128), "b_zp"),
    (3, np.zeros(3), "b_zp"),
    (4, np.zeros(5), "bias"),
    (5, np.empty((2, 4), np.float32), "acc"),
    (5, np.empty((2, 5), np.int32), "acc"),
])
def test_gemm_rejects_bad_input(fn, index, value, word):
    args = list(_gemm_args())
    args[index] = value
    with pytest.raises(ValueError, match=word):
        fn(*args)


@pytest.mark.parametrize("fn", [conv2d_acc_pairs, conv2d_acc_pairs_ref])
@pytest.mark.parametrize("index,value,word", [
    (0, np.zeros((1, 4, 5, 5), np.int8), "x must be"),
    (1, np.zeros((2, 4, 3, 3), np.uint8), "w must be"),
    (1, np.zeros((2, 3, 3, 3), np.int8), "group"),
    (5, Geom(1, 1, 0, 0, 0, 0, 1, 1, 3), "group"),
    (5, Geom(0, 1, 0, 0, 0, 0, 1, 1, 1), "strides"),
    (1, np.zeros((2, 4, 7, 3), np.int8), "larger than"),
    (2, 300, "x_zp"),
    (3, np.zeros(3), "w_zp"),
    (6, np.empty((1, 2, 4, 4), np.int64), "acc"),
])
def test_conv_rejects_bad_input(fn, index, value, word):
    args = [np.zeros((1, 4, 5, 5), np.uint8), np.zeros((2, 4, 3, 3), np.int8), 0, np.zeros(2), np.zeros(2),
            Geom(1, 1, 0, 0, 0, 0, 1, 1, 1), np.empty((1, 2, 3, 3), np.int64)]
    args[index] = value
    with pytest.raises(ValueError, match=word):
        fn(*args)
