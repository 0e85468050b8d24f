"""kernels.fast_conv against kernels.conv.conv2d_acc_ref (the portable module's NumPy int64
twin, written independently of the fast engine) and an int32-wrap/float32 requant written here."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels import fast_conv as fc
from kernels.conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from tests.kernels.strategies import int_array, zero_point
from tests.kernels.vnni_emulated import VNNI_PATH, running

RUNNABLE = [isa for isa in ("amx", "avx512vnni", "avxvnni", "avx2", "portable") if not cpu.missing(isa)]   # what this host runs
WITH_VNNI = list(dict.fromkeys(RUNNABLE + [VNNI_PATH]))   # + the avx512vnni path, emulated where the CPU lacks it


def wrap32(v):
    return ((v.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


@st.composite
def conv_case(draw):
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise", "depthwise_mult", "pointwise"]))
    group = {"dense": 1, "pointwise": 1}.get(kind) or draw(st.integers(2, 4))
    cg = 1 if kind.startswith("depthwise") else draw(st.integers(1, 5))
    mg = draw(st.integers(1, 3)) if kind != "depthwise" else 1
    kh, kw = (1, 1) if kind == "pointwise" else (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    geom = ConvGeom(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *(draw(st.integers(0, 2)) for _ in range(4)),
                    draw(st.integers(1, 2)), draw(st.integers(1, 2)), group)
    h, w = draw(st.integers(1, 13)), draw(st.integers(1, 13))
    oh, ow = conv_out_hw(h, w, kh, kw, geom)
    if oh < 1 or ow < 1:
        h, w = h + geom.dil_h * kh, w + geom.dil_w * kw
    xd, wd = draw(st.sampled_from([np.uint8, np.int8])), draw(st.sampled_from([np.int8, np.uint8]))
    x = draw(int_array((draw(st.integers(1, 2)), cg * group, h, w), xd))
    wt = draw(int_array((mg * group, cg, kh, kw), wd))
    wz = np.array([draw(zero_point(wd)) for _ in range(mg * group)], np.int64)
    bias = np.array(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=mg * group, max_size=mg * group)), np.int64)
    return x, draw(zero_point(xd)), wt, wz, bias, geom


def out_shape(x, w, geom):
    return (x.shape[0], w.shape[0]) + conv_out_hw(x.shape[2], x.shape[3], w.shape[2], w.shape[3], geom)


def reference(x, xz, w, wz, bias, geom):
    acc = np.empty(out_shape(x, w, geom), np.int64)
    conv2d_acc_ref(x, w, xz, wz, bias, geom, acc)
    return acc


@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=80, deadline=None)
@given(case=conv_case(), acc_dtype=st.sampled_from([np.int32, np.int64]))
def test_conv_equals_reference(isa, case, acc_dtype):
    x, xz, w, wz, bias, geom = case
    with running(isa) as isa:
        pc = fc.pack_conv(w, wz, geom, isa=isa)
        got = np.empty(out_shape(x, w, geom), acc_dtype)
        fc.conv2d_fast(x, xz, pc, bias, got)
    want = reference(x, xz, w, wz, bias, geom)
    assert np.array_equal(got, want if acc_dtype == np.int64 else wrap32(want))


@pytest.mark.parametrize("isa", WITH_VNNI)
@settings(max_examples=50, deadline=None)
@given(case=conv_case(), out_dtype=st.sampled_from([np.uint8, np.int8]), seed=st.integers(0, 2**32 - 1))
def test_fused_requant_equals_reference(isa, case, out_dtype, seed):
    x, xz, w, wz, bias, geom = case
    bias = bias % 2**18 - 2**17
    rng = np.random.default_rng(seed)
    mult = (rng.uniform(0.5, 1.0, w.shape[0]) * 2.0**rng.integers(-14, -4)).astype(np.float32)
    info = np.iinfo(out_dtype)
    zp = int(rng.integers(info.min, int(info.max) + 1))
    lo, hi = int(rng.integers(info.min, zp + 1)), int(rng.integers(zp, int(info.max) + 1))
    with running(isa) as isa:
        pc = fc.pack_conv(w, wz, geom, isa=isa)
        out = np.empty(out_shape(x, w, geom), out_dtype)
        fc.conv2d_fast_requant(x, xz, pc, bias, mult, zp, lo, hi, out)
    acc32 = wrap32(reference(x, xz, w, wz, bias, geom))
    v = acc32.astype(np.float32) * mult[None, :, None, None]
    want = np.clip(np.rint(v).astype(np.int64) + zp, lo, hi)
    assert np.array_equal(out.astype(np.int64), want)
    twin = np.empty_like(out)
    fc.conv2d_fast_requant_ref(x, xz, pc, bias, mult, zp, lo, hi, twin)
    assert np.array_equal(out, twin)


@pytest.mark.parametrize("isa", RUNNABLE)
@pytest.mark.parametrize("layer", [
    ((1, 3, 23, 23), (8, 3, 7, 7), ConvGeom(2, 2, 3, 3, 3, 3, 1, 1, 1)),      # ResNet stem, shrunk
    ((1, 64, 9, 9), (64, 64, 3, 3), ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 1)),     # K = 576 > one K block
    ((2, 32, 8, 8), (16, 32, 1, 1), ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)),     # pointwise
    ((1, 24, 9, 9), (24, 1, 3, 3), ConvGeom(2, 2, 0, 1, 1, 0, 1, 1, 24)),     # depthwise, strided, odd pads
])
def test_network_layers_at_the_extremes(isa, layer):
    xs, ws, geom = layer
    for xd, wd in [(np.uint8, np.int8), (np.int8, np.uint8)]:
        xi, wi = np.iinfo(xd), np.iinfo(wd)
        rng = np.random.default_rng(sum(xs))
        x = rng.choice(np.array([xi.min, xi.max], xd), xs)
        w = rng.choice(np.array([wi.min, wi.max], wd), ws)
        wz = rng.choice([wi.min, wi.max], ws[0]).astype(np.int64)
        bias = np.full(ws[0], 2**31 - 1, np.int64)
        pc = fc.pack_conv(w, wz, geom, isa=isa)
        for acc_dtype in (np.int32, np.int64):
            got = np.empty(out_shape(x, w, geom), acc_dtype)
            fc.conv2d_fast(x, int(xi.max), pc, bias, got)
            want = reference(x, int(xi.max), w, wz, bias, geom)
            assert np.array_equal(got, want if acc_dtype == np.int64 else wrap32(want))


def test_kinds_are_chosen_by_shape():
    isa = RUNNABLE[0]
    g1 = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    if isa == "portable":
        pytest.skip("no fast path on this host")
    assert fc.pack_conv(np.zeros((4, 3, 3, 3), np.int8), 0, g1, isa).kind == "gemm"
    assert fc.pack_conv(np.zeros((6, 1, 3, 3), np.int8), 0, g1._replace(group=6), isa).kind == "depthwise"
    assert fc.pack_conv(np.zeros((6, 2, 3, 3), np.int8), 0, g1._replace(group=3), isa).kind == "gemm"
    assert fc.pack_conv(np.zeros((4, 3, 3, 3), np.int8), 0, g1, "portable").kind == "portable"


def test_bad_inputs_raise_value_error():
    g1 = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)
    pc = fc.pack_conv(np.zeros((4, 3, 3, 3), np.int8), 0, g1, RUNNABLE[0])
    x = np.zeros((1, 3, 5, 5), np.uint8)
    acc = np.empty((1, 4, 3, 3), np.int32)
    cases = [
        (lambda: fc.pack_conv(np.zeros((4, 3, 3), np.int8), 0, g1), "weight w"),
        (lambda: fc.pack_conv(np.zeros((4, 3, 3, 3), np.int8), [0, 1], g1), "w_zp"),
        (lambda: fc.pack_conv(np.zeros((5, 3, 3, 3), np.int8), 0, g1._replace(group=2)), "groups"),
        (lambda: fc.conv2d_fast(np.zeros((1, 2, 5, 5), np.uint8), 0, pc, 0, acc), "channels"),
        (lambda: fc.conv2d_fast(x.astype(np.float32), 0, pc, 0, acc), "input x"),
        (lambda: fc.conv2d_fast(np.zeros((1, 3, 2, 2), np.uint8), 0, pc, 0, acc), "larger than"),
        (lambda: fc.conv2d_fast(x, 0, pc, 0, np.empty((1, 4, 3, 4), np.int32)), "acc"),
        (lambda: fc.conv2d_fast(x, 0, pc, 0, np.empty((1, 4, 3, 6), np.int32)[..., ::2]), "contiguous"),
        (lambda: fc.conv2d_fast(x, 0, pc, [1, 2], acc), "bias"),
        (lambda: fc.conv2d_fast(x, -1, pc, 0, acc), "x_zp"),
        (lambda: fc.conv2d_fast(x, 0, "weights", 0, acc), "pack_conv"),
        (lambda: fc.conv2d_fast_requant(x, 0, pc, 0, 1.0, 0, 0, 255, acc), "out"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
