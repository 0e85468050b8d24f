"""kernels.depthwise_nhwc against its NumPy int64 twin and against the NCHW twin
kernels.fast_depthwise.depthwise_ref on transposed data (written independently), plus the
requant ties, int32 wrap and validation cases."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import cpu, jit
from kernels import depthwise_nhwc as dn
from kernels import fast_depthwise as fd
from tests.kernels.strategies import bad_requant_params, int_array, zero_point

DST_DTYPES = [np.int32, np.int64, np.uint8, np.int8]


def rq_none():
    return (False, np.ones(1, np.float32), np.int64(0), np.int64(0), np.int64(0))


@st.composite
def rq_for(draw, dtype, m):
    """(True, mult, zp, lo, hi): multipliers tiny to > 1 or exactly 0.5 (ties), bounds narrower
    than the dtype or at its ends, zero points at the ends included."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        mult = np.full(m, 0.5, np.float32)
    else:
        mult = (rng.uniform(0.5, 1.0, m) * 2.0 ** rng.integers(-16, 2, m)).astype(np.float32)
    zp = draw(zero_point(dtype))
    lo = draw(st.sampled_from([int(info.min), zp]) | st.integers(int(info.min), zp))
    hi = draw(st.sampled_from([int(info.max), zp]) | st.integers(zp, int(info.max)))
    return (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))


def out_size(size, k, s, pad, d):
    return (size + pad - (k - 1) * d - 1) // s + 1


@st.composite
def nhwc_case(draw, max_hw=40, max_c=40, k=None):
    """x (N, H, W, C), x_zp, wz (M, KH*KW), bias, geo, dst (N, OH, OW, M), rq. Pads: top/left
    from geo, bottom/right implied by OH/OW (0..3, clipped to what a stride allows); k: a
    fixed KH = KW."""
    n, c, mult = draw(st.integers(1, 3)), draw(st.integers(1, max_c)), draw(st.integers(1, 3))
    kh, kw = (k, k) if k else (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pt, pl, pb, pr = (draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - pt - pb), max(max_hw, (kh - 1) * dh + 1)))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - pl - pr), max(max_hw, (kw - 1) * dw + 1)))
    oh, ow = out_size(h, kh, sh, pt + pb, dh), out_size(w, kw, sw, pl + pr, dw)
    xd = draw(st.sampled_from([np.uint8, np.int8]))
    x = draw(int_array((n, h, w, c), xd))
    m = c * mult
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        wz = rng.integers(-255, 256, (m, kh * kw))
    else:                       # int8-difference extremes: 127 - (-128) and its negation
        wz = rng.choice(np.array([-255, 255, -128, 127, 0]), (m, kh * kw))
    bias = draw(st.sampled_from(["wide", "ends"]))
    bias = rng.integers(-2**31, 2**31, m) if bias == "wide" else rng.choice(np.array([-2**31, 2**31 - 1, 0]), m)
    dt = draw(st.sampled_from(DST_DTYPES))
    requant = dt in (np.uint8, np.int8) and draw(st.integers(0, 3)) > 0   # 8-bit dst, raw sums too
    rq = draw(rq_for(dt, m)) if requant else rq_none()
    geo = np.array([kh, kw, sh, sw, pt, pl, dh, dw], np.int64)
    return (x, draw(zero_point(xd)), wz.astype(np.int32), bias.astype(np.int64), geo,
            np.zeros((n, oh, ow, m), dt), rq)


def nchw_twin(x, x_zp, wz, bias, geo, dst, rq):
    """fast_depthwise.depthwise_ref on NCHW copies, back to NHWC."""
    d = np.zeros((dst.shape[0], dst.shape[3], dst.shape[1], dst.shape[2]), dst.dtype)
    fd.depthwise_ref(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), x_zp, wz, bias, geo, d, rq)
    return d.transpose(0, 2, 3, 1)


def run_all(args, threads=None):
    x, xz, wz, bias, geo, dst, rq = args
    got, want = np.full_like(dst, 77), np.full_like(dst, 33)
    dn.depthwise_nhwc(x, xz, wz, bias, geo, got, rq, threads=threads)
    dn.depthwise_nhwc_ref(x, xz, wz, bias, geo, want, rq)
    return got, want, nchw_twin(*args)


@pytest.mark.long
@settings(max_examples=80, deadline=None)
@given(case=nhwc_case())
def test_equals_twin_and_nchw_twin(case):
    got, want, nchw = run_all(case)
    assert np.array_equal(want, nchw)
    assert np.array_equal(got, want)


@pytest.mark.long
@settings(max_examples=60, deadline=None)
@given(case=nhwc_case(max_hw=24), threads=st.sampled_from([1, 2, 3]),
       lanes=st.sampled_from([1, 8, 256]), buf=st.sampled_from([1, 1 << 16]), native=st.booleans())
def test_threads_runs_and_blocks(case, threads, lanes, buf, native):
    """Every thread count, run length (pixels per run) and block height gives the twin's
    integers, with the serial cut-off lowered so small problems are split too: through the
    Python pool (_split_run) or as one Numba parallel region (native, kernels.threads)."""
    from kernels import threads as kthreads
    calls = []
    real = dn._split_run

    def spy(run, items, threads_):
        calls.append(threads_)
        real(run, items, threads_)

    def par_spy(par):
        def run(*args):
            calls.append(("native", int(args[-1])))
            par(*args)
        return run

    with mock.patch.object(dn, "SERIAL_WORK", 0), mock.patch.object(dn, "NATIVE_SERIAL_WORK", 0), \
            mock.patch.object(dn, "LANES", lanes), \
            mock.patch.object(dn, "BUF_BYTES", buf), mock.patch.object(dn, "SERIAL_BUF_BYTES", buf), \
            mock.patch.object(dn, "_split_run", spy), \
            mock.patch.object(kthreads, "NATIVE_THREADS", native), \
            mock.patch.object(dn, "_par_nhwc", par_spy(dn._par_nhwc)), \
            mock.patch.object(dn, "_par_nhwc_pairs", par_spy(dn._par_nhwc_pairs)):
        got, want, _ = run_all(case, threads)
    assert np.array_equal(got, want)
    if threads == 1:                    # one thread: the kernel itself, no split at all
        assert calls == []
    elif native and calls != [threads]:     # (one item: the pool path, run serially)
        assert len(calls) == 1 and calls[0][0] == "native" and 2 <= calls[0][1] <= threads
    else:
        assert calls == [threads]


@pytest.mark.parametrize("c,hw,s", [(32, 112, 1), (144, 56, 2), (960, 7, 1), (24, 57, 2)])
def test_mobilenet_layers_equal_nchw_kernel(c, hw, s):
    """The MobileNetV2 shapes against the NCHW fast kernel (u8 x, zero points at the ends)."""
    rng = np.random.default_rng(c * hw + s)
    x = rng.integers(0, 256, (2, hw, hw, c)).astype(np.uint8)
    x.flat[::7], x.flat[::11] = 0, 255
    wz = rng.integers(-255, 256, (c, 9)).astype(np.int32)
    bias = rng.integers(-2**20, 2**20, c).astype(np.int64)
    geo = np.array([3, 3, s, s, 1, 1, 1, 1], np.int64)
    oh = (hw - 1) // s + 1
    rq = (True, (rng.uniform(0.5, 1, c) * 2.0**-12).astype(np.float32), np.int64(255), np.int64(0), np.int64(255))
    got, want = np.empty((2, oh, oh, c), np.uint8), np.empty((2, c, oh, oh), np.uint8)
    dn.depthwise_nhwc(x, 255, wz, bias, geo, got, rq)
    fd.depthwise(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), 255, wz, bias, geo, want, rq)
    assert np.array_equal(got, want.transpose(0, 2, 3, 1))


def test_requant_ties_round_half_even():
    """acc * 0.5 landing on .5 rounds to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4)."""
    x = np.array([[[[5, 7, -5, -7]]]], np.int8)
    out = np.empty((1, 1, 1, 4), np.int8)
    rq = (True, np.full(4, 0.5, np.float32), np.int64(0), np.int64(-128), np.int64(127))
    dn.depthwise_nhwc(x, 0, np.ones((4, 1), np.int32), np.zeros(4, np.int64),
                      np.array([1, 1, 1, 1, 0, 0, 1, 1], np.int64), out, rq)
    assert out.ravel().tolist() == [2, 4, -2, -4]


def test_pads_count_as_zero_point():
    """A 3x3 all-ones kernel over a 1x1 image of x = zp + 1 with pads 1: only the centre tap
    counts, whatever the zero point (the pad holds x_zp, which contributes 0)."""
    for zp in (0, 255, 100):
        x = np.full((1, 1, 1, 2), zp + 1 if zp < 255 else zp - 1, np.uint8)
        out = np.empty((1, 1, 1, 2), np.int64)
        dn.depthwise_nhwc(x, zp, np.ones((2, 9), np.int32), np.array([10, -10], np.int64),
                          np.array([3, 3, 1, 1, 1, 1, 1, 1], np.int64), out, rq_none())
        d = 1 if zp < 255 else -1
        assert out.ravel().tolist() == [10 + d, -10 + d]


def test_int32_dst_wraps_and_int64_is_exact():
    x = np.full((1, 3, 3, 1), 255, np.uint8)
    wz = np.full((1, 9), 255, np.int32)
    geo = np.array([3, 3, 1, 1, 0, 0, 1, 1], np.int64)
    bias = np.array([2**31 - 1], np.int64)
    exact = 2**31 - 1 + 9 * 255 * 255
    d64, d32 = np.empty((1, 1, 1, 1), np.int64), np.empty((1, 1, 1, 1), np.int32)
    dn.depthwise_nhwc(x, 0, wz, bias, geo, d64, rq_none())
    dn.depthwise_nhwc(x, 0, wz, bias, geo, d32, rq_none())
    assert d64.item() == exact and d32.item() == exact - 2**32


# ------------------------------------------------------------------------------- validation
def good_args():
    return dict(x=np.zeros((1, 5, 5, 4), np.uint8), x_zp=0, wz=np.zeros((8, 9), np.int32),
                bias=np.zeros(8, np.int64), geo=np.array([3, 3, 1, 1, 1, 1, 1, 1], np.int64),
                dst=np.zeros((1, 5, 5, 8), np.int32), rq=rq_none())


@pytest.mark.parametrize("name,value,blamed", [
    ("x", np.zeros((1, 5, 5, 4), np.int16), "x"),
    ("x", np.zeros((1, 5, 10, 4), np.uint8)[:, :, ::2], "x"),           # not contiguous
    ("x", np.zeros((1, 4, 5, 5), np.uint8).transpose(0, 2, 3, 1), "x"),  # NCHW data seen as NHWC
    ("x", np.zeros((5, 5, 4), np.uint8), "x"),
    ("x", np.zeros((1, 0, 5, 4), np.uint8), "x"),                        # zero-size
    ("x_zp", 256, "x_zp"),
    ("x_zp", 1.5, "x_zp"),
    ("wz", np.zeros((8, 9), np.int64), "wz"),
    ("wz", np.zeros((8, 4), np.int32), "wz"),
    ("bias", np.zeros(7, np.int64), "bias"),
    ("geo", np.array([3, 3, 0, 1, 1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([3, 3, 1, 1, -1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([3, 3, 1, 1, 1, 1, 0, 1], np.int64), "geo"),
    ("geo", np.array([3, 3, 1, 1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([1, 1, 1, 1, 1, 1, 1, 1], np.int64), "dst"),       # OH/OW not from geo
    ("dst", np.zeros((1, 5, 5, 6), np.int32), "dst"),                   # M not a multiple of C
    ("dst", np.zeros((1, 8, 5, 5), np.int32), "dst"),                   # NCHW-shaped dst
    ("dst", np.zeros((2, 5, 5, 8), np.int32), "dst"),
    ("dst", np.zeros((1, 5, 5, 0), np.int32), "x"),                     # zero-size
    ("dst", np.zeros((1, 5, 5, 8), np.float32), "dst"),
    ("dst", np.zeros((1, 5, 10, 8), np.int32)[:, :, ::2], "dst"),
    ("rq", (True, np.ones(8, np.float32), np.int64(0), np.int64(0), np.int64(255)), "dst"),  # int32 dst
    ("rq", (False, np.ones(1, np.float32)), "rq"),
])
def test_validation_names_the_argument(name, value, blamed):
    args = good_args()
    args[name] = value
    with pytest.raises(ValueError, match=rf"^depthwise: {blamed}\b"):
        dn.depthwise_nhwc(**args)


@pytest.mark.parametrize("rq", bad_requant_params(8))
def test_validation_of_requant(rq):
    args = good_args()
    args["dst"] = np.zeros((1, 5, 5, 8), np.uint8)
    args["rq"] = rq
    with pytest.raises(ValueError, match=r"^depthwise: rq\b"):
        dn.depthwise_nhwc(**args)


def test_run_checks_x_and_dst_against_the_plan():
    args = good_args()
    plan = dn.plan_depthwise_nhwc(**args)
    dn.run_depthwise_nhwc(plan, args["x"], args["dst"])
    with pytest.raises(ValueError, match=r"^depthwise: x\b"):
        dn.run_depthwise_nhwc(plan, np.zeros((1, 5, 5, 4), np.int8), args["dst"])
    with pytest.raises(ValueError, match=r"^depthwise: dst\b"):
        dn.run_depthwise_nhwc(plan, args["x"], np.zeros((1, 5, 5, 8), np.int64))
    with pytest.raises(ValueError, match=r"^depthwise: dst\b"):
        dn.run_depthwise_nhwc(plan, args["x"], np.zeros((1, 5, 10, 8), np.int32)[:, :, ::2])


# ------------------------------------------------------------------------------- layers
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hw=st.sampled_from([5, 9, 33, 40]), s=st.sampled_from([1, 2]),
       mult=st.sampled_from([1, 2]), x_layout=st.sampled_from(["nchw", "nhwc"]),
       out_layout=st.sampled_from(["nchw", "nhwc"]), small_map=st.sampled_from([0, 1024]))
def test_layer_any_layouts_equal_nchw_twin(seed, hw, s, mult, x_layout, out_layout, small_map):
    """run_depthwise_layer on either layout at either side equals fast_depthwise.depthwise_ref,
    with the NCHW kernel (SMALL_MAP 0: every map is 'large') and the channels-last one."""
    from kernels.conv import ConvGeom
    from kernels.fast_conv import pack_conv, plan_depthwise
    rng = np.random.default_rng(seed)
    c = int(rng.integers(2, 40))            # group = C = 1 is an ordinary (GEMM) conv
    w = rng.integers(-128, 128, (c * mult, 1, 3, 3)).astype(np.int8)
    w_zp = rng.integers(-128, 128, c * mult)
    g = ConvGeom(s, s, 1, 1, 1, 1, 1, 1, c)
    pc = pack_conv(w, w_zp, g)
    bias = rng.integers(-2**16, 2**16, c * mult).astype(np.int64)
    rq = (True, (rng.uniform(0.5, 1, c * mult) * 2.0**-9).astype(np.float32), np.int64(3), np.int64(0),
          np.int64(200))
    plan = plan_depthwise(pc, 7, bias, rq)
    x = rng.integers(0, 256, (2, c, hw, hw)).astype(np.uint8)
    layer = dn.plan_depthwise_layer(plan, x.shape, x.dtype, np.uint8)
    n, oh, ow, m = layer.out_shape
    want = np.empty((n, m, oh, ow), np.uint8)
    fd.depthwise_ref(x, 7, pc.wz, bias, plan.geo, want, rq)
    got = np.empty((n, oh, ow, m) if out_layout == "nhwc" else (n, m, oh, ow), np.uint8)
    x_in = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x_layout == "nhwc" else x
    with mock.patch.object(dn, "SMALL_MAP", small_map):
        dn.run_depthwise_layer(layer, x_in, got, x_layout, out_layout)
        bound = dn.bind_depthwise_layer(layer, x_layout, out_layout)
    assert np.array_equal(got.transpose(0, 3, 1, 2) if out_layout == "nhwc" else got, want)
    if hasattr(bound, "freeze"):        # frozen on x_in and out (intsim.frozen): reads x_in at each call
        out = np.full_like(got, 5)
        call = bound.freeze(x_in, out)
        x_in[...] = rng.integers(0, 256, x_in.shape)
        call()
        x = np.ascontiguousarray(x_in.transpose(0, 3, 1, 2)) if x_layout == "nhwc" else x_in
        fd.depthwise_ref(x, 7, pc.wz, bias, plan.geo, want, rq)
        assert np.array_equal(out.transpose(0, 3, 1, 2) if out_layout == "nhwc" else out, want)


def test_layer_refuses_bad_layouts_and_arrays():
    from kernels.conv import ConvGeom
    from kernels.fast_conv import pack_conv, plan_depthwise
    g = ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 4)
    plan = plan_depthwise(pack_conv(np.ones((4, 1, 3, 3), np.int8), 0, g), 0, np.zeros(4, np.int64),
                          (True, np.ones(4, np.float32), np.int64(0), np.int64(0), np.int64(255)))
    layer = dn.plan_depthwise_layer(plan, (1, 4, 6, 6), np.uint8, np.uint8)
    x, out = np.zeros((1, 4, 6, 6), np.uint8), np.empty((1, 4, 6, 6), np.uint8)
    with pytest.raises(ValueError, match="layout"):
        dn.run_depthwise_layer(layer, x, out, "chw")
    with pytest.raises(ValueError, match="x"):
        dn.run_depthwise_layer(layer, x[:, :3], out)
    with pytest.raises(ValueError, match="dst"):
        dn.run_depthwise_layer(layer, x, out[:, :, :, :5])
    with pytest.raises(ValueError, match="dst"):
        dn.run_depthwise_layer(layer, x.transpose(0, 2, 3, 1).copy(), out.astype(np.int8), "nhwc", "nhwc")


# ------------------------------------------------------------------------------- AVX2 pairs path
needs_avx2 = pytest.mark.skipif(bool(cpu.missing("avx2")), reason="host has no AVX2")


def run_isa(args, isa):
    """dst of the plan made for `isa`, and whether that plan took the vpmaddwd path."""
    x, xz, wz, bias, geo, dst, rq = args
    got = np.full_like(dst, 55)
    plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, got, rq, isa=isa)
    dn.run_depthwise_nhwc(plan, x, got)
    return got, plan.wpk is not None


@pytest.mark.long
@needs_avx2
@settings(max_examples=70, deadline=None)
@given(case=st.sampled_from([3, 5]).flatmap(lambda k: nhwc_case(max_hw=20, max_c=48, k=k)))
def test_pairs_path_equals_plain_loop_and_twins(case):
    """3x3 and 5x5 kernels: the vpmaddwd path, the plain loop, the NHWC twin and the transposed
    NCHW twin give the same integers (channel counts below, at and off multiples of 16, mult 1..3)."""
    fast, paired = run_isa(case, "avx2")
    plain, plain_paired = run_isa(case, "portable")
    want = np.full_like(case[5], 33)
    dn.depthwise_nhwc_ref(*case[:5], want, case[6])
    if case[5].shape[3] >= 16:             # a run holds at least one pixel: one 16-lane group
        assert paired
    assert not plain_paired
    assert np.array_equal(want, nchw_twin(*case))
    assert np.array_equal(plain, want)
    assert np.array_equal(fast, want)


@needs_avx2
@pytest.mark.parametrize("xd", [np.uint8, np.int8])
@pytest.mark.parametrize("c,mult", [(16, 1), (17, 1), (40, 1), (8, 3), (33, 2)])
@pytest.mark.parametrize("wmax", [255, 32767])
@pytest.mark.parametrize("k", [3, 5])
def test_pairs_path_extremes(xd, c, mult, wmax, k):
    """x only at its ends, wz only at +-wmax (int16's ends for 32767: -32768 too), zero points at
    both ends, 8-bit requant with a multiplier > 1 and int64 sums, 3x3 and 5x5 (25 taps at
    +-32767 x 255 pass int32: the sums wrap as the plain loop's do): the twin's integers."""
    info = np.iinfo(xd)
    rng = np.random.default_rng(c * mult + wmax + k)
    x = rng.choice(np.array([info.min, info.max], xd), (2, 9, 11, c))
    ends = [-wmax, wmax] + ([-32768] if wmax == 32767 else [])
    wz = rng.choice(np.array(ends, np.int32), (c * mult, k * k))
    bias = rng.choice(np.array([-2**20, 0, 2**20], np.int64), c * mult)
    geo = np.array([k, k, 1, 1, k // 2, k // 2, 1, 1], np.int64)
    for x_zp in (int(info.min), int(info.max)):
        for dst, rq in ((np.zeros((2, 9, 11, c * mult), np.int64), rq_none()),
                        (np.zeros((2, 9, 11, c * mult), xd),
                         (True, np.full(c * mult, 1.5, np.float32), np.int64(info.max), np.int64(info.min),
                          np.int64(info.max)))):
            got, paired = run_isa((x, x_zp, wz, bias, geo, dst, rq), "avx2")
            want = np.zeros_like(dst)
            dn.depthwise_nhwc_ref(x, x_zp, wz, bias, geo, want, rq)
            assert paired
            assert np.array_equal(got, want)


def test_pairs_path_choice():
    """vpmaddwd only for 3x3 and 5x5, int16 weights, a run of >= 16 lanes and a non-portable ISA; the
    portable ISA (INTSIM_PORTABLE=1) and an unknown ISA name."""
    x, geo = np.zeros((1, 6, 6, 16), np.uint8), np.array([3, 3, 1, 1, 1, 1, 1, 1], np.int64)
    args = dict(x=x, x_zp=0, bias=np.zeros(16, np.int64), geo=geo, dst=np.zeros((1, 6, 6, 16), np.int64),
                rq=rq_none())
    big = np.full((16, 9), 2**15, np.int32)
    assert dn.plan_depthwise_nhwc(wz=np.zeros((16, 9), np.int32), isa="portable", **args).wpk is None
    assert dn.plan_depthwise_nhwc(wz=big, isa="portable", **args).wpk is None
    with mock.patch.object(jit, "FORCE_PORTABLE", True):
        assert dn.plan_depthwise_nhwc(wz=np.zeros((16, 9), np.int32), **args).wpk is None
    with pytest.raises(ValueError, match="isa"):
        dn.plan_depthwise_nhwc(wz=np.zeros((16, 9), np.int32), isa="sse9", **args)
    if cpu.missing("avx2"):
        return
    assert dn.plan_depthwise_nhwc(wz=np.zeros((16, 9), np.int32), isa="avx2", **args).wpk is not None
    plan = dn.plan_depthwise_nhwc(wz=big, isa="avx2", **args)        # 32768 is not int16: plain loop
    assert plan.wpk is None
    got = np.zeros((1, 6, 6, 16), np.int64)
    xs = np.full_like(x, 255)
    dn.run_depthwise_nhwc(plan, xs, got)
    assert got[0, 2, 2, 0] == 9 * 255 * 2**15
    tiny = dict(args, x=np.zeros((1, 1, 1, 1), np.uint8), bias=np.zeros(1, np.int64),
                dst=np.zeros((1, 1, 1, 1), np.int64))
    assert dn.plan_depthwise_nhwc(wz=np.zeros((1, 9), np.int32), isa="avx2", **tiny).wpk is None
    five = dict(args, geo=np.array([5, 5, 1, 1, 2, 2, 1, 1], np.int64))
    assert dn.plan_depthwise_nhwc(wz=np.zeros((16, 25), np.int32), isa="avx2", **five).wpk is not None
    seven = dict(args, geo=np.array([7, 7, 1, 1, 3, 3, 1, 1], np.int64))
    assert dn.plan_depthwise_nhwc(wz=np.zeros((16, 49), np.int32), isa="avx2", **seven).wpk is None


@settings(max_examples=80, deadline=None)
@given(case=nhwc_case(max_hw=24, k=3), x_layout=st.sampled_from(["nchw", "nhwc"]),
       out_layout=st.sampled_from(["nchw", "nhwc"]), rb=st.integers(1, 24), chunks=st.integers(1, 4),
       isa=st.sampled_from(["portable", None]))
def test_layouts_blocks_chunks_in_any_order(case, x_layout, out_layout, rb, chunks, isa):
    """NCHW sides transposed block by block inside the kernel: every layout pair, any rows per
    block (blocks of fewer than 16 pixels, of more, the whole image), channel chunks (runs of
    one pixel; a chunk a multiple of 16 lanes on the vpmaddwd path, of the channel multiplier
    on both), the items run last to first (an item that wrote past its own pixels or lanes
    into an earlier one would show), equal to the twin."""
    x, xz, wz, bias, geo, dst, rq = case
    order = []

    def backwards(run, items, threads_):
        for i in reversed(range(items)):
            order.append(i)
            run(i, i + 1)

    from kernels import threads as kthreads
    plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, dst, rq, isa=isa)
    n, oh, _, m = dst.shape
    q = np.lcm(dn.CHUNK if plan.wpk is not None else 1, m // x.shape[3])
    mc = min(m, -(-(-(-m // chunks)) // q) * q)
    if mc < m and plan.shape[0] > 1:      # channel chunks: runs of one pixel
        plan = _one_pixel_plan(x, xz, wz, bias, geo, dst, rq, isa)
    shape = (plan.shape[0], min(oh, rb))
    split = (shape, mc, -(-m // mc) * n * -(-oh // shape[1]))
    with mock.patch.object(dn, "_split_run", backwards), mock.patch.object(kthreads, "NATIVE_THREADS", False), \
            mock.patch.object(dn, "SERIAL_WORK", 0), mock.patch.object(dn, "_split", lambda *a: split):
        x_in = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x_layout == "nchw" else x
        got = np.full_like(dst.transpose(0, 3, 1, 2) if out_layout == "nchw" else dst, 66, order="C")
        dn._run_planned(plan, x_in, got, x_layout == "nchw", out_layout == "nchw", threads=2)
    want = np.full_like(dst, 33)
    dn.depthwise_nhwc_ref(x, xz, wz, bias, geo, want, rq)
    assert order[0] == len(order) - 1 == split[2] - 1
    assert np.array_equal(got.transpose(0, 2, 3, 1) if out_layout == "nchw" else got, want)


def _one_pixel_plan(x, xz, wz, bias, geo, dst, rq, isa):
    """The plan with runs of one output pixel (LANES below one pixel's lanes)."""
    with mock.patch.object(dn, "LANES", 1):
        plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, dst, rq, isa=isa)
    assert plan.shape[0] == 1
    return plan


@pytest.mark.parametrize("dst_shape,c,threads,out_nchw,want", [
    ((1, 7, 7, 960), 960, 2, True, 2),        # MobileNetV2's last depthwise layers: 7 rows, 2 threads
    ((1, 14, 14, 576), 576, 2, False, 2),
    ((1, 7, 7, 960), 960, 1, True, 1),        # one thread: no split at all
    ((8, 7, 7, 960), 960, 2, True, 1),        # batch 8: images enough
    ((1, 28, 28, 144), 144, 2, False, 1)])    # runs of several pixels: never channel chunks
def test_split_balances_small_maps_by_channel_chunks(dst_shape, c, threads, out_nchw, want):
    """_split's choice on MobileNetV2 shapes: the chunk count, every item within the buffer
    budget, and on two threads both halves of the work within 20% of each other."""
    n, oh, ow, m = dst_shape
    geo = np.array([3, 3, 1, 1, 1, 1, 1, 1], np.int64)
    x = np.zeros((n, oh, ow, c), np.uint8)
    plan = dn.plan_depthwise_nhwc(x, 0, np.zeros((m, 9), np.int32), np.zeros(m, np.int64), geo,
                                  np.zeros(dst_shape, np.uint8), rq_none())
    (tpix, rb), mc, items = dn._split(plan, threads, out_nchw)
    assert -(-m // mc) == want and mc % 16 == 0 and tpix == plan.shape[0]
    assert items == want * n * -(-oh // rb)
    budget = dn.SERIAL_BUF_BYTES if threads == 1 else dn.BUF_BYTES
    assert (rb - 1 + 3) * (ow + 2) * m <= budget or rb == plan.shape[1]
    if threads == 2:
        work = [min(oh, (b + 1) * rb) - b * rb for b in range(-(-oh // rb))] * n
        work = [r * (min(m, l0 + mc) - l0) for l0 in range(0, m, mc) for r in work]
        halves = sum(work[:items // 2]), sum(work[items // 2:])
        assert max(halves) <= 1.2 * min(halves)


@pytest.mark.parametrize("oh,rb_plan,rb_hi,want", [
    (7, 1, 5, 4), (7, 3, 5, 4), (7, 4, 7, 7), (112, 14, 15, 14), (28, 3, 3, 3), (10, 6, 6, 6), (9, 1, 4, 3)])
def test_serial_rows_fewest_balanced_blocks(oh, rb_plan, rb_hi, want):
    """One thread: the fewest blocks within rb_hi rows, balanced, never below the plan's rows."""
    assert dn._serial_rows(oh, rb_plan, rb_hi) == want


@settings(max_examples=40, deadline=None)
@given(case=nhwc_case(max_hw=16, max_c=40, k=3), x_layout=st.sampled_from(["nchw", "nhwc"]),
       out_layout=st.sampled_from(["nchw", "nhwc"]), buf=st.sampled_from([1 << 9, 1 << 11, 1 << 13, 1 << 16]),
       isa=st.sampled_from(["portable", None]))
def test_one_thread_blocks_equal_twin(case, x_layout, out_layout, buf, isa):
    """On one thread the rows per block come from _serial_rows (buffer budgets from a few rows to
    the whole map: balanced blocks, short last blocks, one block): every layout pair equals the twin,
    and the blocks stay within the budget or at the plan's rows."""
    x, xz, wz, bias, geo, dst, rq = case
    plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, dst, rq, isa=isa)
    with mock.patch.object(dn, "SERIAL_BUF_BYTES", buf):
        (_, rb), _, items = dn._split(plan, 1, out_layout == "nchw")
        x_in = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x_layout == "nchw" else x
        got = np.full_like(dst.transpose(0, 3, 1, 2) if out_layout == "nchw" else dst, 66, order="C")
        dn._run_planned(plan, x_in, got, x_layout == "nchw", out_layout == "nchw", threads=1)
    n, oh, ow, m = dst.shape
    assert rb >= plan.shape[1] and items == n * -(-oh // rb)
    assert rb == plan.shape[1] or dn._rows_in_buffer(dst.shape, tuple(int(v) for v in geo), buf) >= rb
    want = np.full_like(dst, 33)
    dn.depthwise_nhwc_ref(x, xz, wz, bias, geo, want, rq)
    assert np.array_equal(got.transpose(0, 2, 3, 1) if out_layout == "nchw" else got, want)


# ------------------------------------------------------------------------------- VNNI quads path
needs_vnni = pytest.mark.skipif(not cpu.has_vnni(), reason="host has no VNNI (vpdpbusd)")
VNNI_ISA = cpu.best_isa() if cpu.best_isa() in dn.VNNI_ISAS else "avx512vnni"


def int8_weights(case):
    """The case with its weight differences clipped to int8 (the quads path's weights; the
    strategy's +-255 extremes become -128 and 127)."""
    return case[:2] + (np.clip(case[2], -128, 127).astype(np.int32),) + case[3:]


@needs_vnni
@settings(max_examples=70, deadline=None)
@given(case=st.sampled_from([3, 5]).flatmap(lambda k: nhwc_case(max_hw=20, max_c=80, k=k)).map(int8_weights),
       threads=st.sampled_from([1, 2]))
def test_quads_path_equals_pairs_plain_loop_and_twins(case, threads):
    """3x3 and 5x5 kernels, int8 weights: the vpdpbusd path (channel counts below, at and off
    multiples of 32, mult 1..3, strides and dilations 1..3, uint8 and int8 x), the vpmaddwd
    path, the plain loop, the NHWC twin and the NCHW twin give the same integers, on 1 and 2
    threads."""
    x, xz, wz, bias, geo, dst, rq = case
    got = {}
    for isa in (VNNI_ISA, "avx2", "portable"):
        plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, dst, rq, isa=isa)
        assert plan.quads == (isa == VNNI_ISA and plan.shape[0] * dst.shape[3] >= dn.QUAD)
        got[isa] = np.full_like(dst, 55)
        with mock.patch.object(dn, "SERIAL_WORK", 0), mock.patch.object(dn, "NATIVE_SERIAL_WORK", 0):
            dn.run_depthwise_nhwc(plan, x, got[isa], threads=threads)
    want = np.full_like(dst, 33)
    dn.depthwise_nhwc_ref(x, xz, wz, bias, geo, want, rq)
    assert np.array_equal(want, nchw_twin(*case))
    for isa, g in got.items():
        assert np.array_equal(g, want), isa


@needs_vnni
@pytest.mark.parametrize("xd", [np.uint8, np.int8])
@pytest.mark.parametrize("c,mult", [(32, 1), (33, 1), (80, 1), (16, 3), (17, 2)])
@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (5, 1), (5, 2)])
def test_quads_path_extremes(xd, c, mult, k, s):
    """x only at its ends, wz only at -128 and 127, zero points at both ends, int64 sums and
    8-bit requant with a multiplier > 1 (saturating both ways): the twin's integers."""
    info = np.iinfo(xd)
    rng = np.random.default_rng(c * mult + k + s)
    x = rng.choice(np.array([info.min, info.max], xd), (2, 9, 11, c))
    wz = rng.choice(np.array([-128, 127], np.int32), (c * mult, k * k))
    bias = rng.choice(np.array([-2**20, 0, 2**20], np.int64), c * mult)
    geo = np.array([k, k, s, s, k // 2, k // 2, 1, 1], np.int64)
    oh, ow = out_size(9, k, s, 2 * (k // 2), 1), out_size(11, k, s, 2 * (k // 2), 1)
    for x_zp in (int(info.min), int(info.max)):
        for dst, rq in ((np.zeros((2, oh, ow, c * mult), np.int64), rq_none()),
                        (np.zeros((2, oh, ow, c * mult), xd),
                         (True, np.full(c * mult, 1.5, np.float32), np.int64(info.max), np.int64(info.min),
                          np.int64(info.max)))):
            got = np.full_like(dst, 55)
            plan = dn.plan_depthwise_nhwc(x, x_zp, wz, bias, geo, got, rq, isa=VNNI_ISA)
            dn.run_depthwise_nhwc(plan, x, got)
            want = np.zeros_like(dst)
            dn.depthwise_nhwc_ref(x, x_zp, wz, bias, geo, want, rq)
            assert plan.quads
            assert np.array_equal(got, want)


def test_quads_path_choice():
    """vpdpbusd only on a VNNI ISA, for 3x3 and 5x5, int8 weights and a run of >= 32 lanes; else
    the vpmaddwd pairs (int16 weights, AVX2) or the plain loop. The pack's correction row holds
    -128 * the weight sum for int8 x only."""
    x, geo = np.zeros((1, 6, 6, 32), np.uint8), np.array([3, 3, 1, 1, 1, 1, 1, 1], np.int64)
    args = dict(x=x, x_zp=0, bias=np.zeros(32, np.int64), geo=geo, dst=np.zeros((1, 6, 6, 32), np.int64),
                rq=rq_none())
    ones = np.ones((32, 9), np.int32)
    for isa in ("portable", "avx2", "avxvnni", "avx512vnni", "amx"):
        if isa != "portable" and cpu.missing(isa):
            continue
        plan = dn.plan_depthwise_nhwc(wz=ones, isa=isa, **args)
        assert plan.quads == (isa in dn.VNNI_ISAS)
        assert not dn.plan_depthwise_nhwc(wz=ones * 128, isa=isa, **args).quads        # 128 is not int8
        assert not dn.plan_depthwise_nhwc(wz=-ones * 129, isa=isa, **args).quads
    if not cpu.has_vnni():
        return
    narrow = dict(args, x=np.zeros((1, 1, 1, 16), np.uint8), bias=np.zeros(16, np.int64),
                  dst=np.zeros((1, 1, 1, 16), np.int64))
    assert not dn.plan_depthwise_nhwc(wz=ones[:16], isa=VNNI_ISA, **narrow).quads     # 16 lanes
    seven = dict(args, geo=np.array([7, 7, 1, 1, 3, 3, 1, 1], np.int64))
    assert not dn.plan_depthwise_nhwc(wz=np.ones((32, 49), np.int32), isa=VNNI_ISA, **seven).quads
    u8 = dn.plan_depthwise_nhwc(wz=ones * 3, isa=VNNI_ISA, **args)
    s8 = dn.plan_depthwise_nhwc(wz=ones * 3, isa=VNNI_ISA, **dict(args, x=x.astype(np.int8)))
    corr = lambda p: p.wpk.view(np.uint8).reshape(-1, 32 * 16)[:, 32 * 12:].view(np.int32)  # noqa: E731
    assert (corr(u8) == 0).all() and (corr(s8) == -128 * 27).all()


@needs_vnni
@settings(max_examples=40, deadline=None)
@given(case=nhwc_case(max_hw=24, max_c=80, k=3).map(int8_weights), x_layout=st.sampled_from(["nchw", "nhwc"]),
       out_layout=st.sampled_from(["nchw", "nhwc"]), threads=st.sampled_from([1, 2]), data=st.data())
def test_quads_path_layouts_threads_and_frozen_calls(case, x_layout, out_layout, threads, data):
    """The vpdpbusd path with NCHW sides transposed in the kernel, channel chunks of 32 lanes
    (two threads, runs of one pixel), and a frozen call (the bound kernel's freeze) replayed on
    new data in the same arrays: each run equals the twin."""
    x, xz, wz, bias, geo, dst, rq = case
    with mock.patch.object(dn, "LANES", 1):         # runs of one pixel: channel chunks on 2 threads
        plan = dn.plan_depthwise_nhwc(x, xz, wz, bias, geo, dst, rq, isa=VNNI_ISA)
    assert plan.quads == (dst.shape[3] >= dn.QUAD)
    x_in = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x_layout == "nchw" else x.copy()
    got = np.full_like(dst.transpose(0, 3, 1, 2) if out_layout == "nchw" else dst, 66, order="C")
    with mock.patch.object(dn, "SERIAL_WORK", 0), mock.patch.object(dn, "NATIVE_SERIAL_WORK", 0):
        call = dn._bind_planned(plan, x_layout == "nchw", out_layout == "nchw", threads)
        frozen = call.freeze(x_in, got)
        for _ in range(2):
            frozen()
            want = np.full_like(dst, 33)
            x_now = x_in.transpose(0, 2, 3, 1) if x_layout == "nchw" else x_in
            dn.depthwise_nhwc_ref(np.ascontiguousarray(x_now), xz, wz, bias, geo, want, rq)
            assert np.array_equal(got.transpose(0, 2, 3, 1) if out_layout == "nchw" else got, want)
            x_in[...] = data.draw(int_array(x_in.shape, x_in.dtype))
