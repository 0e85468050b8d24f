"""A 1x1 QLinearConv read and written NCHW, with no layout moves (AVX-512 VNNI hosts).

Per image n, the conv is the GEMM out(M, P) = W(M, C) . X(C, P) with the weights as the
left operand and the pixels along the vector lanes (onnxruntime's NCHW QLinearConv instead
transposes to NHWC and back, MLAS's `MlasConv` path; intsim's GEMM conv did the same):

    acc[n, m, p] = bias[m] + sum_c w[m, c] * (x[n, c, oy*sh, ox*sw] - x_zp)      p = oy*OW + ox
    out[n, m, p] = clamp(rint_half_even(clamp(f32(acc) * mult[m], f32(lo - zp), f32(hi - zp))) + zp)

(onnxruntime's float requantization, kernels.requant.ort_round; x uint8, w int8 with a zero
weight zero point, no pads: `fits`). How, all int32 lanes wrapping mod 2**32 (the caller,
intsim.steps.compute.Bound.fused_requant, has proved |acc| < 2**31, so the wrapped sum is acc):

    acc = sum_c w[m, c] * x[c, p] + crow[m],   crow[m] = int32(bias[m] - x_zp * sum_c w[m, c])

- Per block of PB = 64 output pixels, the pixels' channels are packed as 4-byte quads,
  xb[c4*PB + i] = x[4c4] | x[4c4+1] << 8 | x[4c4+2] << 16 | x[4c4+3] << 24 (channels past C
  zero; a strided 1x1 gathers every sh-th row and sw-th column here), then for every MR = 4
  output channels the micro-kernel `_dot_rows` (the SIMD GEMM's, kernels.simd.microkernels.
  make_microkernel, weights as A words, pixels as the B panel) sums the block in 16 zmm
  accumulators: one vpdpbusd per 16 pixels, channel quad and row (u8 pixels x the broadcast s8
  weight quad, four products summed into each int32 lane, no saturation); each row gets its
  channel's crow added and is requantized in registers with its channel's multiplier
  (make_microkernel_rows_q, the ORT formula of kernels.requant.ort_round in vector form), its
  64 bytes stored into out[n, m, p0:p0+64] (a contiguous NCHW run; masked at the edges).
- Work is shared over (image, pixel block) items (kernels.threads.parallel_items).

    call = bind_nchw_1x1(w, x_zp, bias, rq, x_shape, stride, out_dtype)   # checks, packs once
    call(x, out); call.freeze(x, out) -> call()
    nchw_1x1_ref(w, x_zp, bias, rq, stride, x, out)                       # NumPy int64 twin
"""
from __future__ import annotations

from functools import partial

import numpy as np
from llvmlite import ir

from . import cpu
from .conv import ConvGeom, conv2d_acc_ref
from .jit import kernel
from .requant import ort_round_ref
from .simd.microkernels import make_microkernel_rows_q, vpdpbusd_fn
from .threads import get_num_threads, parallel_items

PB = 64                  # output pixels per block (four zmm of int32 lanes)
MR = 4                   # output channels per micro-kernel call (16 zmm accumulators)
SERIAL_WORK = 1 << 21    # multiply-adds below which a call runs on the calling thread
_V16 = ir.VectorType(ir.IntType(32), 16)


def _madd_pixels(builder, acc, w_splat, x8):
    """acc + vpdpbusd(x8, w_splat): the pixel bytes are the unsigned operand, the broadcast
    weight quad the signed one (four u8 x s8 products summed into each int32 lane, no saturation)."""
    return builder.call(vpdpbusd_fn(builder), [acc, builder.bitcast(x8, _V16), w_splat])


# acc[r, j] = sum_{s < steps} dot4(u8 quad xb[s*PB + j], s8 quad wq[w_off + r*steps + s]) for
# r < MR, j < PB: the SIMD GEMM's register-blocked micro-kernel (kernels.simd.microkernels) with the
# weights as its A words and the packed pixels as its B panel, the operands' signs swapped
# (_madd_pixels), each row requantized in registers with its channel's crow and multiplier and
# stored as bytes into out[m0 + r, p0 + j] (rows < M - m0, pixels < P - p0: masked stores)
_dot_rows_q = make_microkernel_rows_q(MR, PB // 16, 16, 8, _madd_pixels, masked=True)


@kernel(inline="always")
def _pack_block(xf, img0, c_, hw, w_, ow_, sh, sw, p0, p1, c4n, xb, xb8, poff):
    """xb[c4*PB + i] = the quad of channels 4c4..4c4+3 (zero past C) of output pixel p0 + i,
    for i < p1 - p0; zero for the block's pixels past p1. poff: PB int64 scratch (a strided
    block's pixel offsets in a channel plane)."""
    cnt = p1 - p0
    oy, ox = p0 // ow_, p0 % ow_
    for i in range(cnt):
        poff[i] = oy * sh * w_ + ox * sw
        ox += 1
        if ox == ow_:
            ox = 0
            oy += 1
    for c4 in range(c4n):
        o = np.uint64(c4 * PB)
        for i in range(cnt, PB):
            xb[o + np.uint64(i)] = 0
        b0 = np.uint64(4) * o
        if 4 * c4 + 3 < c_:
            s0 = np.uint64(img0 + 4 * c4 * hw)
            s1, s2, s3 = s0 + np.uint64(hw), s0 + np.uint64(2 * hw), s0 + np.uint64(3 * hw)
            if sh == 1 and sw == 1:
                s0, s1, s2, s3 = s0 + np.uint64(p0), s1 + np.uint64(p0), s2 + np.uint64(p0), s3 + np.uint64(p0)
                for i in range(cnt):
                    u = np.uint64(i)
                    d = b0 + np.uint64(4) * u
                    xb8[d] = xf[s0 + u]
                    xb8[d + np.uint64(1)] = xf[s1 + u]
                    xb8[d + np.uint64(2)] = xf[s2 + u]
                    xb8[d + np.uint64(3)] = xf[s3 + u]
            else:
                for i in range(cnt):
                    u = np.uint64(i)
                    q = np.uint64(poff[u])
                    d = b0 + np.uint64(4) * u
                    xb8[d] = xf[s0 + q]
                    xb8[d + np.uint64(1)] = xf[s1 + q]
                    xb8[d + np.uint64(2)] = xf[s2 + q]
                    xb8[d + np.uint64(3)] = xf[s3 + q]
            continue
        for i in range(cnt):
            xb[o + np.uint64(i)] = 0
        for t in range(min(4, c_ - 4 * c4)):
            src = np.uint64(img0 + (4 * c4 + t) * hw)
            sft = np.uint32(8 * t)
            for i in range(cnt):
                u = np.uint64(i)
                xb[o + u] |= np.uint32(xf[src + poff[u]]) << sft


@kernel
def _impl(x, sh, sw, oh_, ow_, wq, crow, mult, rqs, out, i0, i1):
    """Items i0..i1-1 (item = n*blocks + b: output pixels b*PB.. of image n): pack the block,
    then the sums of MR output channels at a time, requantized in registers into out (N, M,
    OH*OW); crow and mult padded to whole MR rows, rqs float32 [lo - zp, hi - zp, zp]."""
    n_, c_, h_, w_ = x.shape
    m_ = out.shape[1]
    p_ = oh_ * ow_
    nblk = (p_ + PB - 1) // PB
    c4n = (c_ + 3) // 4
    xb = np.empty(c4n * PB, np.uint32)
    xb8 = xb.view(np.uint8)
    poff = np.empty(PB, np.int64)
    acc = np.empty(MR * PB, np.int32)
    zero = np.zeros(PB, np.int32)
    xf = x.reshape(x.size)
    geo = np.array([0, m_, 0, p_], np.int64)
    for item in range(i0, i1):
        n, b = item // nblk, item % nblk
        p0 = b * PB
        p1 = min(p_, p0 + PB)
        _pack_block(xf, n * c_ * h_ * w_, c_, h_ * w_, w_, ow_, sh, sw, p0, p1, c4n, xb, xb8, poff)
        qout = (out[n], mult, crow, rqs)
        for m0 in range(0, m_, MR):
            _dot_rows_q(wq, m0 * c4n, c4n, xb, 0, c4n, acc, 0, PB, zero, 0, 1, qout, m0, p0, geo)


MIN_PIXELS = 4 * PB      # output pixels per image from which this kernel runs (below, a block's
#                          unused lanes and the per-row requant cost more than the GEMM conv's
#                          layout moves: MobileNetV2's 7x7 320 -> 1280 1x1, 115 vs 88 us)
WIDE_OUT = 6             # a unit-stride conv runs here only with M <= WIDE_OUT * C (measured up to
#                          MobileNetV2's 6x expansions: 56x56 24 -> 144 ops ratio 0.85 -> 1.31 at one
#                          thread once the rows were requantized in registers; wider ones unmeasured)


def fits(w, w_zp, x_dtype, geom: ConvGeom, layouts, out_hw, isa: str | None = None) -> bool:
    """Whether this kernel runs the conv: an AVX-512 VNNI host (or AMX, which has it), uint8 x,
    int8 1x1 weights of one group with zero weight zero points, no pads, NCHW on both sides,
    at least MIN_PIXELS output pixels per image, and a stride or at most WIDE_OUT * C outputs."""
    isa = cpu.best_isa() if isa is None else isa
    return (isa in ("amx", "avx512vnni") and layouts == ("nchw", "nchw") and np.dtype(x_dtype) == np.uint8
            and out_hw[0] * out_hw[1] >= MIN_PIXELS
            and (geom.stride_h > 1 or geom.stride_w > 1 or w.shape[0] <= WIDE_OUT * w.shape[1])
            and w.dtype == np.int8 and w.ndim == 4 and w.shape[2:] == (1, 1) and geom.group == 1
            and not any(geom[2:6]) and not np.any(np.asarray(w_zp)))


def _quads(w2):
    """(M, C) int8 weights as (M', ceil(C/4)) uint32 words of four bytes, flat (channels past C
    and rows past M zero; M' = M rounded up to MR rows)."""
    m, c = w2.shape
    c4 = -(-c // 4)
    wp = np.zeros((-(-m // MR) * MR, 4 * c4), np.int8)
    wp[:m, :c] = w2
    return np.ascontiguousarray(wp).view(np.uint32).reshape(-1)


def bind_nchw_1x1(w, x_zp, bias, rq, x_shape, stride, out_dtype, where: str = "conv", threads=None):
    """call(x, out) for x uint8 (N, C, H, W) of x_shape and out (N, M, OH, OW) of out_dtype, both
    C-contiguous (ValueError naming the bad one); w int8 (M, C, 1, 1), bias int64 (M,), rq =
    (True, mult float32 (M,), zp, lo, hi), stride (sh, sw). call.freeze(x, out) -> call()."""
    n, c, h, wd = (int(v) for v in x_shape)
    m = int(w.shape[0])
    sh, sw = (int(v) for v in stride)
    if w.shape != (m, c, 1, 1) or w.dtype != np.int8 or not rq[0] or np.dtype(out_dtype) not in (np.uint8, np.int8):
        raise ValueError(f"{where}: the NCHW 1x1 kernel needs int8 (M, {c}, 1, 1) weights and an 8-bit "
                         f"requantized output, got {w.dtype} {w.shape} -> {np.dtype(out_dtype)}")
    info = np.iinfo(out_dtype)
    if not info.min <= int(rq[3]) <= int(rq[2]) <= int(rq[4]) <= info.max:
        raise ValueError(f"{where}: need {info.min} <= lo <= zp <= hi <= {info.max}, got {rq[3]}, {rq[2]}, {rq[4]}")
    oh, ow = (h - 1) // sh + 1, (wd - 1) // sw + 1
    w2 = w.reshape(m, c).astype(np.int64)
    mp = -(-m // MR) * MR
    crow = np.zeros(mp, np.int32)
    crow[:m] = (np.asarray(bias, np.int64) - int(x_zp) * w2.sum(axis=1) + 2**31) % 2**32 - 2**31
    wq = _quads(w.reshape(m, c))
    mult = np.zeros(mp, np.float32)
    mult[:m] = np.broadcast_to(np.asarray(rq[1], np.float32), (m,))
    zp = int(rq[2])
    rqs = np.array([int(rq[3]) - zp, int(rq[4]) - zp, zp], np.float32)
    x_shape, out_shape, out_dtype = (n, c, h, wd), (n, m, oh, ow), np.dtype(out_dtype)
    items = n * -(-oh * ow // PB)
    threads = get_num_threads() if threads is None else int(threads)
    if n * m * c * oh * ow < SERIAL_WORK:
        threads = 1
    args = (np.int64(sh), np.int64(sw), np.int64(oh), np.int64(ow), wq, crow, mult, rqs)

    def check(x, out):
        if not (type(x) is np.ndarray and x.shape == x_shape and x.dtype == np.uint8):
            raise ValueError(f"{where}: x must be a uint8 array of shape {x_shape}, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {np.shape(x)}")
        if not (type(out) is np.ndarray and out.shape == out_shape and out.dtype == out_dtype
                and out.flags.c_contiguous):
            raise ValueError(f"{where}: out must be a C-contiguous {out_dtype} array of shape {out_shape}, got "
                             f"{getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")

    def run(x, out3):
        if threads <= 1:
            _impl(x, *args, out3, 0, items)
        else:
            parallel_items(lambda i0, i1: _impl(x, *args, out3, i0, i1), items, threads, per_thread=1)

    def call(x, out):
        check(x, out)
        run(np.ascontiguousarray(x), out.reshape(n, m, oh * ow))

    def freeze(x, out):
        """call(x, out) on these very arrays as a call(), checked now (x read in place when it is
        C-contiguous, else copied at each call)."""
        check(x, out)
        if not x.flags.c_contiguous:
            return partial(call, x, out)
        return partial(run, x, out.reshape(n, m, oh * ow))
    call.freeze = freeze
    return call


def nchw_1x1_ref(w, x_zp, bias, rq, stride, x, out) -> None:
    """NumPy int64 twin: kernels.conv.conv2d_acc_ref's accumulator (weight zero point 0), then
    kernels.requant.ort_round_ref per output channel, zp added and clamped to [lo, hi]."""
    n, c, h, wd = x.shape
    m = w.shape[0]
    sh, sw = stride
    acc = np.zeros(out.shape, np.int64)
    conv2d_acc_ref(x, w, int(x_zp), np.zeros(m, np.int64), np.asarray(bias, np.int64),
                   ConvGeom(sh, sw, 0, 0, 0, 0, 1, 1, 1), acc)
    zp, lo, hi = int(rq[2]), int(rq[3]), int(rq[4])
    mult = np.asarray(rq[1], np.float32).reshape(1, m, 1, 1)
    q = ort_round_ref(acc.astype(np.int32), mult, np.float32(lo - zp), np.float32(hi - zp)).astype(np.int64) + zp
    out[...] = np.clip(q, lo, hi)
