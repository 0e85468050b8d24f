"""kernels.conv_nchw_1x1: the NCHW 1x1 conv against its NumPy int64 twin (itself
kernels.conv.conv2d_acc_ref and kernels.requant.ort_round_ref), and through intsim.load
against onnxruntime."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import conv_nchw_1x1 as k
from kernels import cpu
from kernels.conv import ConvGeom
from tests.kernels.strategies import int_array, zero_point

needs_vnni512 = pytest.mark.skipif(bool(cpu.missing("avx512vnni")), reason="host has no AVX-512 VNNI")


@st.composite
def case(draw):
    """x uint8 (N, C, H, W) (or only its ends), int8 weights (or only -128 / 127), zero points at
    the ends or anywhere, bias within 2**20, per-channel multipliers, an 8-bit output range."""
    n, c, m = draw(st.integers(1, 2)), draw(st.integers(1, 40)), draw(st.integers(1, 21))
    h, w = draw(st.integers(1, 19)), draw(st.integers(1, 19))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = draw(int_array((n, c, h, w), np.uint8)) if draw(st.booleans()) else \
        rng.choice(np.array([0, 255], np.uint8), (n, c, h, w))
    wt = rng.integers(-128, 128, (m, c, 1, 1)) if draw(st.booleans()) else \
        rng.choice(np.array([-128, 127]), (m, c, 1, 1))
    bias = rng.integers(-2**20, 2**20, m) if draw(st.booleans()) else rng.choice(np.array([-2**20, 0, 2**20]), m)
    od = draw(st.sampled_from([np.uint8, np.int8]))
    info = np.iinfo(od)
    zp = draw(zero_point(od))
    lo = draw(st.sampled_from([int(info.min), zp]) | st.integers(int(info.min), zp))
    hi = draw(st.sampled_from([int(info.max), zp]) | st.integers(zp, int(info.max)))
    mult = (rng.uniform(0.5, 1.0, m) * 2.0 ** rng.integers(-16, 1, m)).astype(np.float32)
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    return x, draw(zero_point(np.uint8)), wt.astype(np.int8), bias.astype(np.int64), rq, (sh, sw), od


def _run(c, threads, freeze=False):
    x, x_zp, w, bias, rq, stride, od = c
    n, _, h, wd = x.shape
    out = np.full((n, w.shape[0], (h - 1) // stride[0] + 1, (wd - 1) // stride[1] + 1), 7, od)
    call = k.bind_nchw_1x1(w, x_zp, bias, rq, x.shape, stride, od, threads=threads)
    if freeze:
        call.freeze(x, out)()
    else:
        call(x, out)
    return out


@needs_vnni512
@settings(max_examples=120, deadline=None)
@given(c=case(), threads=st.sampled_from([1, 2]), freeze=st.booleans())
def test_equals_twin(c, threads, freeze):
    """Any channel count (quads with unused lanes), pixel count (a partial last block), stride,
    output range and zero point; one thread and two (every work size split), bound and frozen."""
    with mock.patch.object(k, "SERIAL_WORK", 0):
        got = _run(c, threads, freeze)
    x, x_zp, w, bias, rq, stride, od = c
    want = np.zeros_like(got)
    k.nchw_1x1_ref(w, x_zp, bias, rq, stride, x, want)
    assert np.array_equal(got, want)


@needs_vnni512
def test_extremes_and_whole_blocks():
    """x at 255 against -128 weights over 512 channels (the largest |sum| the kernel meets in
    MobileNet-size layers, well inside int32), ties of the float rounding, 64-pixel blocks."""
    x = np.full((1, 512, 8, 16), 255, np.uint8)
    w = np.full((5, 512, 1, 1), -128, np.int8)
    w[1] = 127
    bias = np.array([0, 0, 3, -2**20, 2**20], np.int64)
    rq = (True, np.array([2.0**-20, 2.0**-20, 0.5, 1.0, 2.0**-30], np.float32), np.int64(128), np.int64(0),
          np.int64(255))
    for x_zp in (0, 255, 128):
        c = (x, x_zp, w, bias, rq, (1, 1), np.uint8)
        got = _run(c, 1)
        want = np.zeros_like(got)
        k.nchw_1x1_ref(w, x_zp, bias, rq, (1, 1), x, want)
        assert np.array_equal(got, want)
    half = (True, np.full(1, 0.5, np.float32), np.int64(0), np.int64(-128), np.int64(127))
    x1 = np.arange(8, dtype=np.uint8).reshape(1, 1, 2, 4)   # acc = x: halves 0.5, 1.5, 2.5 ... to even
    got = _run((x1, 0, np.ones((1, 1, 1, 1), np.int8), np.zeros(1, np.int64), half, (1, 1), np.int8), 1)
    assert got.reshape(-1).tolist() == [0, 0, 1, 2, 2, 2, 3, 4]


@needs_vnni512
def test_non_contiguous_x_and_checks():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (1, 6, 9, 9)).astype(np.uint8)
    w = rng.integers(-128, 128, (3, 6, 1, 1)).astype(np.int8)
    rq = (True, np.full(3, 0.01, np.float32), np.int64(3), np.int64(0), np.int64(255))
    call = k.bind_nchw_1x1(w, 5, np.zeros(3, np.int64), rq, x.shape, (1, 1), np.uint8)
    want = np.zeros((1, 3, 9, 9), np.uint8)
    k.nchw_1x1_ref(w, 5, np.zeros(3, np.int64), rq, (1, 1), x, want)
    xt = np.asfortranarray(x)
    got = np.zeros_like(want)
    call(xt, got)
    assert np.array_equal(got, want)
    got[...] = 0
    call.freeze(xt, got)()
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="x must be"):
        call(x[:, :5], got)
    with pytest.raises(ValueError, match="x must be"):
        call(x.astype(np.int8), got)
    with pytest.raises(ValueError, match="out must be"):
        call(x, got.astype(np.int8))
    with pytest.raises(ValueError, match="out must be"):
        call(x, np.zeros((1, 3, 9, 18), np.uint8)[..., ::2])
    with pytest.raises(ValueError, match="lo <= zp <= hi"):
        k.bind_nchw_1x1(w, 5, np.zeros(3, np.int64), (True, rq[1], np.int64(300), np.int64(0), np.int64(255)),
                        x.shape, (1, 1), np.uint8)
    with pytest.raises(ValueError, match="int8"):
        k.bind_nchw_1x1(w.astype(np.uint8), 5, np.zeros(3, np.int64), rq, x.shape, (1, 1), np.uint8)


def test_fits_only_its_convs():
    """1x1, one group, no pads, zero weight zero points, uint8 x, NCHW both sides, an AVX-512
    ISA, enough pixels, and a stride or not many more outputs than inputs."""
    w = np.zeros((16, 32, 1, 1), np.int8)
    g = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    nchw, big = ("nchw", "nchw"), (112, 112)
    assert k.fits(w, np.zeros(16), np.uint8, g, nchw, big, isa="avx512vnni")
    assert k.fits(w, np.zeros(16), np.uint8, g, nchw, big, isa="amx")
    assert not k.fits(w, np.zeros(16), np.uint8, g, nchw, big, isa="avx2")
    assert not k.fits(w, np.zeros(16), np.uint8, g, nchw, big, isa="portable")
    assert not k.fits(w, np.ones(16), np.uint8, g, nchw, big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.int8, g, nchw, big, isa="avx512vnni")
    assert not k.fits(w.astype(np.uint8), np.zeros(16), np.uint8, g, nchw, big, isa="avx512vnni")
    assert not k.fits(np.zeros((16, 32, 3, 3), np.int8), np.zeros(16), np.uint8, g, nchw, big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.uint8, g._replace(pad_top=1), nchw, big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.uint8, g._replace(group=2), nchw, big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.uint8, g, ("nhwc", "nchw"), big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.uint8, g, ("nchw", "nhwc"), big, isa="avx512vnni")
    assert not k.fits(w, np.zeros(16), np.uint8, g, nchw, (7, 7), isa="avx512vnni")
    assert k.fits(np.zeros((144, 24, 1, 1), np.int8), np.zeros(144), np.uint8, g, nchw, big, isa="avx512vnni")
    wide = np.zeros((168, 24, 1, 1), np.int8)         # 7x the inputs: past WIDE_OUT
    assert not k.fits(wide, np.zeros(168), np.uint8, g, nchw, big, isa="avx512vnni")
    assert k.fits(wide, np.zeros(168), np.uint8, g._replace(stride_h=2, stride_w=2), nchw, big, isa="avx512vnni")


@needs_vnni512
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("c,hw,m,stride,per_channel", [(8, 20, 8, 1, False), (13, 40, 9, 2, True),
                                                        (32, 17, 16, 1, True), (24, 19, 144, 1, True)])
def test_qlinearconv_equals_onnxruntime(threads, c, hw, m, stride, per_channel):
    """QLinearConv 1x1 models (per-tensor and per-channel weight scales, strides) through
    intsim.load, run after run (frozen replays), equal onnxruntime's bytes; the kernel ran."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import intsim
    from intsim.bench import graph_model
    from kernels import threads as kernel_threads
    rng = np.random.default_rng(c * hw + m)
    wt = rng.integers(-128, 128, (m, c, 1, 1)).astype(np.int8)
    sw = (rng.uniform(0.002, 0.006, m) if per_channel else np.array(0.004)).astype(np.float32)
    f = numpy_helper.from_array
    inits = [f(np.array(0.02, np.float32), "sx"), f(np.array(131, np.uint8), "zx"), f(wt, "w"), f(sw, "sw"),
             f(np.zeros(sw.shape, np.int8), "zw"), f(np.array(0.05, np.float32), "sy"),
             f(np.array(121, np.uint8), "zy"), f(rng.integers(-3000, 3000, m).astype(np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"], ["y"],
                            strides=[stride, stride], kernel_shape=[1, 1])
    oh = (hw - 1) // stride + 1
    model = graph_model([node], [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, c, hw, hw])],
                        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, m, oh, oh])], inits)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(threads)
    seen = []
    real = k.bind_nchw_1x1
    try:
        with mock.patch.object(k, "bind_nchw_1x1", lambda *a, **kw: seen.append(1) or real(*a, **kw)):
            prog = intsim.load(model)
            for _ in range(4):
                x = rng.integers(0, 256, (1, c, hw, hw)).astype(np.uint8)
                assert np.array_equal(prog.run({"x": x})["y"], sess.run(None, {"x": x})[0])
    finally:
        kernel_threads.set_num_threads(before)
    assert seen
