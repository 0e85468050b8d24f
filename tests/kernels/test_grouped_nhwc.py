"""kernels.grouped_nhwc (narrow-group convs, channels-last, VNNI tap-table tiles) against the NumPy
int64 conv reference (kernels.conv.conv2d_acc_ref wrapped to int32, then requant_float_ref), 1 and
2 threads, the one-shot entry grouped_nhwc, plus what it refuses."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu
from kernels import grouped_nhwc as gn
from kernels.conv import ConvGeom, conv_out_hw
from tests.kernels.strategies import int_array, zero_point, zero_points

pytestmark = pytest.mark.skipif(not cpu.has_avx512vnni() or cpu.best_isa() == "portable",
                                reason="the grouped kernel needs AVX-512 VNNI")


def reference(x_nhwc, w, x_zp, w_zp, bias, geom, rq, out_dtype):
    """The NHWC requantized output of the NumPy int64 twin (kernels.grouped_nhwc.grouped_nhwc_ref)."""
    oh, ow = conv_out_hw(x_nhwc.shape[1], x_nhwc.shape[2], w.shape[2], w.shape[3], geom)
    out = np.zeros((x_nhwc.shape[0], oh, ow, w.shape[0]), out_dtype)
    gn.grouped_nhwc_ref(x_nhwc, x_zp, w, w_zp, bias, geom, rq, out)
    return out


@st.composite
def grouped_case(draw):
    group = draw(st.integers(2, 5))
    mg = 16 * draw(st.integers(1, 2))
    cg = 4 * draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pt, pl, pb, pr = (draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - pt - pb), 12))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - pl - pr), 21))
    n = draw(st.integers(1, 3))
    xd = draw(st.sampled_from([np.uint8, np.int8]))
    wd = draw(st.sampled_from([np.int8, np.uint8]))
    m, c = group * mg, group * cg
    x = draw(int_array((n, h, w, c), xd))
    wt = draw(int_array((m, cg, kh, kw), wd))
    info = np.iinfo(wd)
    # w - w_zp must fit int8: int8 weights with zp 0 or uint8 weights with zp 128 (their usual forms),
    # or zero points at the ends with the weights clipped to stay within 127 of them
    if wd == np.int8:
        w_zp = np.zeros(m, np.int64)
    else:
        w_zp = draw(zero_points(wd, m))
        wt = np.clip(wt.astype(np.int64), np.maximum(w_zp - 128, info.min)[:, None, None, None],
                     np.minimum(w_zp + 127, info.max)[:, None, None, None]).astype(wd)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bias = rng.choice(np.array([-2**31, 2**31 - 1, 0, 7, -8]), m) if draw(st.booleans()) else \
        rng.integers(-2**20, 2**20, m)
    od = draw(st.sampled_from([np.uint8, np.int8]))
    oinfo = np.iinfo(od)
    zp = draw(zero_point(od))
    lo = draw(st.sampled_from([int(oinfo.min), zp]))
    hi = draw(st.sampled_from([int(oinfo.max), zp]))
    mult = np.full(m, 0.5, np.float32) if draw(st.booleans()) else \
        (rng.uniform(0.5, 1.0, m) * 2.0 ** rng.integers(-14, 1, m)).astype(np.float32)
    geom = ConvGeom(sh, sw, pt, pl, pb, pr, dh, dw, group)
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    return x, wt, draw(zero_point(xd)), w_zp, bias.astype(np.int64), geom, rq, od


@settings(max_examples=120, deadline=None)
@given(grouped_case(), st.sampled_from([1, 2]))
def test_grouped_matches_reference(case, threads):
    x, w, x_zp, w_zp, bias, geom, rq, od = case
    plan = gn.plan_grouped(w, w_zp, geom, (x.shape[3], x.shape[1], x.shape[2]), x.dtype, x_zp, bias, rq)
    bound = gn.bind_grouped(plan, x.shape[0], od, threads=threads)
    want = reference(x, w, x_zp, w_zp, bias, geom, rq, od)
    out = np.full(want.shape, 77, od)
    bound(x, out)
    np.testing.assert_array_equal(out, want)
    out2 = np.full(want.shape, 13, od)
    bound.freeze(x, out2)()
    np.testing.assert_array_equal(out2, want)


@settings(max_examples=30, deadline=None)
@given(grouped_case())
def test_grouped_entry_matches_its_twin(case):
    """The checked one-shot entry (planned, bound and run in one call) equals its int64 twin."""
    x, w, x_zp, w_zp, bias, geom, rq, od = case
    want = reference(x, w, x_zp, w_zp, bias, geom, rq, od)
    out = np.full(want.shape, 5, od)
    gn.grouped_nhwc(x, x_zp, w, w_zp, bias, geom, rq, out)
    np.testing.assert_array_equal(out, want)


def test_grouped_regnet_shape_twice():
    """A RegNetX stage-4 layer (400 channels, 25 groups of 16, 7x7, 3x3 pad 1) run twice on new data:
    the padded copy's border keeps the pad byte."""
    rng = np.random.default_rng(0)
    geom = ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 25)
    w = rng.integers(-128, 128, (400, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 400)
    rq = (True, np.full(400, 2.0**-9, np.float32), np.int64(3), np.int64(0), np.int64(255))
    plan = gn.plan_grouped(w, np.zeros(400, np.int64), geom, (400, 7, 7), np.uint8, 5, bias, rq)
    bound = gn.bind_grouped(plan, 2, np.uint8)
    for seed in (1, 2):
        x = np.random.default_rng(seed).integers(0, 256, (2, 7, 7, 400)).astype(np.uint8)
        out = np.empty((2, 7, 7, 400), np.uint8)
        bound(x, out)
        np.testing.assert_array_equal(out, reference(x, w, 5, np.zeros(400, np.int64), bias, geom, rq, np.uint8))


def test_grouped_bound_call_from_two_threads():
    """One bound call run side by side from two Python threads on different images (a Program's
    batch slices share a lane): each thread pads into its own copy, so both outputs are right
    (a shared copy gave wrong outputs: RegNetX QOperator, batch 8, 2 threads, 10% equal)."""
    import threading
    rng = np.random.default_rng(3)
    geom = ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 10)
    w = rng.integers(-128, 128, (160, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 160)
    rq = (True, np.full(160, 2.0**-10, np.float32), np.int64(0), np.int64(-128), np.int64(127))
    plan = gn.plan_grouped(w, np.zeros(160, np.int64), geom, (160, 14, 14), np.int8, -3, bias, rq)
    bound = gn.bind_grouped(plan, 2, np.int8, threads=1)
    xs = [rng.integers(-128, 128, (2, 14, 14, 160)).astype(np.int8) for _ in range(2)]
    wants = [reference(x, w, -3, np.zeros(160, np.int64), bias, geom, rq, np.int8) for x in xs]
    bad = []

    def work(i):
        out = np.empty_like(wants[i])
        for _ in range(200):
            bound(xs[i], out)
            if not np.array_equal(out, wants[i]):
                bad.append(i)
                return
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_grouped_refuses():
    geom = ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 2)
    assert not gn.fits((16, 4, 3, 3), 2, np.uint8)            # Mg = 8
    assert not gn.fits((32, 6, 3, 3), 2, np.uint8)            # Cg = 6
    assert not gn.fits((32, 4, 3, 3), 1, np.uint8)            # one group
    w = np.full((32, 4, 1, 1), 255, np.uint8)
    assert not gn.fits(w.shape, 2, np.uint8, w, np.zeros(32))   # 255 - 0 leaves int8
    rq = (True, np.ones(32, np.float32), np.int64(0), np.int64(0), np.int64(255))
    with pytest.raises(ValueError, match="grouped_nhwc"):
        gn.plan_grouped(w, np.zeros(32, np.int64), geom, (8, 4, 4), np.uint8, 0, np.zeros(32, np.int64), rq)
    plan = gn.plan_grouped(w.astype(np.int8) * 0, np.zeros(32, np.int64), geom, (8, 4, 4), np.uint8, 0,
                           np.zeros(32, np.int64), rq)
    bound = gn.bind_grouped(plan, 1, np.uint8)
    with pytest.raises(ValueError, match="x must be"):
        bound(np.zeros((1, 4, 4, 8), np.int8), np.zeros((1, 4, 4, 32), np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        bound(np.zeros((1, 4, 4, 8), np.uint8), np.zeros((1, 4, 4, 31), np.uint8))
