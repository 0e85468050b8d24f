"""kernels.conv_rows against its NumPy twins (to_nhwc_ref, im2col_rows_ref, rows_to_nchw_ref)
and an independent row sum; the threaded runner (kernels.threads.parallel_items) writes the
same bytes as one thread. The shapes cross the vector tile sides (16 bytes, 8 int32, 4 int64)
on both axes, so full, overlapped, narrow and scalar tiles are all exercised."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import conv_rows as cr
from kernels import threads as kernel_threads
from kernels import threads as kthreads
from tests.kernels.strategies import int_array

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
RQ_OFF = (False, np.zeros(1, np.float32), 0, 0, 0)


def threads(n):
    """A `run` argument: kernels.threads.parallel_items on n threads, 3 chunks per thread."""
    return lambda fn, items: kernel_threads.parallel_items(fn, items, threads=n, per_thread=3)


@pytest.fixture
def two_threads():
    return threads(2)


# ------------------------------------------------------------------------------ to_nhwc
@st.composite
def nchw(draw, dtypes=(np.uint8, np.int8, np.int16, np.int32, np.int64)):
    dtype = draw(st.sampled_from(dtypes))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 70)), draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    return draw(int_array(shape, dtype))


@settings(max_examples=150, deadline=None)
@given(x=nchw())
def test_to_nhwc_equals_twin(x):
    got = cr.to_nhwc(x)
    assert got.dtype == x.dtype and got.flags.c_contiguous
    assert np.array_equal(got, cr.to_nhwc_ref(x))
    assert np.array_equal(got, x.transpose(0, 2, 3, 1))


@settings(max_examples=120, deadline=None)
@given(rows=st.integers(1, 80), cols=st.integers(1, 100), pads=st.tuples(*[st.integers(0, 40)] * 4),
       dtype=st.sampled_from([np.uint8, np.int8, np.int32]), seed=st.integers(0, 2**32 - 1))
def test_transpose_tiles_pairs_and_edges(rows, cols, pads, dtype, seed):
    """cr._transpose on strided 1-D views (row stride ss >= cols, column stride ds >= rows,
    offsets): single tiles, byte tile pairs (one ymm per two 16 x 16 tiles, rows >= 16 and two
    whole column tiles), moved-back last tiles, short sides and the scalar corner equal NumPy's
    transpose; the elements around each destination row stay as they were."""
    s0, extra_s, d0, extra_d = pads
    ss, ds = cols + extra_s, rows + extra_d
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    src = rng.integers(info.min, info.max, s0 + rows * ss + 16, endpoint=True).astype(dtype)
    dst = rng.integers(info.min, info.max, d0 + cols * ds + 16, endpoint=True).astype(dtype)
    want = dst.copy()
    view = want[d0:d0 + cols * ds].reshape(cols, ds)
    view[:, :rows] = src[s0:s0 + rows * ss].reshape(rows, ss)[:, :cols].T
    cr._transpose(src, s0, ss, rows, cols, dst, d0, ds, src.size, d0 + cols * ds)
    got = dst[d0:d0 + cols * ds].reshape(cols, ds)
    assert np.array_equal(got[:, :rows], view[:, :rows])
    assert np.array_equal(dst[:d0], want[:d0]) and np.array_equal(dst[d0 + cols * ds:], want[d0 + cols * ds:])
    if ds == rows:      # a row's tile overrun past its own elements is rewritten by the next row's store
        assert np.array_equal(dst, want)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 3, 1, 1), (2, 15, 1, 17), (2, 16, 4, 4), (1, 17, 3, 3),
                                   (2, 3, 96, 96), (3, 5, 4, 4), (1, 64, 7, 9), (2, 40, 1, 15), (4, 8, 3, 5),
                                   (2, 1, 5, 7), (2, 4, 17, 3), (1, 6, 16, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.float32, np.float64, np.bool_])
def test_to_nhwc_tile_edges(shape, dtype):
    x = np.random.default_rng(sum(shape)).integers(-128, 128, shape).astype(dtype)
    assert np.array_equal(cr.to_nhwc(x), x.transpose(0, 2, 3, 1))


def test_to_nhwc_odd_inputs():
    x = np.arange(2 * 20 * 3 * 5, dtype=np.int16).reshape(2, 5, 20, 3).transpose(0, 2, 3, 1)   # not contiguous
    assert np.array_equal(cr.to_nhwc(x), x.transpose(0, 2, 3, 1))
    c = np.zeros((2, 3, 2, 2), np.complex64) + 1j                  # no bit view: NumPy's transpose
    assert np.array_equal(cr.to_nhwc(c), c.transpose(0, 2, 3, 1))
    assert cr.to_nhwc(np.zeros((0, 3, 4, 4), np.uint8)).shape == (0, 4, 4, 3)
    with pytest.raises(ValueError, match="to_nhwc: x"):
        cr.to_nhwc(np.zeros((3, 4, 4), np.uint8))


@settings(max_examples=30, deadline=None)
@given(x=nchw(dtypes=(np.uint8, np.int32)))
def test_to_nhwc_threads_equal_serial(x):
    assert np.array_equal(cr.to_nhwc(x, threads(2)), cr.to_nhwc(x))


needs_region = pytest.mark.skipif(not kernel_threads.native_split(2), reason="no thread-safe Numba threading layer")


@needs_region
@settings(max_examples=30, deadline=None)
@given(x=nchw(dtypes=(np.uint8, np.int8, np.int32)))
def test_to_nhwc_region_equals_serial(x):
    """The parallel-region split (a NativeSplit runner: image ranges, one per thread)."""
    assert np.array_equal(cr.to_nhwc(x, cr.NativeSplit(x.nbytes, 2)), cr.to_nhwc_ref(x))


def test_runner_kinds(monkeypatch):
    """Small passes serial; a region runner from NATIVE_PARALLEL_BYTES when regions are on;
    the pool above PARALLEL_BYTES otherwise; serial_here() keeps everything on the caller."""
    assert cr.runner(cr.NATIVE_PARALLEL_BYTES - 1) is None
    with kernel_threads.serial_here():
        assert cr.runner(cr.PARALLEL_BYTES) is None
    before = kernel_threads.get_num_threads()
    kernel_threads.set_num_threads(2)
    try:
        big = cr.runner(cr.NATIVE_PARALLEL_BYTES)
        assert isinstance(big, cr.NativeSplit) if kernel_threads.native_split(2) else big is None
        calls = []
        cr.NativeSplit(cr.NATIVE_PARALLEL_BYTES, 2)(lambda i0, i1: calls.append((i0, i1)), 10)
        assert calls == [(0, 10)]            # other passes: serial below PARALLEL_BYTES
        monkeypatch.setattr(kthreads, "NATIVE_THREADS", False)
        assert cr.runner(cr.NATIVE_PARALLEL_BYTES) is None
        assert cr.runner(cr.PARALLEL_BYTES) is kernel_threads.parallel_items
    finally:
        kernel_threads.set_num_threads(before)


# ------------------------------------------------------------------------------ im2col_rows
@st.composite
def im2col_case(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 70))
    h, w = draw(st.integers(1, 10)) * 2 - 1, draw(st.integers(1, 10)) * 2 - 1
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    sh, sw, dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pt, pl, pb, pr = (draw(st.integers(0, 3)) for _ in range(4))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:           # grow the image until one output pixel fits
        h, w = h + dh * kh, w + dw * kw
        oh, ow = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    whole = draw(st.booleans())
    c0 = 0 if whole else draw(st.integers(0, c - 1))
    cg = c if whole else draw(st.integers(1, c - c0))
    dtype = draw(st.sampled_from([np.uint8, np.int8]))
    info = np.iinfo(dtype)
    pad = draw(st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(int(info.min), int(info.max)))
    xh = draw(int_array((n, h, w, c), dtype))
    cgeo = np.array([sh, sw, pt, pl, dh, dw, oh, ow], np.int64)
    return xh, c0, cg, kh, kw, cgeo, pad


def im2col_both(case, run=None):
    xh, c0, cg, kh, kw, cgeo, pad = case
    shape = (xh.shape[0] * int(cgeo[6]) * int(cgeo[7]), kh * kw * cg)
    got = np.full(shape, 0x5A, xh.dtype)       # sentinel: every byte must be written
    want = np.empty(shape, xh.dtype)
    cr.im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, got, run)
    cr.im2col_rows_ref(xh, c0, cg, kh, kw, cgeo, pad, want)
    return got, want


@settings(max_examples=200, deadline=None)
@given(case=im2col_case())
def test_im2col_rows_equals_twin(case):
    got, want = im2col_both(case)
    assert np.array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(case=im2col_case(), data=st.data())
def test_im2col_row_ranges_compose(case, data):
    """Any split of the rows into [0, cut) and [cut, rows) writes the same bytes (threads do this)."""
    xh, c0, cg, kh, kw, cgeo, pad = case
    want, _ = im2col_both(case)
    cut = data.draw(st.integers(0, want.shape[0]))
    got = np.zeros_like(want)
    split = lambda fn, n: (fn(0, cut), fn(cut, n))
    cr.im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, got, split)
    assert np.array_equal(got, want)


@needs_region
@settings(max_examples=60, deadline=None)
@given(case=im2col_case())
def test_im2col_rows_region_equals_twin(case):
    """The parallel-region split (a NativeSplit runner: row ranges, one per thread)."""
    got, want = im2col_both(case, cr.NativeSplit(1 << 30, 2))
    assert np.array_equal(got, want)


def test_im2col_pad_value_is_written_as_is():
    """A pad that is the sentinel-looking extreme of each dtype, on an all-border 1x1 image."""
    for dtype, pad in ((np.uint8, 255), (np.uint8, 0), (np.int8, -128), (np.int8, 127)):
        xh = np.full((1, 1, 1, 3), 7, dtype)
        cgeo = np.array([1, 1, 2, 2, 1, 1, 3, 3], np.int64)
        cols = np.zeros((9, 5 * 5 * 3), dtype)
        cr.im2col_rows(xh, 0, 3, 5, 5, cgeo, pad, cols)
        taps = cols.reshape(3, 3, 5, 5, 3)
        for oy in range(3):
            for ox in range(3):
                inside = np.zeros((5, 5), bool)
                inside[2 - oy, 2 - ox] = True       # the one tap that lands on pixel (0, 0)
                assert (taps[oy, ox][inside] == 7).all() and (taps[oy, ox][~inside] == pad).all()


@pytest.mark.parametrize("shape", [(8, 3, 96, 96, 3, 2), (8, 8, 24, 24, 3, 1), (2, 16, 48, 48, 3, 2), (2, 64, 14, 14, 3, 1)])
def test_im2col_network_shapes_threads(shape, two_threads):
    n, c, h, w, k, s = shape
    pd = k // 2
    oh, ow = (h + 2 * pd - k) // s + 1, (w + 2 * pd - k) // s + 1
    xh = np.random.default_rng(c).integers(0, 256, (n, h, w, c)).astype(np.uint8)
    case = (xh, 0, c, k, k, np.array([s, s, pd, pd, 1, 1, oh, ow], np.int64), 3)
    got, want = im2col_both(case, two_threads)
    assert np.array_equal(got, want)


def test_im2col_rejects():
    xh = np.zeros((1, 4, 4, 3), np.uint8)
    cgeo = np.array([1, 1, 0, 0, 1, 1, 2, 2], np.int64)
    ok = np.zeros((4, 27), np.uint8)
    cr.im2col_rows(xh, 0, 3, 3, 3, cgeo, 0, ok)
    with pytest.raises(ValueError, match="cols must be"):
        cr.im2col_rows(xh, 0, 3, 3, 3, cgeo, 0, np.zeros((4, 26), np.uint8))
    with pytest.raises(ValueError, match="cols must be"):
        cr.im2col_rows(xh, 0, 3, 3, 3, cgeo, 0, np.zeros((4, 27), np.int8))
    with pytest.raises(ValueError, match="pad 256"):
        cr.im2col_rows(xh, 0, 3, 3, 3, cgeo, 256, ok)
    with pytest.raises(ValueError, match="bad geometry"):
        cr.im2col_rows(xh, 2, 2, 3, 3, cgeo, 0, np.zeros((4, 18), np.uint8))
    with pytest.raises(ValueError, match="cgeo"):
        cr.im2col_rows(xh, 0, 3, 3, 3, cgeo.astype(np.int32), 0, ok)
    with pytest.raises(ValueError, match="xh must be"):
        cr.im2col_rows(np.zeros((1, 4, 4, 3), np.float32), 0, 3, 3, 3, cgeo, 0, ok)


# ------------------------------------------------------------------------------ row_sums
@settings(max_examples=100, deadline=None)
@given(data=st.data(), rows=st.integers(0, 40), k=st.integers(1, 700), dtype=st.sampled_from([np.uint8, np.int8]))
def test_row_sums_equal_python_ints(data, rows, k, dtype):
    cols = data.draw(int_array((rows, k), dtype))
    got = cr.row_sums(cols)
    assert got.dtype == np.int64
    assert got.tolist() == [sum(int(v) for v in row) for row in cols.tolist()]


def test_row_sums_threads(two_threads):
    cols = np.random.default_rng(0).integers(-128, 128, (5000, 77)).astype(np.int8)
    assert np.array_equal(cr.row_sums(cols, two_threads), cols.astype(np.int64).sum(1))


# ------------------------------------------------------------------------------ rows_to_nchw
@st.composite
def finish_case(draw):
    out_dtype = draw(st.sampled_from([np.uint8, np.int8, np.int32, np.int64]))
    n, mg = draw(st.integers(1, 3)), draw(st.integers(1, 70))
    p = draw(st.sampled_from([1, 3, 7, 9, 15, 16, 17, 33, 63, 64, 65, 79, 80, 127, 128, 129, 200]) | st.integers(1, 300))
    ch0 = draw(st.integers(0, 5))
    m = ch0 + mg + draw(st.integers(0, 5))
    raw = draw(int_array((n * p, mg), np.int32))
    off = draw(st.lists(st.sampled_from([INT32_MIN, INT32_MAX, -2**40, 2**40 + 7, 0]) | st.integers(-2**40, 2**40),
                        min_size=mg, max_size=mg))
    use_rs = draw(st.booleans())
    w_zp = draw(st.lists(st.sampled_from([-128, 127, 0, 255]) | st.integers(-128, 255), min_size=mg, max_size=mg))
    rowsum = draw(st.lists(st.sampled_from([0, 255 * 4608, -128 * 4608]) | st.integers(-2**20, 2**20),
                           min_size=n * p, max_size=n * p)) if use_rs else []
    if out_dtype in (np.uint8, np.int8):
        info = np.iinfo(out_dtype)
        ends = st.sampled_from([int(info.min), int(info.max)]) | st.integers(int(info.min), int(info.max))
        zp, a, b = draw(ends), draw(ends), draw(ends)
        lo, hi = min(a, b, zp), max(a, b, zp)
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        mult = (rng.uniform(0.5, 1.0, m) * 2.0 ** rng.integers(-30, 2, m)).astype(np.float32)
        rq = (True, mult, zp, lo, hi)
    else:
        rq = (False, np.zeros(m, np.float32), 0, 0, 0)
    return (raw, np.array(off, np.int64), np.array(w_zp, np.int64), np.array(rowsum, np.int64), rq,
            np.empty((n, m, p), out_dtype), ch0)


def finish_both(case, run=None):
    raw, off, w_zp, rowsum, rq, out, ch0 = case
    got = np.full_like(out, 0x5A)               # channels outside ch0..ch0+Mg-1 keep the sentinel
    want = got.copy()
    cr.rows_to_nchw(raw, off, w_zp, rowsum, rq, got, ch0, run)
    cr.rows_to_nchw_ref(raw, off, w_zp, rowsum, rq, want, ch0)
    return got, want


def finish_python(raw, off, w_zp, rowsum, rq, out, ch0):
    """The module docstring's formula in Python ints and float32 scalars, at a few points."""
    n, m, p = out.shape
    rng = np.random.default_rng(raw.size)
    for _ in range(20):
        i, q, j = int(rng.integers(n)), int(rng.integers(p)), int(rng.integers(raw.shape[1]))
        r = i * p + q
        acc = int(raw[r, j]) + int(off[j]) - (int(w_zp[j]) * int(rowsum[r]) if rowsum.size else 0)
        a32 = (acc + 2**31) % 2**32 - 2**31
        if rq[0]:
            mult, zp, lo, hi = np.float32(rq[1][ch0 + j]), rq[2], rq[3], rq[4]
            v = min(max(np.float32(a32) * mult, np.float32(lo - zp)), np.float32(hi - zp))
            want = min(max(int(np.rint(v)) + zp, lo), hi)
        else:
            want = acc if out.dtype == np.int64 else a32
        yield (i, ch0 + j, q), want


@settings(max_examples=200, deadline=None)
@given(case=finish_case())
def test_rows_to_nchw_equals_twin(case):
    got, want = finish_both(case)
    assert np.array_equal(got, want)
    for idx, v in finish_python(*case[:5], got, case[6]):
        assert int(got[idx]) == v


@settings(max_examples=80, deadline=None)
@given(case=finish_case(), threaded=st.booleans())
def test_rows_to_nhwc_is_rows_to_nchw_channels_last(case, threaded):
    """rows_to_nhwc writes exactly rows_to_nchw's values, channels last, and only channels
    ch0..ch0+Mg-1 (the rest keep their sentinel)."""
    raw, off, w_zp, rowsum, rq, out, ch0 = case
    want, _ = finish_both(case)
    got = np.full(out.transpose(0, 2, 1).shape, 0x5A, out.dtype)
    cr.rows_to_nhwc(raw, off, w_zp, rowsum, rq, got, ch0, threads(2) if threaded else None)
    assert np.array_equal(got, want.transpose(0, 2, 1))
    twin = np.full_like(got, 0x5A)
    cr.rows_to_nhwc_ref(raw, off, w_zp, rowsum, rq, twin, ch0)
    assert np.array_equal(got, twin)


def test_rows_to_nhwc_refuses_bad_out_and_channels():
    raw, off = np.zeros((6, 4), np.int32), np.zeros(4, np.int64)
    rq = (False, np.zeros(8, np.float32), 0, 0, 0)
    with pytest.raises(ValueError, match="out must be"):
        cr.rows_to_nhwc(raw, off, off, np.zeros(0, np.int64), rq, np.empty((2, 8, 3), np.int32).transpose(0, 2, 1), 0)
    with pytest.raises(ValueError, match="channels"):
        cr.rows_to_nhwc(raw, off, off, np.zeros(0, np.int64), rq, np.empty((2, 3, 8), np.int32), 5)
    with pytest.raises(ValueError, match="raw must be"):
        cr.rows_to_nhwc(raw, off, off, np.zeros(0, np.int64), rq, np.empty((2, 4, 8), np.int32), 0)


@settings(max_examples=40, deadline=None)
@given(case=finish_case())
def test_rows_to_nchw_threads_equal_serial(case):
    got, _ = finish_both(case, threads(2))
    serial, _ = finish_both(case)
    assert np.array_equal(got, serial)


@pytest.mark.parametrize("n,p,m", [(8, 9, 336), (8, 576, 48), (2, 2304, 16), (2, 3136, 64), (3, 130, 5), (2, 1, 40)])
@pytest.mark.parametrize("out_dtype", [np.uint8, np.int8, np.int32, np.int64])
def test_rows_to_nchw_network_shapes(n, p, m, out_dtype, two_threads):
    rng = np.random.default_rng(p)
    raw = rng.integers(INT32_MIN, INT32_MAX + 1, (n * p, m)).astype(np.int32)
    raw[0, :] = INT32_MIN
    raw[-1, :] = INT32_MAX
    off, w_zp = rng.integers(-2**33, 2**33, m), rng.integers(-128, 128, m)
    rowsum = rng.integers(-2**20, 2**20, n * p)
    if out_dtype in (np.uint8, np.int8):
        zp = int(np.iinfo(out_dtype).min) + 3
        rq = (True, (rng.uniform(0.5, 1, m) * 2.0**-24).astype(np.float32), zp, zp - 3, zp + 200)
    else:
        rq = RQ_OFF[:1] + (np.zeros(m, np.float32),) + RQ_OFF[2:]
    case = (raw, off, w_zp, rowsum, rq, np.empty((n, m, p), out_dtype), 0)
    got, want = finish_both(case, two_threads)
    assert np.array_equal(got, want)


def test_rows_to_nchw_rejects():
    raw = np.zeros((6, 4), np.int32)
    z4, out = np.zeros(4, np.int64), np.zeros((2, 4, 3), np.uint8)
    none = np.zeros(0, np.int64)
    rq = (True, np.ones(4, np.float32), 0, 0, 255)
    cr.rows_to_nchw(raw, z4, z4, none, rq, out, 0)
    with pytest.raises(ValueError, match="raw must be int32"):
        cr.rows_to_nchw(raw.astype(np.int64), z4, z4, none, rq, out, 0)
    with pytest.raises(ValueError, match="channels"):
        cr.rows_to_nchw(raw, z4, z4, none, rq, out, 1)
    with pytest.raises(ValueError, match="off and w_zp"):
        cr.rows_to_nchw(raw, z4[:3], z4, none, rq, out, 0)
    with pytest.raises(ValueError, match="rowsum"):
        cr.rows_to_nchw(raw, z4, z4, np.zeros(5, np.int64), rq, out, 0)
    with pytest.raises(ValueError, match="lo <= zp <= hi"):
        cr.rows_to_nchw(raw, z4, z4, none, (True, np.ones(4, np.float32), 0, 1, 255), out, 0)
    with pytest.raises(ValueError, match="mult must be"):
        cr.rows_to_nchw(raw, z4, z4, none, (True, np.ones(3, np.float32), 0, 0, 255), out, 0)
    with pytest.raises(ValueError, match="requantization writes"):
        cr.rows_to_nchw(raw, z4, z4, none, rq, out.astype(np.int32), 0)
    with pytest.raises(ValueError, match="a sum is stored"):
        cr.rows_to_nchw(raw, z4, z4, none, (False,) + rq[1:], out, 0)
    with pytest.raises(ValueError, match="out must be"):
        cr.rows_to_nchw(raw, z4, z4, none, rq, np.zeros((2, 4, 3), np.int16), 0)


# ------------------------------------------------------------------------------ helpers
def test_image_chunk_and_plain_1x1():
    from kernels.conv import ConvGeom
    assert cr.image_chunk(10, 10, 5) == 5
    assert cr.image_chunk(cr.COLS_BYTES, 2, 5) == 1
    assert cr.is_plain_1x1(1, 1, ConvGeom(1, 1, 0, 0, 0, 0, 1, 1, 1))
    assert not cr.is_plain_1x1(1, 1, ConvGeom(2, 1, 0, 0, 0, 0, 1, 1, 1))
    assert not cr.is_plain_1x1(1, 1, ConvGeom(1, 1, 0, 0, 1, 0, 1, 1, 1))
    assert cr.runner(10) is None


def test_to_nhwc_into_out():
    """to_nhwc(x, out=o) writes the transpose into o (a view of a caller's array) and returns it;
    a wrong out is refused before anything is written."""
    rng = np.random.default_rng(5)
    for shape in [(2, 37, 5, 3), (1, 16, 16, 1), (3, 1, 4, 4), (2, 5, 1, 1)]:
        x = rng.integers(0, 256, shape).astype(np.uint8)
        big = np.zeros((shape[0], shape[2], shape[3], shape[1]), np.uint8)
        got = cr.to_nhwc(x, out=big)
        assert got is big and np.array_equal(big, x.transpose(0, 2, 3, 1))
    x = np.zeros((1, 3, 4, 5), np.uint8)
    for bad in (np.zeros((1, 4, 5, 3), np.int8), np.zeros((1, 5, 4, 3), np.uint8),
                np.zeros((1, 4, 5, 6), np.uint8)[..., ::2]):
        with pytest.raises(ValueError, match="out must be"):
            cr.to_nhwc(x, out=bad)


# ------------------------------------------------------------------------------ pack_conv_tiles
@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.uint8, np.int8]),
       engine=st.sampled_from([(4, 4, np.uint8, 0), (6, 2, np.int16, 0), (6, 2, np.int16, 128)]),
       groups=st.sampled_from([1, 2]), k=st.sampled_from([(1, 1), (3, 3), (7, 7), (2, 3), (1, 9), (1, 20)]),
       stride=st.sampled_from([1, 2, 4]), dil=st.sampled_from([1, 2]), ns=st.sampled_from([1, 3, 5, 128]))
def test_pack_conv_tiles_equals_packing_im2col_rows(seed, dtype, engine, groups, k, stride, dil, ns):
    """The implicit im2col panel equals kernels.simd.packing.pack_block applied to im2col_rows' rows and the
    NumPy form built from im2col_rows_ref, for every tile and K block: pads, strides, dilations, group channel offsets, partial tiles (rows
    >= M), tile ranges that start inside an image or an output row (the packer steps its pixel from
    the first row), Conv1d-style long kernel rows and K blocks that start inside a tap or a kernel row."""
    from kernels.simd.drivers import gemm_geo
    from kernels.simd.packing import pack_block
    mr, g, apk_dtype, add = engine
    rng = np.random.default_rng(seed)
    kh, kw = k
    n, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 12)), int(rng.integers(1, 12 + kw * dil))
    cg = int(rng.integers(1, 9))
    c = cg * groups
    pt, pl = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    oh = (h + pt + int(rng.integers(0, kh)) - (kh - 1) * dil - 1) // stride + 1
    ow = (w + pl + int(rng.integers(0, kw)) - (kw - 1) * dil - 1) // stride + 1
    if oh < 1 or ow < 1:
        return
    info = np.iinfo(dtype)
    xh = rng.integers(info.min, info.max + 1, (n, h, w, c)).astype(dtype)
    pad = int(rng.integers(info.min, info.max + 1))
    cgeo = np.array([stride, stride, pt, pl, dil, dil, oh, ow], np.int64)
    c0 = int(rng.integers(0, groups)) * cg
    rows, kk = n * oh * ow, kh * kw * cg
    cols = np.empty((rows, kk), dtype)
    cr.im2col_rows(xh, c0, cg, kh, kw, cgeo, pad, cols)
    ref = np.empty((rows, kk), dtype)
    cr.im2col_rows_ref(xh, c0, cg, kh, kw, cgeo, pad, ref)
    geo = gemm_geo(rows, kk, 16, "avx2-ubsw")
    cgeo_full = cr.conv_geo(geo, xh.shape, c0, cg, kh, kw, cgeo, pad)
    steps = -(-kk // g)
    n_tiles = -(-rows // mr)
    # the NumPy form: rows and K zero-padded to whole tiles and steps, + add, wrapped to apk's type
    padded = np.zeros((n_tiles * mr, steps * g), np.int64)
    padded[:rows, :kk] = ref.astype(np.int64) + add
    padded = (padded + 2**15) % 2**16 - 2**15 if apk_dtype == np.int16 else padded % 256
    for s0 in range(0, steps, ns):
        nss = min(ns, steps - s0)
        mid = int(rng.integers(0, n_tiles))
        for t0, t1 in ((0, n_tiles), (n_tiles - 1, n_tiles), (mid, int(rng.integers(mid, n_tiles)) + 1)):
            want = np.full((t1 - t0) * mr * nss * g, 77, apk_dtype)
            got = want.copy()
            pack_block(cols.reshape(-1), geo, np.int64(add), g, mr, t0, t1, s0, nss, want)
            cr.pack_conv_tiles(xh.reshape(-1), cgeo_full, np.int64(add), g, mr, t0, t1, s0, nss, got)
            assert np.array_equal(got, want), (s0, t0, t1)
            block = padded[t0 * mr:t1 * mr, s0 * g:(s0 + nss) * g]
            assert np.array_equal(got.astype(np.int64), block.reshape(-1)), (s0, t0, t1)


def test_conv_geo_refuses_a_gemm_that_does_not_fit():
    from kernels.simd.drivers import gemm_geo
    cgeo = np.array([1, 1, 0, 0, 1, 1, 4, 4], np.int64)
    with pytest.raises(ValueError, match="does not fit"):
        cr.conv_geo(gemm_geo(15, 9, 8, "avx2-ubsw"), (1, 6, 6, 1), 0, 1, 3, 3, cgeo, 0)
    with pytest.raises(ValueError, match="does not fit"):
        cr.conv_geo(gemm_geo(16, 9, 8, "avx2-ubsw"), (1, 6, 6, 1), 1, 1, 3, 3, cgeo, 0)


@settings(max_examples=60, deadline=None)
@given(case=im2col_case(), data=st.data())
def test_bound_passes_read_their_arrays_at_each_call(case, data):
    """bind_to_nhwc / bind_im2col_rows bind arrays, not values (intsim.frozen replays them)."""
    xh, c0, cg, kh, kw, cgeo, pad = case
    x = np.ascontiguousarray(xh.transpose(0, 3, 1, 2))
    xh2 = np.empty_like(xh)
    to_nhwc = cr.bind_to_nhwc(x, xh2)
    cols = np.empty((xh.shape[0] * int(cgeo[6]) * int(cgeo[7]), kh * kw * cg), xh.dtype)
    im2col = cr.bind_im2col_rows(xh2, c0, cg, kh, kw, cgeo, pad, cols)
    for _ in range(2):
        x[...] = data.draw(int_array(x.shape, x.dtype))
        to_nhwc()
        assert np.array_equal(xh2, cr.to_nhwc_ref(x))
        im2col()
        got, want = im2col_both((xh2, c0, cg, kh, kw, cgeo, pad))
        assert np.array_equal(cols, want)
    with pytest.raises(ValueError):
        cr.bind_to_nhwc(x, np.empty(xh.shape[:3] + (xh.shape[3] + 1,), xh.dtype))
    with pytest.raises(ValueError):
        cr.bind_im2col_rows(xh2, c0, cg, kh, kw, cgeo, pad, cols[:-1])
