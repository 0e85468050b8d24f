"""Pooling kernels with onnxruntime 1.32 x86-64 arithmetic, bit for bit.

Layout at the interface: x (N, C, *spatial) with 1 to 3 spatial axes (NCHW); channels-last
callers transpose first (every op here is per channel, so the result is the same).

global_avgpool (QLinearGlobalAveragePool; MLAS SSE2):
    acc   = sum_hw x            (int32, exact: |acc| <= 255 * HW < 2**32 for HW < 2**24)
    scale = f32(sx / f32(sy * f32(HW)))        ORT rejects HW >= 2**24, scale < 2**-32, scale >= 256
    y     = cvt(min(max(f32(f32(acc - zx*HW) * scale), f32(qmin - zy)), f32(qmax - zy))) + zy

avgpool (QLinearAveragePool, qlinear_pool.cc), per output position:
    the window is clipped to the image: start = o*stride - pad_begin, end = min(start + k, size),
    start = max(start, 0)  (pad_end and dilation play no part in the window)
    sum = 0.0f; for taps in row-major order: sum = f32(sum + f32(f32(x - zx) * sx))
    count = prod(kernel) if count_include_pad else prod(end - start)
    avg = f32(sum / f32(count))
    y = clamp(int(rint_RNE(f32(f32(avg / sy) + f32(zy)))), qmin, qmax)
  When the kernel equals the spatial size and every pad is 0, ORT uses global_avgpool instead.

maxpool (MaxPool on int8/uint8, exact): max over the taps start + i*dilation that fall inside
the image; the output size is ONNX's formula (see `pool_output_shape`).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from .conv_rows import bind_to_nhwc
from .eltwise import cvt_np
from .jit import kernel
from .lanes_max import tap_max16, tap_max32
from .threads import parallel_items

F32 = np.float32
SERIAL_BYTES = 1 << 18      # MaxPool inputs below this run on one thread


# ---------------------------------------------------------------- geometry

def pool_output_shape(spatial, kernel, strides, pads, dilations, ceil_mode) -> tuple:
    """onnxruntime's output size per axis (PoolAttributes::ComputeOutputSize):
    num = size + pad_b + pad_e - (k - 1) * d - 1
    out = trunc_toward_zero(num / stride) + 1              (C++ integer division)
    ceil_mode: out = ceil(f32(num) / stride) + 1, minus 1 when (out - 1) * stride >= size + pad_b.
    A negative size raises ValueError (ORT refuses it); 0 is allowed (empty output)."""
    n = len(spatial)
    if not (len(kernel) == len(strides) == len(dilations) == n and len(pads) == 2 * n):
        raise ValueError(f"pool: kernel {list(kernel)}, strides {list(strides)}, dilations {list(dilations)} and "
                         f"pads {list(pads)} do not fit {n} spatial axes")
    if min(kernel, default=1) < 1 or min(strides, default=1) < 1 or min(dilations, default=1) < 1 \
            or min(pads, default=0) < 0:
        raise ValueError(f"pool: kernel {list(kernel)}, strides {list(strides)} and dilations "
                         f"{list(dilations)} must be >= 1 and pads {list(pads)} >= 0")
    out = []
    for i in range(n):
        num = spatial[i] + pads[i] + pads[i + n] - (kernel[i] - 1) * dilations[i] - 1
        q = abs(num) // strides[i]
        o = (q if num >= 0 else -q) + 1
        if ceil_mode:
            o = int(np.ceil(np.float32(num) / np.float32(strides[i]))) + 1
            if (o - 1) * strides[i] >= spatial[i] + pads[i]:
                o -= 1
        if o < 0:
            raise ValueError(f"pool: output size {o} < 0 on axis {i} (kernel {list(kernel)}, input {list(spatial)})")
        out.append(o)
    return tuple(out)


def _norm3(values, fill):
    v = list(values)
    return np.array(v + [fill] * (3 - len(v)), np.int64)


def _check_pool(name, x, kernel, strides, pads, dilations, out, dtypes):
    if not isinstance(x, np.ndarray) or x.ndim not in (3, 4, 5):
        raise ValueError(f"{name}: input must be an array (N, C, *spatial) with 1..3 spatial axes")
    if x.dtype not in dtypes or out.dtype != x.dtype:
        raise ValueError(f"{name}: input/out dtype must be one of {dtypes}, got {x.dtype}/{out.dtype}")
    ns = x.ndim - 2
    if len(kernel) != ns or len(strides) != ns or len(dilations) != ns or len(pads) != 2 * ns:
        raise ValueError(f"{name}: kernel {kernel}, strides {strides}, pads {pads}, dilations {dilations} "
                         f"do not fit {ns} spatial axes")
    if min(kernel) < 1 or min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
        raise ValueError(f"{name}: kernel/strides/dilations must be >= 1 and pads >= 0")
    if any(pads[i] >= kernel[i] or pads[i + ns] >= kernel[i] for i in range(ns)):
        raise ValueError(f"{name}: pads {list(pads)} must be smaller than the kernel {list(kernel)} (as onnxruntime requires)")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name}: 'out' must be C-contiguous")


def _spatial3(x):
    s = list(x.shape[2:])
    return x.reshape(x.shape[0] * x.shape[1], *(s + [1] * (3 - len(s))))


# ---------------------------------------------------------------- MaxPool

@kernel
def _maxpool_impl(x, k, st, pb, dl, init, out):
    nc, ih, iw, idp = x.shape
    _, oh, ow, od = out.shape
    for c in range(nc):
        for a in range(oh):
            for b in range(ow):
                for d in range(od):
                    m = np.int64(init)
                    for i in range(k[0]):
                        h = a * st[0] - pb[0] + i * dl[0]
                        if h < 0 or h >= ih:
                            continue
                        for j in range(k[1]):
                            w = b * st[1] - pb[1] + j * dl[1]
                            if w < 0 or w >= iw:
                                continue
                            for t in range(k[2]):
                                z = d * st[2] - pb[2] + t * dl[2]
                                if z >= 0 and z < idp and np.int64(x[c, h, w, z]) > m:
                                    m = np.int64(x[c, h, w, z])
                    out[c, a, b, d] = m


@kernel
def _hmax_interior(xr, kw, sw, pw, o0, o1, dst):
    """dst[o] = max_{0 <= j < kw} xr[o*sw - pw + j] for o0 <= o < o1, all taps inside xr.
    The common (kw, sw) get one loop with constant taps (vector loads, deinterleaved for
    sw = 2, 3, 4); others loop over taps. Loops index views from 0 (no negative-index checks)."""
    n = o1 - o0
    if n <= 0:
        return
    s = xr[o0 * sw - pw:]
    d = dst[o0:o1]
    if sw == 2 and kw == 3:
        for o in range(n):
            a, b, c = s[2 * o], s[2 * o + 1], s[2 * o + 2]
            m = a if a > b else b
            d[o] = m if m > c else c
    elif sw == 2 and kw == 2:
        for o in range(n):
            a, b = s[2 * o], s[2 * o + 1]
            d[o] = a if a > b else b
    elif sw == 4 and kw == 4:     # MaxPool1d(4) of audio nets: 28 times the tap loop's speed here
        for o in range(n):
            a, b, c, e = s[4 * o], s[4 * o + 1], s[4 * o + 2], s[4 * o + 3]
            m = a if a > b else b
            m2 = c if c > e else e
            d[o] = m if m > m2 else m2
    elif sw == 3 and kw == 3:
        for o in range(n):
            a, b, c = s[3 * o], s[3 * o + 1], s[3 * o + 2]
            m = a if a > b else b
            d[o] = m if m > c else c
    elif sw == 1 and kw == 3:
        for o in range(n):
            a, b, c = s[o], s[o + 1], s[o + 2]
            m = a if a > b else b
            d[o] = m if m > c else c
    elif sw == 1 and kw == 2:
        for o in range(n):
            a, b = s[o], s[o + 1]
            d[o] = a if a > b else b
    else:
        for o in range(n):
            d[o] = s[o * sw]
        for j in range(1, kw):
            t = s[j:]
            for o in range(n):
                v = t[o * sw]
                d[o] = v if v > d[o] else d[o]


@kernel
def _hmax_border(xr, kw, sw, pw, o, init):
    """max over the taps o*sw - pw + j (0 <= j < kw) that fall inside xr (init if none)."""
    m = init
    for j in range(kw):
        w = o * sw - pw + j
        if w >= 0 and w < xr.size and xr[w] > m:
            m = xr[w]
    return m


@kernel
def _hmax_row(xr, kw, sw, pw, o_lo, o_hi, init, dst):
    """Horizontal windows of one input row: interior columns [o_lo, o_hi) by vector loops,
    the few border columns (windows reaching into the padding) one by one."""
    for o in range(o_lo):
        dst[o] = _hmax_border(xr, kw, sw, pw, o, init)
    _hmax_interior(xr, kw, sw, pw, o_lo, o_hi, dst)
    for o in range(o_hi, dst.size):
        dst[o] = _hmax_border(xr, kw, sw, pw, o, init)


@kernel
def _vmax_rows(hm, h0, h1, dst):
    """dst[:] = max over rows h0 <= h < h1 (h1 > h0) of hm: one vector loop for up to three
    rows, then one per further row."""
    r0 = hm[h0]
    n = dst.size
    if h1 - h0 == 1:
        for j in range(n):
            dst[j] = r0[j]
        return
    r1 = hm[h0 + 1]
    if h1 - h0 == 2:
        for j in range(n):
            a, b = r0[j], r1[j]
            dst[j] = a if a > b else b
        return
    r2 = hm[h0 + 2]
    for j in range(n):
        a, b, c = r0[j], r1[j], r2[j]
        m = a if a > b else b
        dst[j] = m if m > c else c
    for h in range(h0 + 3, h1):
        r = hm[h]
        for j in range(n):
            v = r[j]
            dst[j] = v if v > dst[j] else dst[j]


@kernel
def _vmax_flat(xf, iw, kh, dst):
    """dst[i] = max_{0 <= t < kh} xf[i + t*iw]: a stride-1 vertical window over a run of
    whole rows as one long loop (constant taps for kh = 2, 3)."""
    n = dst.size
    if kh == 3:
        r1 = xf[iw:]
        r2 = xf[2 * iw:]
        for i in range(n):
            a, b, c = xf[i], r1[i], r2[i]
            m = a if a > b else b
            dst[i] = m if m > c else c
        return
    for i in range(n):
        dst[i] = xf[i]
    for t in range(1, kh):
        r = xf[t * iw:]
        for i in range(n):
            v = r[i]
            dst[i] = v if v > dst[i] else dst[i]


@kernel
def _interior_cols(iw, kw, sw, pw, ow):
    """[o_lo, o_hi): the output columns whose whole window lies inside a row of width iw."""
    o_lo = min((pw + sw - 1) // sw, ow)
    last = iw - kw + pw
    o_hi = min(last // sw + 1, ow) if last >= 0 else 0
    return o_lo, max(o_hi, o_lo)


@kernel
def _hmax_plane(v, kw, sw, pw, o_lo, o_hi, init, dst):
    """Horizontal windows of every row of v (R, W) into dst (R, OW). When W == sw*OW the rows
    are taken as one flat row (one long vector loop whose windows only go wrong where they
    cross a row end, i.e. at border columns), then the border columns are redone row by row."""
    rows, iw = v.shape
    ow = dst.shape[1]
    if iw != sw * ow:
        for r in range(rows):
            _hmax_row(v[r], kw, sw, pw, o_lo, o_hi, init, dst[r])
        return
    vf = v.reshape(-1)
    df = dst.reshape(-1)
    i0, i1 = _interior_cols(vf.size, kw, sw, pw, df.size)
    _hmax_interior(vf, kw, sw, pw, i0, i1, df)
    for r in range(rows):
        vr = v[r]
        dr = dst[r]
        for o in range(o_lo):
            dr[o] = _hmax_border(vr, kw, sw, pw, o, init)
        for o in range(o_hi, ow):
            dr[o] = _hmax_border(vr, kw, sw, pw, o, init)


@kernel
def _maxpool_rows_impl(x, k, st, pb, init, c0, c1, out):
    """MaxPool with dilation 1 on planes [c0, c1) of x (planes, H, W) into out (planes, OH, OW).
    Per plane: for each output row the element-wise max of the input rows of its vertical
    window that lie inside the image (into `vm` (OH, W); one flat loop over the rows whose
    window lies inside the image when the vertical stride is 1), then the horizontal windows of those
    rows (see `_hmax_plane`). Padding is never read: windows are clipped to the image, and
    every window holds at least one image tap (pads < kernel and ONNX's output size), so
    `init` (the type's minimum) never reaches the output. Exact: only comparisons."""
    _, ih, iw = x.shape
    _, oh, ow = out.shape
    kh, kw, sh, sw, ph, pw = k[0], k[1], st[0], st[1], pb[0], pb[1]
    o_lo, o_hi = _interior_cols(iw, kw, sw, pw, ow)
    a_lo, a_hi = _interior_cols(ih, kh, np.int64(1), ph, oh) if sh == 1 else (0, 0)
    direct = kh == 1 and sh == 1 and ph == 0 and oh == ih
    vm = np.empty((oh, iw), x.dtype)
    for c in range(c0, c1):
        if direct and ih == 1 and o_lo == 0 and o_hi == ow:    # 1-D, every window inside the row
            _hmax_interior(x[c, 0], kw, sw, pw, np.int64(0), ow, out[c, 0])   # (one call a plane: 1/3 of the time)
            continue
        if direct:
            _hmax_plane(x[c], kw, sw, pw, o_lo, o_hi, init, out[c])
            continue
        xc = x[c]
        for a in range(oh):
            if a == a_lo and a_hi > a_lo:
                _vmax_flat(xc.reshape(-1)[(a_lo - ph) * iw:], iw, kh, vm[a_lo:a_hi].reshape(-1))
            if a >= a_lo and a < a_hi:
                continue
            h0 = a * sh - ph
            _vmax_rows(xc, max(h0, 0), min(h0 + kh, ih), vm[a])
        _hmax_plane(vm, kw, sw, pw, o_lo, o_hi, init, out[c])


def _front2(values, fill):
    v = list(values)
    return np.array([fill] * (2 - len(v)) + v, np.int64)


def _maxpool_rows(x, kernel, strides, pads, out) -> None:
    """1-D/2-D MaxPool with dilation 1 through `_maxpool_rows_impl`; planes (N*C) are split in
    a few large chunks over the fast kernels' threads above 256 KiB of input."""
    ns = x.ndim - 2
    x3 = x.reshape((-1,) + (1,) * (2 - ns) + x.shape[2:])
    o3 = out.reshape((-1,) + (1,) * (2 - ns) + out.shape[2:])
    k, st, pb = _front2(kernel, 1), _front2(strides, 1), _front2(pads[:ns], 0)
    init = np.iinfo(x.dtype).min
    _split_items(lambda c0, c1: _maxpool_rows_impl(x3, k, st, pb, init, c0, c1, o3), x3.shape[0], x.nbytes)


def _split_items(run, items, nbytes) -> None:
    """run(i0, i1) over range(items): on the calling thread below SERIAL_BYTES of input, else in
    one large chunk per fast-kernel thread."""
    if nbytes < SERIAL_BYTES:
        run(0, items)
        return
    parallel_items(run, items, per_thread=1)


MAXPOOL_DTYPES = (np.uint8, np.int8, np.uint16, np.int16)


def maxpool(x, kernel, strides, pads, dilations, ceil_mode, out) -> None:
    """MaxPool on 8- and 16-bit integers (exact). pads = [begin_0.., end_0..] (ONNX order). A window with no
    tap inside the image (possible with dilations) gives the type's minimum, as onnxruntime's
    (its max starts from numeric_limits<T>::lowest())."""
    _check_pool("maxpool", x, kernel, strides, pads, dilations, out, MAXPOOL_DTYPES)
    want = x.shape[:2] + pool_output_shape(x.shape[2:], kernel, strides, pads, dilations, ceil_mode)
    if out.shape != want:
        raise ValueError(f"maxpool: out shape {out.shape}, expected {want}")
    ns = x.ndim - 2
    if ns <= 2 and all(int(d) == 1 for d in dilations) and out.size:
        _maxpool_rows(np.ascontiguousarray(x), kernel, strides, pads, out)
        return
    _maxpool_impl(_spatial3(np.ascontiguousarray(x)), _norm3(kernel, 1), _norm3(strides, 1),
                  _norm3(pads[:ns], 0), _norm3(dilations, 1), np.iinfo(x.dtype).min, _spatial3(out))


def bind_maxpool(x, kernel, strides, pads, dilations, ceil_mode, out):
    """call() doing maxpool(x, ...) for these very arrays (NCHW or N, C, W; x C-contiguous),
    checked now: the rows kernel itself for 1-D/2-D pools with dilation 1 on one thread, else
    maxpool's own path."""
    if not isinstance(x, np.ndarray) or not x.flags.c_contiguous:
        raise ValueError("maxpool: x must be a C-contiguous array to be bound")
    maxpool(x, kernel, strides, pads, dilations, ceil_mode, out)      # its checks, once
    ns = x.ndim - 2
    if not (ns <= 2 and all(int(d) == 1 for d in dilations) and out.size and x.nbytes < SERIAL_BYTES):
        return partial(maxpool, x, kernel, strides, pads, dilations, ceil_mode, out)
    if ns == 2 and x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1:
        return _bind_through_nhwc(x, kernel, strides, pads, dilations, ceil_mode, out)
    x3 = x.reshape((-1,) + (1,) * (2 - ns) + x.shape[2:])
    o3 = out.reshape((-1,) + (1,) * (2 - ns) + out.shape[2:])
    k, st, pb = _front2(kernel, 1), _front2(strides, 1), _front2(pads[:ns], 0)
    return partial(_maxpool_rows_impl, x3, k, st, pb, np.iinfo(x.dtype).min, 0, x3.shape[0], o3)


def _bind_through_nhwc(x, kernel, strides, pads, dilations, ceil_mode, out):
    """call() for a 2-D NCHW pool on one thread run channels-last inside: x transposed into a
    buffer of its own, the channels-last kernel, its rows transposed into out's planes (the
    bytes maxpool writes; the channels-last kernel's vector loops span W*C and C lanes where the
    planes' rows span W: 3x3 stride-2 pools of 128x15x15, 256x7x7, 64x31x31 took 70, 67, 317 us
    in the rows kernel and 3.8, 2.7, 10.2 us so, one thread of the loaded 2-core host)."""
    n, c, h, w = x.shape
    oh, ow = out.shape[2:]
    xh, yh = np.empty((n, h, w, c), x.dtype), np.empty((n, oh, ow, c), x.dtype)
    to_xh = bind_to_nhwc(x, xh)
    pool = bind_maxpool_nhwc(xh, kernel, strides, pads, dilations, ceil_mode, yh)
    # (N, OH*OW, C, 1) taken as NCHW is (N, C, 1, OH*OW) channels-last: the output planes
    to_out = bind_to_nhwc(yh.reshape(n, oh * ow, c, 1), out.reshape(n, c, 1, oh * ow))

    def call():
        to_xh()
        pool()
        to_out()
    return call


@kernel(inline="always")
def _max_into(d, v):
    """d = max(d, v) element-wise (1-D arrays of one length; this form vectorises, the max
    builtin over indexed elements did not: 0.64 vs 0.03 ns per byte here)."""
    for i in range(d.shape[0]):
        a, c = d[i], v[i]
        d[i] = a if a > c else c


@kernel
def _maxpool_nhwc_impl(x, geo, init, r0, r1, out):
    """Output rows r0..r1-1 (row = n*OH + oy) of a 2-D MaxPool on channels-last x (N, H, W, C)
    into out (N, OH, OW, C); geo = [kh, kw, sh, sw, ph, pw, dh, dw]. Per output row: the
    element-wise max of the window's input rows inside the image (W*C lanes; the input row
    itself when kh = 1 and ph = 0, as for 1-D pools), then per output column the max over its
    window's columns: for windows inside the row by `lanes_max` (32- then 16-byte blocks of
    the C lanes, the rest lane by lane), for border windows over the columns inside the image.
    Taps outside the image are skipped; `init` (the type's minimum) starts each border max, so
    a window with no tap inside the image gives it (as onnxruntime)."""
    _, ih, iw, c_ = x.shape
    _, oh, ow, _ = out.shape
    kh, kw, sh, sw, ph, pw, dh, dw = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7]
    row = iw * c_
    vm = np.empty(row, x.dtype)
    xf, of = x.reshape(-1), out.reshape(-1)
    o_lo, o_hi = _interior_cols(iw, (kw - 1) * dw + 1, sw, pw, ow)
    lanes = 32 // x.itemsize
    nb32 = c_ // lanes
    at16 = nb32 * lanes
    c_vec = at16 + lanes // 2 if c_ - at16 >= lanes // 2 else at16
    step = dw * c_
    direct = kh == 1 and ph == 0
    for r in range(r0, r1):
        n, oy = r // oh, r % oh
        src, base = vm, 0
        if direct:
            src, base = xf, (n * ih + oy * sh) * row
        else:
            vm[:] = init
            for ky in range(kh):
                iy = oy * sh - ph + ky * dh
                if iy >= 0 and iy < ih:
                    at = (n * ih + iy) * row
                    _max_into(vm, xf[at:at + row])
        for ox in range(ow):
            d0 = (r * ow + ox) * c_
            if ox < o_lo or ox >= o_hi:
                d = of[d0:d0 + c_]
                d[:] = init
                for kx in range(kw):
                    ix = ox * sw - pw + kx * dw
                    if ix >= 0 and ix < iw:
                        _max_into(d, src[base + ix * c_:base + (ix + 1) * c_])
                continue
            s0 = base + (ox * sw - pw) * c_
            for b in range(nb32):
                tap_max32(src, s0 + b * lanes, step, kw, of, d0 + b * lanes)
            if c_vec > at16:
                tap_max16(src, s0 + at16, step, kw, of, d0 + at16)
            for i in range(c_vec, c_):
                m = src[s0 + i]
                for kx in range(1, kw):
                    v = src[s0 + kx * step + i]
                    m = v if v > m else m
                of[d0 + i] = m


def maxpool_nhwc(xh, kernel, strides, pads, dilations, ceil_mode, out) -> None:
    """maxpool on channels-last data: xh (N, H, W, C) and out (N, OH, OW, C) C-contiguous
    8- or 16-bit integers, the same values as maxpool on the NCHW transposes (2-D pools only; attributes
    in ONNX order as maxpool). Rows of the output are split over the fast kernels' threads
    above 256 KiB of input."""
    bind_maxpool_nhwc(xh, kernel, strides, pads, dilations, ceil_mode, out)()


def bind_maxpool_nhwc(xh, kernel, strides, pads, dilations, ceil_mode, out):
    """call() doing maxpool_nhwc(xh, ...) for these very arrays, checked now (the kernel itself
    when the pool runs on one thread)."""
    if not (isinstance(xh, np.ndarray) and xh.ndim == 4 and xh.flags.c_contiguous
            and isinstance(out, np.ndarray) and out.ndim == 4):
        raise ValueError("maxpool_nhwc: x and out must be 4-D (N, H, W, C) arrays, x C-contiguous")
    _check_pool("maxpool_nhwc", xh.transpose(0, 3, 1, 2), kernel, strides, pads, dilations, out,
                MAXPOOL_DTYPES)
    want = pool_output_shape(xh.shape[1:3], kernel, strides, pads, dilations, ceil_mode)
    if out.shape != (xh.shape[0],) + want + (xh.shape[3],):
        raise ValueError(f"maxpool_nhwc: out shape {out.shape}, expected {(xh.shape[0],) + want + (xh.shape[3],)}")
    if not out.size:
        return _nothing
    geo = np.array([kernel[0], kernel[1], strides[0], strides[1], pads[0], pads[1], dilations[0], dilations[1]],
                   np.int64)
    init = np.iinfo(xh.dtype).min
    rows = out.shape[0] * out.shape[1]
    if xh.nbytes < SERIAL_BYTES:
        return partial(_maxpool_nhwc_impl, xh, geo, init, 0, rows, out)
    return partial(_split_items, lambda r0, r1: _maxpool_nhwc_impl(xh, geo, init, r0, r1, out), rows, xh.nbytes)


def _nothing() -> None:
    pass


def maxpool_nhwc_ref(xh, kernel, strides, pads, dilations, ceil_mode, out) -> None:
    """NumPy twin of maxpool_nhwc: maxpool_ref on the NCHW transposes."""
    tmp = np.empty(out.transpose(0, 3, 1, 2).shape, out.dtype)
    maxpool_ref(xh.transpose(0, 3, 1, 2), kernel, strides, pads, dilations, ceil_mode, tmp)
    out[...] = tmp.transpose(0, 2, 3, 1)


def maxpool_ref(x, kernel, strides, pads, dilations, ceil_mode, out) -> None:
    """NumPy twin of maxpool: max over strided views of a copy padded with the type's minimum
    (the start of every max)."""
    ns = x.ndim - 2
    osz = pool_output_shape(x.shape[2:], kernel, strides, pads, dilations, ceil_mode)
    if 0 in osz:
        return
    width = [(0, 0), (0, 0)]
    for i in range(ns):
        need = (osz[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        width.append((pads[i], max(0, need - x.shape[2 + i] - pads[i])))
    low = int(np.iinfo(x.dtype).min)          # taps outside the image never beat it (ORT's start)
    xp = np.pad(x.astype(np.int64), width, constant_values=low)
    best = np.full(x.shape[:2] + osz, low, np.int64)
    for tap in np.ndindex(*kernel):
        sl = (slice(None), slice(None)) + tuple(
            slice(tap[i] * dilations[i], tap[i] * dilations[i] + (osz[i] - 1) * strides[i] + 1, strides[i])
            for i in range(ns))
        best = np.maximum(best, xp[sl])
    out[...] = best


# ---------------------------------------------------------------- QLinearGlobalAveragePool

def global_avgpool_scale(x_scale, y_scale, image_size) -> np.float32:
    """f32(sx / f32(sy * f32(HW))), with ORT's range checks (ValueError where ORT throws)."""
    if image_size < 1 or image_size >= 1 << 24:
        raise ValueError(f"global_avgpool: image size {image_size} outside [1, 2**24)")
    s = F32(F32(x_scale) / F32(F32(y_scale) * F32(image_size)))
    if not (s >= F32(2.0 ** -32) and s < F32(256.0)):
        raise ValueError(f"global_avgpool: scale ratio {float(s)!r} outside [2**-32, 256) (onnxruntime refuses it)")
    return s


@kernel
def _global_avgpool_impl(x, x_zp, scale, y_zp, qmin, qmax, out):
    nc, hw = x.shape
    fmin = np.float32(qmin - y_zp)
    fmax = np.float32(qmax - y_zp)
    bias = -x_zp * hw
    for c in range(nc):
        acc = np.int64(0)
        for i in range(hw):
            acc += np.int64(x[c, i])
        v = np.float32(np.float32(acc + bias) * scale)
        v = v if v > fmin else fmin
        v = v if v < fmax else fmax
        out[c] = np.int64(np.rint(v)) + y_zp


def _check_gap(name, x, out, x_zp, y_zp):
    if not isinstance(x, np.ndarray) or x.ndim < 3 or x.dtype not in (np.uint8, np.int8) or out.dtype != x.dtype:
        raise ValueError(f"{name}: input must be uint8/int8 (N, C, *spatial) and out of the same dtype")
    if out.shape != x.shape[:2] + (1,) * (x.ndim - 2) or not out.flags.c_contiguous:
        raise ValueError(f"{name}: out must be C-contiguous of shape {x.shape[:2] + (1,) * (x.ndim - 2)}")
    info = np.iinfo(x.dtype)
    if not (info.min <= x_zp <= info.max and info.min <= y_zp <= info.max):
        raise ValueError(f"{name}: zero points {x_zp}, {y_zp} outside the {x.dtype} range")


class GapPlan(NamedTuple):
    """Validated QLinearGlobalAveragePool constants for one image size (see `global_avgpool_plan`)."""
    scale: np.float32
    x_zp: int
    y_zp: int
    image_size: int
    dtype: np.dtype


def global_avgpool_plan(x_scale, x_zp, y_scale, y_zp, image_size, dtype) -> GapPlan:
    """Check zero points against `dtype` (uint8/int8) and derive ORT's float32 scale for
    images of `image_size` (= H*W...) elements, once."""
    dtype = np.dtype(dtype)
    if dtype not in (np.uint8, np.int8):
        raise ValueError(f"global_avgpool: dtype must be uint8 or int8, got {dtype}")
    info = np.iinfo(dtype)
    if not (info.min <= x_zp <= info.max and info.min <= y_zp <= info.max):
        raise ValueError(f"global_avgpool: zero points {x_zp}, {y_zp} outside the {dtype} range")
    scale = global_avgpool_scale(x_scale, y_scale, int(image_size))
    return GapPlan(scale, int(x_zp), int(y_zp), int(image_size), dtype)


def global_avgpool_planned(x, plan: GapPlan, out) -> None:
    """QLinearGlobalAveragePool with a `global_avgpool_plan`: x (N, C, *spatial) C-contiguous
    of plan.dtype with prod(spatial) == plan.image_size; out (N, C, 1, ...) C-contiguous."""
    if not isinstance(x, np.ndarray) or x.ndim < 3 or x.dtype != plan.dtype or out.dtype != plan.dtype:
        raise ValueError(f"global_avgpool: input must be {plan.dtype} (N, C, *spatial) and out of the same dtype")
    if out.shape != x.shape[:2] + (1,) * (x.ndim - 2) or not out.flags.c_contiguous or not x.flags.c_contiguous:
        raise ValueError(f"global_avgpool: x and out must be C-contiguous, out of shape {x.shape[:2] + (1,) * (x.ndim - 2)}")
    hw = plan.image_size
    if x.size != x.shape[0] * x.shape[1] * hw:
        raise ValueError(f"global_avgpool: spatial size of {x.shape} is not the planned {hw}")
    info = np.iinfo(plan.dtype)
    _global_avgpool_impl(x.reshape(-1, hw), np.int64(plan.x_zp), plan.scale, np.int64(plan.y_zp),
                         np.int64(info.min), np.int64(info.max), out.reshape(-1))


def bind_global_avgpool_planned(x, plan: GapPlan, out):
    """call() doing global_avgpool_planned(x, plan, out) for these very arrays (views of
    them: a call reads x as it is then), checked now, by running it once."""
    global_avgpool_planned(x, plan, out)
    info = np.iinfo(plan.dtype)
    return partial(_global_avgpool_impl, x.reshape(-1, plan.image_size), np.int64(plan.x_zp), plan.scale,
                   np.int64(plan.y_zp), np.int64(info.min), np.int64(info.max), out.reshape(-1))


_GAP_BLOCK = 1 << 16    # pixels summed in int32 (|sum| <= 2**16 * 255 < 2**31), then into int64


@kernel
def _global_avgpool_nhwc_impl(x, x_zp, scale, y_zp, qmin, qmax, out):
    """_global_avgpool_impl of channels-last x (N, P, C) into out (N, C): the same int64 sums
    (their order does not matter), then the same float steps."""
    n_img, hw, n_ch = x.shape
    fmin = np.float32(qmin - y_zp)
    fmax = np.float32(qmax - y_zp)
    bias = -x_zp * hw
    acc = np.empty(n_ch, np.int64)
    part = np.empty(n_ch, np.int32)
    for n in range(n_img):
        acc[:] = 0
        for i0 in range(0, hw, _GAP_BLOCK):     # int32 partial sums of _GAP_BLOCK pixels: exact
            part[:] = 0
            for i in range(i0, min(i0 + _GAP_BLOCK, hw)):
                for c in range(n_ch):
                    part[c] += np.int32(x[n, i, c])
            for c in range(n_ch):
                acc[c] += part[c]
        for c in range(n_ch):
            v = np.float32(np.float32(acc[c] + bias) * scale)
            v = v if v > fmin else fmin
            v = v if v < fmax else fmax
            out[n, c] = np.int64(np.rint(v)) + y_zp


def bind_global_avgpool_nhwc(xh, plan: GapPlan, out):
    """call() doing QLinearGlobalAveragePool (global_avgpool_planned's arithmetic) of the
    channels-last images xh (N, H, W, C) (C-contiguous, H*W == plan.image_size) into out
    (N, C, 1, 1) (C-contiguous), checked now."""
    if not isinstance(xh, np.ndarray) or xh.ndim != 4 or xh.dtype != plan.dtype or not xh.flags.c_contiguous:
        raise ValueError(f"global_avgpool: channels-last input must be a C-contiguous {plan.dtype} (N, H, W, C) array")
    n, h, w, c = xh.shape
    if not isinstance(out, np.ndarray) or out.dtype != plan.dtype or out.shape != (n, c, 1, 1) or \
            not out.flags.c_contiguous:
        raise ValueError(f"global_avgpool: out must be C-contiguous {plan.dtype} of shape {(n, c, 1, 1)}")
    if h * w != plan.image_size:
        raise ValueError(f"global_avgpool: spatial size {h}x{w} is not the planned {plan.image_size}")
    info = np.iinfo(plan.dtype)
    return partial(_global_avgpool_nhwc_impl, xh.reshape(n, h * w, c), np.int64(plan.x_zp), plan.scale,
                   np.int64(plan.y_zp), np.int64(info.min), np.int64(info.max), out.reshape(n, c))


def global_avgpool(x, x_scale, x_zp, y_scale, y_zp, out) -> None:
    """QLinearGlobalAveragePool (see module docstring); x (N, C, *spatial), out (N, C, 1, ...)."""
    _check_gap("global_avgpool", x, out, x_zp, y_zp)
    hw = int(np.prod(x.shape[2:]))
    global_avgpool_planned(np.ascontiguousarray(x), global_avgpool_plan(x_scale, x_zp, y_scale, y_zp, hw, x.dtype),
                           out)


def global_avgpool_ref(x, x_scale, x_zp, y_scale, y_zp, out) -> None:
    """NumPy twin of global_avgpool."""
    hw = int(np.prod(x.shape[2:]))
    scale = global_avgpool_scale(x_scale, y_scale, hw)
    info = np.iinfo(x.dtype)
    acc = x.reshape(x.shape[0] * x.shape[1], hw).astype(np.int64).sum(axis=1) - int(x_zp) * hw
    v = (acc.astype(F32) * scale).astype(F32)
    v = np.minimum(np.maximum(v, F32(info.min - y_zp)), F32(info.max - y_zp))
    out.reshape(-1)[...] = cvt_np(v) + y_zp


# ---------------------------------------------------------------- QLinearAveragePool

@kernel
def _avgpool_impl(x, deq, k, st, pb, include_pad, y_scale, y_zp_f, qmin, qmax, out):
    nc, ih, iw, idp = x.shape
    _, oh, ow, od = out.shape
    ksize = k[0] * k[1] * k[2]
    for c in range(nc):
        for a in range(oh):
            h0 = a * st[0] - pb[0]
            h1 = min(h0 + k[0], ih)
            h0 = max(h0, 0)
            for b in range(ow):
                w0 = b * st[1] - pb[1]
                w1 = min(w0 + k[1], iw)
                w0 = max(w0, 0)
                for d in range(od):
                    z0 = d * st[2] - pb[2]
                    z1 = min(z0 + k[2], idp)
                    z0 = max(z0, 0)
                    s = np.float32(0.0)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            for z in range(z0, z1):
                                s = np.float32(s + deq[np.int64(x[c, h, w, z]) & 255])
                    n = ksize if include_pad else (h1 - h0) * (w1 - w0) * (z1 - z0)
                    avg = np.float32(s / np.float32(n))
                    v = np.float32(np.float32(avg / y_scale) + y_zp_f)
                    q = _trunc_cvt(np.rint(v))
                    out[c, a, b, d] = qmin if q < qmin else (qmax if q > qmax else q)


@kernel
def _trunc_cvt(v):
    """static_cast<int32_t>(float) on x86 (cvttss2si): NaN / out of range -> INT32_MIN."""
    if v >= np.float32(-2147483648.0) and v < np.float32(2147483648.0):
        return np.int64(v)
    return np.int64(-(1 << 31))


def _dequant_table(dtype, x_scale, x_zp) -> np.ndarray:
    """deq[byte] = f32(f32(int(x) - zx) * sx), indexed by the code's low byte as ORT does."""
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int64)
    return ((codes - int(x_zp)).astype(F32) * F32(x_scale)).astype(F32)


def _is_global(x, kernel, pads) -> bool:
    return tuple(kernel) == tuple(x.shape[2:]) and all(p == 0 for p in pads)


def avgpool(x, x_scale, x_zp, y_scale, y_zp, kernel, strides, pads, count_include_pad, ceil_mode, out) -> None:
    """QLinearAveragePool (see module docstring). pads = [begin.., end..]; out shape
    (N, C, *pool_output_shape(...)) with dilation 1."""
    bind_avgpool(x, x_scale, x_zp, y_scale, y_zp, kernel, strides, pads, count_include_pad, ceil_mode, out)()


def bind_avgpool(x, x_scale, x_zp, y_scale, y_zp, kernel, strides, pads, count_include_pad, ceil_mode, out):
    """call() doing avgpool(...) for these very arrays and parameters, checked and derived now
    (a global pool's plan, the dequantization table); x must stay C-contiguous when given so."""
    ns = x.ndim - 2 if isinstance(x, np.ndarray) else 0
    _check_pool("avgpool", x, kernel, strides, pads, [1] * ns, out, (np.uint8, np.int8))
    want = x.shape[:2] + pool_output_shape(x.shape[2:], kernel, strides, pads, [1] * ns, ceil_mode)
    if out.shape != want:
        raise ValueError(f"avgpool: out shape {out.shape}, expected {want}")
    if _is_global(x, kernel, pads):
        _check_gap("global_avgpool", x, out, x_zp, y_zp)
        hw = int(np.prod(x.shape[2:]))
        plan = global_avgpool_plan(x_scale, x_zp, y_scale, y_zp, hw, x.dtype)
        if not x.flags.c_contiguous:
            return lambda: global_avgpool_planned(np.ascontiguousarray(x), plan, out)
        return partial(global_avgpool_planned, x, plan, out)
    info = np.iinfo(x.dtype)
    for s in (x_scale, y_scale):
        if not (np.isfinite(F32(s)) and F32(s) > 0):
            raise ValueError(f"avgpool: scale {s!r} must be finite and > 0")
    args = (_dequant_table(x.dtype, x_scale, x_zp), _norm3(kernel, 1), _norm3(strides, 1), _norm3(pads[:ns], 0),
            bool(count_include_pad), F32(y_scale), F32(y_zp), np.int64(info.min), np.int64(info.max), _spatial3(out))
    if not x.flags.c_contiguous:
        return lambda: _avgpool_impl(_spatial3(np.ascontiguousarray(x)), *args)
    return partial(_avgpool_impl, _spatial3(x), *args)


def avgpool_ref(x, x_scale, x_zp, y_scale, y_zp, kernel, strides, pads, count_include_pad, ceil_mode, out) -> None:
    """NumPy twin of avgpool: float32 partial sums in row-major tap order over clipped windows."""
    if _is_global(x, kernel, pads):
        global_avgpool_ref(x, x_scale, x_zp, y_scale, y_zp, out)
        return
    ns = x.ndim - 2
    osz = pool_output_shape(x.shape[2:], kernel, strides, pads, [1] * ns, ceil_mode)
    xf = ((x.astype(np.int64) - int(x_zp)).astype(F32) * F32(x_scale)).astype(F32)
    info = np.iinfo(x.dtype)
    for pos in np.ndindex(*osz):
        lo = [max(pos[i] * strides[i] - pads[i], 0) for i in range(ns)]
        hi = [min(pos[i] * strides[i] - pads[i] + kernel[i], x.shape[2 + i]) for i in range(ns)]
        win = xf[(slice(None), slice(None)) + tuple(slice(lo[i], hi[i]) for i in range(ns))]
        win = win.reshape(x.shape[0], x.shape[1], -1)
        s = np.zeros(x.shape[:2], F32)
        for t in range(win.shape[2]):
            s = (s + win[:, :, t]).astype(F32)
        n = int(np.prod(kernel)) if count_include_pad else int(np.prod([hi[i] - lo[i] for i in range(ns)]))
        avg = (s / F32(n)).astype(F32)
        v = ((avg / F32(y_scale)).astype(F32) + F32(y_zp)).astype(F32)
        out[(slice(None), slice(None)) + pos] = np.clip(cvt_np(np.rint(v)), info.min, info.max)
