"""kernels.fast_depthwise against its NumPy int64 twin, against kernels.conv.conv2d_acc_ref (the
canonical conv, written independently), and an int32-wrap / float32 requant written here."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import fast_depthwise as fd
from kernels.conv import ConvGeom, conv2d_acc_ref, conv_out_hw
from tests.kernels.strategies import bad_requant_params, int_array, zero_point

DST_DTYPES = [np.int32, np.int64, np.uint8, np.int8]


def wrap32(v):
    return ((v.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def geo_of(kh, kw, g: ConvGeom):
    return np.array([kh, kw, g.stride_h, g.stride_w, g.pad_top, g.pad_left, g.dil_h, g.dil_w], np.int64)


def rq_none():
    return (False, np.ones(1, np.float32), np.int64(0), np.int64(0), np.int64(0))


@st.composite
def rq_for(draw, dtype, m):
    """(True, mult, zp, lo, hi) for a uint8/int8 dst: multipliers from tiny to > 1, bounds and
    zero points at the ends of the range included."""
    info = np.iinfo(dtype)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mult = (rng.uniform(0.5, 1.0, m) * 2.0 ** rng.integers(-16, 1, m)).astype(np.float32)
    zp = draw(zero_point(dtype))
    lo = draw(st.sampled_from([int(info.min), zp]) | st.integers(int(info.min), zp))
    hi = draw(st.sampled_from([int(info.max), zp]) | st.integers(zp, int(info.max)))
    return (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))


@st.composite
def dw_case(draw, max_hw=20, big_w=False):
    """x (N, C, H, W), x_zp, wz (M, KH*KW) int32, bias, geo, dst, rq over the brief's ranges."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 40))
    mult = draw(st.sampled_from([1, 2]))
    kh, kw = draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 3, 5, 7]))
    g = ConvGeom(draw(st.integers(1, 3)), draw(st.integers(1, 3)), *(draw(st.integers(0, 3)) for _ in range(4)),
                 draw(st.integers(1, 2)), draw(st.integers(1, 2)), c)
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    oh, ow = conv_out_hw(h, w, kh, kw, g)
    if oh < 1 or ow < 1:
        h, w = h + g.dil_h * kh, w + g.dil_w * kw
        oh, ow = conv_out_hw(h, w, kh, kw, g)
    xd = draw(st.sampled_from([np.uint8, np.int8]))
    x = draw(int_array((n, c, h, w), xd))
    m = c * mult
    wmode = draw(st.sampled_from(["int8", "ends", "wide"])) if big_w else draw(st.sampled_from(["int8", "ends"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if wmode == "int8":       # w int8 minus a zero point: |wz| <= 255
        wz = rng.integers(-255, 256, (m, kh * kw))
    elif wmode == "ends":
        wz = rng.choice(np.array([-128, 127, 0, 255, -255]), (m, kh * kw))
    else:                     # wide taps: float32 partial sums could leave 2**24 (int32 path)
        wz = rng.integers(-2**15, 2**15, (m, kh * kw))
    bias = rng.integers(-2**31, 2**31, m)
    dt = draw(st.sampled_from(DST_DTYPES))
    rq = draw(rq_for(dt, m)) if dt in (np.uint8, np.int8) else rq_none()
    return (x, draw(zero_point(xd)), wz.astype(np.int32), bias.astype(np.int64), geo_of(kh, kw, g),
            np.zeros((n, m, oh, ow), dt), rq), g


PATHS = {"rows": 1, "chan": 10**9}     # ROWS_MIN_OW forcing each loop order


def run_both(args, path):
    x, xz, wz, bias, geo, dst, rq = args
    got, want = np.full_like(dst, 77), np.full_like(dst, 33)
    with mock.patch.object(fd, "ROWS_MIN_OW", PATHS[path]):
        assert fd._path(dst) == path
        fd.depthwise(x, xz, wz, bias, geo, got, rq)
    fd.depthwise_ref(x, xz, wz, bias, geo, want, rq)
    return got, want


@settings(max_examples=150, deadline=None)
@given(case=dw_case(), path=st.sampled_from(list(PATHS)))
def test_depthwise_equals_twin(case, path):
    got, want = run_both(case[0], path)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(case=dw_case(max_hw=9, big_w=True), path=st.sampled_from(list(PATHS)))
def test_depthwise_wide_taps_equals_twin(case, path):
    """Taps up to 2**15 (products up to 2**23): the int32 sums still match."""
    got, want = run_both(case[0], path)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(case=dw_case(max_hw=40), threads=st.sampled_from([1, 2, 3]))
def test_depthwise_threads_and_paths(case, threads):
    """Every thread count gives the twin's integers, on both loop orders (OW up to ~40), with
    the serial cut-off lowered so even small problems are split into chunks."""
    args = case[0]
    got, want = np.full_like(args[5], 1), np.full_like(args[5], 2)
    calls = []
    real = fd._split_run

    def spy(impl, items, threads_):
        calls.append((items, threads_))
        real(impl, items, threads_)

    with mock.patch.object(fd, "SERIAL_WORK", 0), mock.patch.object(fd, "_split_run", spy):
        fd.depthwise(*args[:5], got, args[6], threads=threads)
    fd.depthwise_ref(*args[:5], want, args[6])
    assert calls and calls[0][1] == threads
    assert np.array_equal(got, want)


def canonical(x, xz, wz, bias, geom: ConvGeom, kh, kw, m):
    """The depthwise conv through kernels.conv.conv2d_acc_ref, with weights w = wz (w_zp = 0)."""
    n, c, h, w = x.shape
    oh, ow = conv_out_hw(h, w, kh, kw, geom)
    acc = np.empty((n, m, oh, ow), np.int64)
    conv2d_acc_ref(x, wz.reshape(m, 1, kh, kw), xz, np.zeros(m, np.int64), bias, geom, acc)
    return acc


@pytest.mark.parametrize("shape,k,stride,pad,dil,mult", [
    ((1, 32, 112, 112), 3, 1, (1, 1, 1, 1), 1, 1),      # rows path, stride 1
    ((1, 24, 56, 57), 3, 2, (1, 1, 1, 1), 1, 1),        # rows path, stride 2, odd width
    ((2, 48, 7, 7), 3, 1, (1, 1, 1, 1), 1, 1),          # chan path, 3 blocks
    ((1, 17, 9, 11), 5, 2, (2, 0, 1, 3), 2, 2),         # asymmetric pads, dilation, multiplier
    ((3, 5, 1, 1), 1, 1, (0, 0, 0, 0), 1, 2),           # 1x1 maps, 1x1 kernel
    ((1, 3, 30, 30), 7, 3, (3, 3, 3, 3), 1, 1),         # 7x7 stride 3
])
@pytest.mark.parametrize("xd", [np.uint8, np.int8])
def test_depthwise_equals_canonical_conv(shape, k, stride, pad, dil, mult, xd):
    rng = np.random.default_rng(hash((shape, k, stride)) % 2**32)
    info = np.iinfo(xd)
    x = rng.integers(int(info.min), int(info.max) + 1, shape).astype(xd)
    x.flat[::7] = info.min
    x.flat[::11] = info.max
    m = shape[1] * mult
    wz = rng.integers(-255, 256, (m, k * k)).astype(np.int32)
    wz[0] = -255
    bias = rng.integers(-2**20, 2**20, m).astype(np.int64)
    geom = ConvGeom(stride, stride, pad[0], pad[1], pad[2], pad[3], dil, dil, shape[1])
    xz = int(info.max)
    want = canonical(x, xz, wz, bias, geom, k, k, m)
    for dt in (np.int64, np.int32):
        got = np.empty(want.shape, dt)
        fd.depthwise(x, xz, wz, bias, geo_of(k, k, geom), got, rq_none())
        assert np.array_equal(got, want if dt == np.int64 else wrap32(want))
    mult_f = (rng.uniform(0.5, 1.0, m) * 2.0**-12).astype(np.float32)
    out = np.empty(want.shape, np.uint8)
    fd.depthwise(x, xz, wz, bias, geo_of(k, k, geom), out, (True, mult_f, np.int64(3), np.int64(0), np.int64(255)))
    v = wrap32(want).astype(np.float32) * mult_f[None, :, None, None]     # float32 product
    v = np.clip(v, np.float32(0 - 3), np.float32(255 - 3))
    assert np.array_equal(out, (np.rint(v).astype(np.int64) + 3).astype(np.uint8))


def test_requant_ties_round_half_even():
    """acc * mult landing exactly on .5 rounds to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2)."""
    x = np.array([[[[5, 7, -5]]]], np.int8)
    wz = np.ones((1, 1), np.int32)
    out = np.empty((1, 1, 1, 3), np.int8)
    rq = (True, np.array([0.5], np.float32), np.int64(0), np.int64(-128), np.int64(127))
    fd.depthwise(x, 0, wz, np.zeros(1, np.int64), geo_of(1, 1, ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1)), out, rq)
    assert out.ravel().tolist() == [2, 4, -2]


def test_int32_dst_wraps_and_int64_is_exact():
    x = np.full((1, 1, 3, 3), 255, np.uint8)
    wz = np.full((1, 9), 255, np.int32)
    geo = geo_of(3, 3, ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1))
    bias = np.array([2**31 - 1], np.int64)
    exact = 2**31 - 1 + 9 * 255 * 255
    d64, d32 = np.empty((1, 1, 1, 1), np.int64), np.empty((1, 1, 1, 1), np.int32)
    fd.depthwise(x, 0, wz, bias, geo, d64, rq_none())
    fd.depthwise(x, 0, wz, bias, geo, d32, rq_none())
    assert d64.item() == exact and d32.item() == exact - 2**32


# ------------------------------------------------------------------------------- validation
def good_args():
    x = np.zeros((1, 4, 5, 5), np.uint8)
    return dict(x=x, x_zp=0, wz=np.zeros((8, 9), np.int32), bias=np.zeros(8, np.int64),
                geo=geo_of(3, 3, ConvGeom(1, 1, 1, 1, 1, 1, 1, 1, 4)), dst=np.zeros((1, 8, 5, 5), np.int32),
                rq=rq_none())


@pytest.mark.parametrize("name,value,blamed", [
    ("x", np.zeros((1, 4, 5, 5), np.int16), "x"),
    ("x", np.zeros((1, 4, 5, 10), np.uint8)[..., ::2], "x"),
    ("x", np.zeros((4, 5, 5), np.uint8), "x"),
    ("x_zp", 256, "x_zp"),
    ("x_zp", 1.5, "x_zp"),
    ("wz", np.zeros((8, 9), np.int64), "wz"),
    ("wz", np.zeros((8, 4), np.int32), "wz"),
    ("wz", np.zeros((9, 8), np.int32).T, "wz"),
    ("bias", np.zeros(7, np.int64), "bias"),
    ("bias", np.zeros(8, np.int32), "bias"),
    ("geo", np.array([3, 3, 0, 1, 1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([3, 3, 1, 1, -1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([3, 3, 1, 1, 1, 1, 1], np.int64), "geo"),
    ("geo", np.array([1, 1, 1, 1, 1, 1, 1, 1], np.int64), "dst"),     # dst larger than the conv
    ("dst", np.zeros((1, 6, 5, 5), np.int32), "dst"),                 # M not a multiple of C
    ("dst", np.zeros((2, 8, 5, 5), np.int32), "dst"),
    ("dst", np.zeros((1, 8, 5, 5), np.float32), "dst"),
    ("dst", np.zeros((1, 8, 5, 5), np.int16), "dst"),
    ("rq", (True, np.ones(8, np.float32), np.int64(0), np.int64(0), np.int64(255)), "dst"),  # int32 dst
    ("rq", (False, np.ones(1, np.float32)), "rq"),
])
def test_validation_names_the_argument(name, value, blamed):
    args = good_args()
    args[name] = value
    with pytest.raises(ValueError, match=rf"^depthwise: {blamed}\b"):
        fd.depthwise(**args)


@pytest.mark.parametrize("rq", bad_requant_params(8))
def test_validation_of_requant(rq):
    args = good_args()
    args["dst"] = np.zeros((1, 8, 5, 5), np.uint8)
    args["rq"] = rq
    with pytest.raises(ValueError, match=r"^depthwise: rq\b"):
        fd.depthwise(**args)


def test_good_args_pass():
    fd.depthwise(**good_args())
