"""kernels.fast_pairs: the vpmaddubsw GEMM equals kernels.x86pairs' NumPy twin bit for bit.

1. Hypothesis: gemm_pairs_packed == x86pairs.gemm_acc_pairs_ref for M, N, K in 1..300 (K odd
   and not a multiple of 4 drawn often), values at the ends (a = 255, b = -128 / 127), zero
   points at the ends, int32 and int64 accumulators.
2. Hand-computed saturation from the instruction semantics (not from the code under test).
3. Several K blocks (K > 512), N and M blocks, threads, the int64 fallback for huge K.
4. Validation: bad shapes, dtypes, zero points and forged packs raise ValueError.
5. onnxruntime's MatMulInteger on this host, when it saturates (no VNNI).
6. conv2d_pairs_fast == x86pairs.conv2d_acc_pairs_ref (groups, depthwise, strides, dilations,
   pads, 1x1, extremes), and its validation.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels.conv import ConvGeom
from kernels import conv_rows
from kernels.fast_pairs import (K_RAW_EXACT, PackedPairs, conv2d_pairs_fast, conv2d_pairs_fast_ref,
                                conv2d_pairs_fast_requant,
                                gemm_pairs_packed, gemm_pairs_packed_ref, pack_b_pairs, pack_conv_pairs, run_raw)
from kernels.x86pairs import conv2d_acc_pairs_ref, gemm_acc_pairs_ref, host_saturates_u8s8
from tests.kernels.strategies import biases, int_array, zero_point, zero_points

pytestmark = pytest.mark.skipif(not cpu.has_avx2(), reason=cpu.missing("avx2") or "no avx2")

DIM = st.integers(1, 300)
K_DIM = st.integers(0, 149).map(lambda j: 2 * j + 1) | st.integers(1, 300).filter(lambda k: k % 4) | DIM


def both(a, b, a_zp, b_zp, bias, dtype):
    """(fast, twin) accumulators."""
    got, want = np.empty((a.shape[0], b.shape[1]), dtype), np.empty((a.shape[0], b.shape[1]), dtype)
    gemm_pairs_packed(a, a_zp, pack_b_pairs(b), b_zp, bias, got)
    gemm_acc_pairs_ref(a, b, a_zp, b_zp, bias, want)
    return got, want


# ----------------------------------------------------------------------------- 1. fast == twin
@settings(max_examples=80, deadline=None)
@given(DIM, K_DIM, DIM, st.sampled_from([np.int32, np.int64]), st.data())
def test_gemm_equals_twin(m, k, n, dtype, data):
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    a_zp, b_zp = data.draw(zero_point(np.uint8)), data.draw(zero_points(np.int8, n))
    got, want = both(a, b, a_zp, b_zp, data.draw(biases(n)), dtype)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(DIM, K_DIM, DIM, st.sampled_from([np.int32, np.int64]), st.sampled_from([0, 2**20, 2**31 - 1, -2**31, 2**40]),
       st.data())
def test_gemm_without_weight_zero_points_equals_twin(m, k, n, dtype, bias_scale, data):
    """b_zp == 0: bias - a_zp*S[n] starts the int32 sums in the micro-kernel (no row-sum pass);
    int32 acc wraps, int64 acc stays exact (falls back when the start could wrap)."""
    a = data.draw(int_array((m, k), np.uint8))
    b = data.draw(int_array((k, n), np.int8))
    bias = np.asarray(data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n)), np.int64) * bias_scale
    got, want = both(a, b, data.draw(zero_point(np.uint8)), np.zeros(n, np.int64), bias, dtype)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 13), st.integers(1, 37), st.integers(1, 35), st.sampled_from([0, 255]),
       st.sampled_from([-128, 127]), st.sampled_from([-128, 127, 0]), st.sampled_from([np.int32, np.int64]))
def test_extremes_equal_twin(m, k, n, a_zp, b_zp, b_val, dtype):
    """Every product pair saturates (a = 255, b = -128 or 127) with zero points at the ends."""
    a = np.full((m, k), 255, np.uint8)
    b = np.full((k, n), b_val, np.int8)
    got, want = both(a, b, a_zp, np.full(n, b_zp, np.int64), np.zeros(n, np.int64), dtype)
    assert np.array_equal(got, want)


def test_twin_method_matches_x86pairs_twin():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (9, 19), dtype=np.uint8)
    b = rng.integers(-128, 128, (19, 21)).astype(np.int8)
    bz, bias = rng.integers(-128, 128, 21), rng.integers(-2**31, 2**31, 21)
    got, want = np.empty((9, 21), np.int64), np.empty((9, 21), np.int64)
    gemm_pairs_packed_ref(a, 7, pack_b_pairs(b), bz, bias, got)
    gemm_acc_pairs_ref(a, b, 7, bz, bias, want)
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- 2. hand values
@pytest.mark.parametrize("k", [64, 65, 66, 3, 1])
@pytest.mark.parametrize("b_val", [-128, 127])
def test_saturation_by_hand(k, b_val):
    """raw = (k // 2) * sat16(2 * 255 * b) + (k % 2) * 255 * b, zero points 0."""
    a = np.full((2, k), 255, np.uint8)
    b = np.full((k, 3), b_val, np.int8)
    pair = min(max(2 * 255 * b_val, -32768), 32767)
    want = (k // 2) * pair + (k % 2) * 255 * b_val
    acc = np.empty((2, 3), np.int32)
    gemm_pairs_packed(a, 0, pack_b_pairs(b), np.zeros(3, np.int64), np.zeros(3, np.int64), acc)
    assert (acc == want).all()
    if k == 64 and b_val == -128:
        assert want == -1048576           # the figure measured from onnxruntime on this host


def test_pairs_are_even_odd_adjacent():
    """a = (0, 255, 255, 0), b = (0, -128, -128, 0): pairs (0,1) and (2,3) each hold one
    product, nothing saturates: raw = -65280. Pairing (1,2) would give -32768."""
    a = np.array([[0, 255, 255, 0]], np.uint8)
    b = np.array([[0], [-128], [-128], [0]], np.int8)
    acc = np.empty((1, 1), np.int64)
    gemm_pairs_packed(a, 0, pack_b_pairs(b), np.zeros(1, np.int64), np.zeros(1, np.int64), acc)
    assert acc[0, 0] == -65280


def test_zero_points_apply_on_raw_values():
    """a_zp = 255, b_zp = -128 with a = 255, b = -128: the exact product is 0, but the raw
    pairs saturate: acc = K/2*(-32768) - 255*K*(-128) + 128*K*255 - K*255*128."""
    k = 8
    a = np.full((1, k), 255, np.uint8)
    b = np.full((k, 1), -128, np.int8)
    acc = np.empty((1, 1), np.int64)
    gemm_pairs_packed(a, 255, pack_b_pairs(b), np.array([-128]), np.zeros(1, np.int64), acc)
    assert acc[0, 0] == (k // 2) * -32768 + 255 * 128 * k + 128 * 255 * k - k * 255 * 128


# ----------------------------------------------------------------------------- 3. blocking
@pytest.mark.parametrize("m,k,n", [(100, 1030, 37), (7, 2049, 290), (200, 515, 17), (1, 4099, 1)])
def test_several_blocks(m, k, n):
    rng = np.random.default_rng(m * k + n)
    a = rng.choice(np.array([0, 255, 254, 1, 128], np.uint8), (m, k))
    b = rng.choice(np.array([-128, 127, -127, 0, 5], np.int8), (k, n))
    bz, bias = rng.integers(-128, 128, n), rng.integers(-2**31, 2**31, n)
    for dtype in (np.int32, np.int64):
        got, want = both(a, b, 3, bz, bias, dtype)
        assert np.array_equal(got, want)


@pytest.mark.parametrize("native", [True, False])
def test_threads_do_not_change_raw(native, monkeypatch):
    """2 and 3 threads, through Numba's parallel region (native) or the Python pool, give the
    one-thread sums."""
    from kernels import threads
    monkeypatch.setattr(threads, "NATIVE_THREADS", native)
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (250, 300), dtype=np.uint8)
    packed = pack_b_pairs(rng.integers(-128, 128, (300, 70)).astype(np.int8))
    one = np.empty((250, 70), np.int32)
    run_raw(a, packed, one, threads=1)
    for threads in (2, 3):
        many = np.full((250, 70), 7, np.int32)
        run_raw(a, packed, many, threads=threads)
        assert np.array_equal(one, many)


@pytest.mark.parametrize("m,k,n", [(12, 24, 32), (13, 24, 32), (6, 1028, 16), (1, 4, 1), (49, 516, 144), (12, 27, 32)])
def test_a_read_in_place_and_sums_straight_into_acc(m, k, n):
    """K % 4 == 0: full tiles read A in place (the last partial tile is packed); M % 6 == 0 and
    N % 16 == 0: an int32 acc receives the sums directly. Extreme values, both acc dtypes."""
    rng = np.random.default_rng(m + k + n)
    a = rng.choice(np.array([0, 1, 254, 255], np.uint8), (m, k))
    b = rng.choice(np.array([-128, -127, 0, 126, 127], np.int8), (k, n))
    bz, bias = rng.integers(-128, 128, n), rng.integers(-2**31, 2**31, n)
    for dtype in (np.int32, np.int64):
        got, want = both(a, b, 255, bz, bias, dtype)
        assert np.array_equal(got, want)
    raw, twin = np.empty((m, n), np.int32), np.empty((m, n), np.int32)
    run_raw(a, pack_b_pairs(b), raw)
    gemm_acc_pairs_ref(a, b, 0, np.zeros(n, np.int64), np.zeros(n, np.int64), twin)
    assert np.array_equal(raw, twin)


def test_huge_k_int64_stays_exact():
    """K > K_RAW_EXACT: the int32 raw sum could wrap, so an int64 acc must still hold the sum;
    an int32 acc wraps like MLAS."""
    k = K_RAW_EXACT + 6
    a = np.full((1, k), 255, np.uint8)
    b = np.full((k, 2), 127, np.int8)
    for dtype in (np.int64, np.int32):
        got, want = both(a, b, 0, np.zeros(2, np.int64), np.zeros(2, np.int64), dtype)
        assert np.array_equal(got, want)
    assert want[0, 0] == np.int32(np.int64((k // 2) * 32767).astype(np.int32))


def test_noncontiguous_inputs_and_acc():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (30, 41), dtype=np.uint8)[:, ::2]
    b = rng.integers(-128, 128, (21, 13)).astype(np.int8)
    bz, bias = rng.integers(-128, 128, 13), np.zeros(13, np.int64)
    got = np.zeros((13, 30), np.int64).T
    gemm_pairs_packed(a, 9, pack_b_pairs(b), bz, bias, got)
    want = np.empty((30, 13), np.int64)
    gemm_acc_pairs_ref(np.ascontiguousarray(a), b, 9, bz, bias, want)
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- 4. validation
def _good():
    a = np.zeros((3, 5), np.uint8)
    return a, pack_b_pairs(np.zeros((5, 4), np.int8)), np.zeros(4, np.int64), np.zeros(4, np.int64)


@pytest.mark.parametrize("bad", [np.zeros((5, 4), np.uint8), np.zeros((5,), np.int8), np.zeros((0, 4), np.int8),
                                 [[1, 2]]])
def test_pack_rejects(bad):
    with pytest.raises(ValueError, match="weight b"):
        pack_b_pairs(bad)


def test_gemm_rejects_bad_arguments():
    a, packed, bz, bias = _good()
    acc = np.empty((3, 4), np.int32)
    cases = [
        ("a", lambda: gemm_pairs_packed(a.astype(np.int8), 0, packed, bz, bias, acc)),
        ("do not multiply", lambda: gemm_pairs_packed(np.zeros((3, 6), np.uint8), 0, packed, bz, bias, acc)),
        ("a_zp", lambda: gemm_pairs_packed(a, 256, packed, bz, bias, acc)),
        ("a_zp", lambda: gemm_pairs_packed(a, -1, packed, bz, bias, acc)),
        ("b_zp", lambda: gemm_pairs_packed(a, 0, packed, np.full(4, 128), bias, acc)),
        ("b_zp", lambda: gemm_pairs_packed(a, 0, packed, np.zeros(3), bias, acc)),
        ("bias", lambda: gemm_pairs_packed(a, 0, packed, bz, np.zeros(5), acc)),
        ("acc", lambda: gemm_pairs_packed(a, 0, packed, bz, bias, np.empty((3, 4), np.float32))),
        ("acc", lambda: gemm_pairs_packed(a, 0, packed, bz, bias, np.empty((4, 3), np.int32))),
        ("packed", lambda: gemm_pairs_packed(a, 0, packed._replace(panels=packed.panels[:-1]), bz, bias, acc)),
        ("packed", lambda: gemm_pairs_packed(a, 0, packed._replace(n=9), bz, bias, acc)),
        ("packed", lambda: gemm_pairs_packed(a, 0, tuple(packed), bz, bias, acc)),
    ]
    for word, call in cases:
        with pytest.raises(ValueError, match=word):
            call()


def test_packed_is_a_packedpairs():
    _, packed, _, _ = _good()
    assert isinstance(packed, PackedPairs) and packed.panels.dtype == np.int8


# ----------------------------------------------------------------------------- 5. onnxruntime
@pytest.mark.skipif(not host_saturates_u8s8(), reason="onnxruntime does not saturate u8s8 pairs on this host")
@pytest.mark.parametrize("m,k,n", [(4, 64, 5), (33, 131, 19)])
def test_equals_onnxruntime_matmulinteger(m, k, n):
    import onnxruntime as ort
    from onnx import TensorProto, helper
    rng = np.random.default_rng(k)
    a = rng.choice(np.array([255, 254, 0, 200], np.uint8), (m, k))
    b = rng.choice(np.array([-128, 127, -100, 1], np.int8), (k, n))
    a_zp, b_zp = np.array(3, np.uint8), np.array(-5, np.int8)
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [k, n]),
         helper.make_tensor_value_info("az", TensorProto.UINT8, []),
         helper.make_tensor_value_info("bz", TensorProto.INT8, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                                .SerializeToString(), so, providers=["CPUExecutionProvider"])
    want = sess.run(None, {"a": a, "b": b, "az": a_zp, "bz": b_zp})[0]
    got = np.empty((m, n), np.int32)
    gemm_pairs_packed(a, 3, pack_b_pairs(b), np.full(n, -5), np.zeros(n, np.int64), got)
    assert np.array_equal(got, want)


# ----------------------------------------------------------------------------- 6. convolution
def out_hw(h, w, kh, kw, g):
    return ((h + g.pad_top + g.pad_bottom - g.dil_h * (kh - 1) - 1) // g.stride_h + 1,
            (w + g.pad_left + g.pad_right - g.dil_w * (kw - 1) - 1) // g.stride_w + 1)


@st.composite
def conv_case(draw):
    """x, w, geometry: grouped or not, depthwise (C/group == M/group == 1) sometimes."""
    group = draw(st.integers(1, 3))
    dw = draw(st.booleans()) and draw(st.booleans())
    cg, mg = (1, 1) if dw else (draw(st.integers(1, 6)), draw(st.integers(1, 20)))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    geom = ConvGeom(draw(st.integers(1, 2)), draw(st.integers(1, 2)), *[draw(st.integers(0, 2)) for _ in range(4)],
                    draw(st.integers(1, 2)), draw(st.integers(1, 2)), group)
    n, h, w_ = draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    oh, ow = out_hw(h, w_, kh, kw, geom)
    if oh < 1 or ow < 1:
        geom = geom._replace(pad_top=kh * geom.dil_h, pad_left=kw * geom.dil_w)
    x = draw(int_array((n, group * cg, h, w_), np.uint8))
    w = draw(int_array((group * mg, cg, kh, kw), np.int8))
    return x, w, geom


@settings(max_examples=120, deadline=None)
@given(conv_case(), zero_point(np.uint8), st.sampled_from([np.int32, np.int64]), st.data())
def test_conv_equals_twin(case, x_zp, dtype, data):
    x, w, g = case
    m = w.shape[0]
    w_zp, bias = data.draw(zero_points(np.int8, m)), data.draw(biases(m))
    shape = (x.shape[0], m) + out_hw(x.shape[2], x.shape[3], *w.shape[2:], g)
    got, want = np.empty(shape, dtype), np.empty(shape, dtype)
    conv2d_pairs_fast(x, x_zp, pack_conv_pairs(w, g), w_zp, bias, got)
    conv2d_acc_pairs_ref(x, w, x_zp, w_zp, bias, g, want)
    assert np.array_equal(got, want)


@pytest.mark.long
@settings(max_examples=100, deadline=None)
@given(conv_case(), zero_point(np.uint8), st.sampled_from([np.uint8, np.int8]), st.booleans(), st.data())
def test_conv_requant_equals_twin_then_requant(case, x_zp, out_dtype, small_chunks, data):
    """The fused conv + ORT float requantization == the pair-sum twin wrapped to int32, then
    requant_float_ref; with small_chunks the batch is split into one GEMM per image."""
    from kernels.requant import requant_float_ref
    x, w, g = case
    if small_chunks:
        x = np.concatenate([x, x[::-1] ^ np.uint8(0x5A)], axis=0)
    m = w.shape[0]
    w_zp, bias = data.draw(zero_points(np.int8, m)), data.draw(biases(m))
    mult = np.asarray(data.draw(st.lists(st.floats(2.0**-20, 0.5, width=32), min_size=m, max_size=m)), np.float32)
    info = np.iinfo(out_dtype)
    zp = data.draw(st.integers(int(info.min), int(info.max)))
    lo, hi = data.draw(st.integers(int(info.min), zp)), data.draw(st.integers(zp, int(info.max)))
    shape = (x.shape[0], m) + out_hw(x.shape[2], x.shape[3], *w.shape[2:], g)
    acc, want, got = np.empty(shape, np.int32), np.empty(shape, out_dtype), np.empty(shape, out_dtype)
    conv2d_acc_pairs_ref(x, w, x_zp, w_zp, bias, g, acc)
    requant_float_ref(acc.reshape(shape[0], m, -1), mult, zp, lo, hi, want.reshape(shape[0], m, -1))
    old = conv_rows.COLS_BYTES
    conv_rows.COLS_BYTES = 1 if small_chunks else old
    try:
        conv2d_pairs_fast_requant(x, x_zp, pack_conv_pairs(w, g), w_zp, bias, mult, zp, lo, hi, got)
    finally:
        conv_rows.COLS_BYTES = old
    assert np.array_equal(got, want)


def test_conv_requant_rejects_bad_out():
    w = np.ones((4, 3, 3, 3), np.int8)
    g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    x = np.zeros((1, 3, 5, 6), np.uint8)
    pc, z4 = pack_conv_pairs(w, g), np.zeros(4, np.int64)
    for bad in (np.empty((1, 4, 3, 4), np.int32), np.empty((1, 4, 3, 3), np.uint8),
                np.empty((1, 4, 4, 3), np.uint8).transpose(0, 1, 3, 2)):
        with pytest.raises(ValueError, match="out"):
            conv2d_pairs_fast_requant(x, 0, pc, z4, z4, np.ones(4, np.float32), 0, 0, 255, bad)
    with pytest.raises(ValueError, match="lo <= zp <= hi"):
        conv2d_pairs_fast_requant(x, 0, pc, z4, z4, np.ones(4, np.float32), 5, 6, 255, np.empty((1, 4, 3, 4), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        conv2d_pairs_fast_requant(x, 0, pc, z4, z4, np.full(4, np.inf, np.float32), 0, 0, 255,
                                  np.empty((1, 4, 3, 4), np.uint8))


@pytest.mark.parametrize("c,m,k,group", [(64, 32, 3, 1), (3, 8, 7, 1), (200, 5, 1, 1), (16, 16, 3, 2), (1, 1, 3, 1)])
def test_conv_larger_and_saturating(c, m, k, group):
    """Realistic channel counts; x = 255 and w = -128 / 127 mixed so pairs saturate often."""
    rng = np.random.default_rng(c * m + k)
    x = rng.choice(np.array([255, 254, 0, 9], np.uint8), (1, c, 12, 11))
    w = rng.choice(np.array([-128, 127, 3], np.int8), (m, c // group, k, k))
    g = ConvGeom(1, 2, k // 2, k // 2, k // 2, 0, 1, 1, group)
    shape = (1, m) + out_hw(12, 11, k, k, g)
    w_zp, bias = rng.integers(-128, 128, m), rng.integers(-2**31, 2**31, m)
    for dtype in (np.int32, np.int64):
        got, want = np.empty(shape, dtype), np.empty(shape, dtype)
        pc = pack_conv_pairs(w, g)
        conv2d_pairs_fast(x, 255, pc, w_zp, bias, got)
        conv2d_pairs_fast_ref(x, 255, pc, w_zp, bias, want)
        assert np.array_equal(got, want)


def test_conv_rejects_bad_arguments():
    g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    w = np.zeros((4, 3, 3, 3), np.int8)
    pc = pack_conv_pairs(w, g)
    x = np.zeros((1, 3, 5, 5), np.uint8)
    z4, acc = np.zeros(4, np.int64), np.empty((1, 4, 3, 3), np.int32)
    cases = [
        ("x", lambda: conv2d_pairs_fast(x.astype(np.int8), 0, pc, z4, z4, acc)),
        ("channels", lambda: conv2d_pairs_fast(np.zeros((1, 2, 5, 5), np.uint8), 0, pc, z4, z4, acc)),
        ("larger", lambda: conv2d_pairs_fast(np.zeros((1, 3, 2, 2), np.uint8), 0, pc, z4, z4, acc)),
        ("x_zp", lambda: conv2d_pairs_fast(x, 300, pc, z4, z4, acc)),
        ("w_zp", lambda: conv2d_pairs_fast(x, 0, pc, np.full(4, -129), z4, acc)),
        ("acc", lambda: conv2d_pairs_fast(x, 0, pc, z4, z4, np.empty((1, 4, 3, 4), np.int32))),
        ("pc", lambda: conv2d_pairs_fast(x, 0, tuple(pc), z4, z4, acc)),
        ("packs", lambda: conv2d_pairs_fast(x, 0, pc._replace(packs=pc.packs * 2), z4, z4, acc)),
        ("weight w", lambda: pack_conv_pairs(w.astype(np.uint8), g)),
        ("groups", lambda: pack_conv_pairs(w, g._replace(group=3))),
    ]
    for word, call in cases:
        with pytest.raises(ValueError, match=word):
            call()
