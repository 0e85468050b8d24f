"""Fast exact depthwise 2-D convolution, channels last (NHWC in, NHWC out), with optional fused
ORT requant. The arithmetic is kernels.fast_depthwise.depthwise's, with the layouts transposed.

Contract (x uint8/int8 (N, H, W, C) C-contiguous, wz = w - w_zp int32 (M, KH*KW), M = C * mult,
bias int64 (M,), geo int64 [KH, KW, sh, sw, pt, pl, dh, dw], dst (N, OH, OW, M) C-contiguous):

    acc[n, oy, ox, m] = bias[m] + sum_{ky, kx} (x[n, iy, ix, m // mult] - x_zp) * wz[m, ky*KW + kx]

with iy = oy*sh - pt + ky*dh, ix = ox*sw - pl + kx*dw; taps outside the image contribute 0.
The KH*KW products are summed into an int32 value (callers guarantee |term| < 2**17 and that the
sum fits int32; otherwise the int32 sum wraps mod 2**32), then the bias is added:
- dst int64: int64(sum) + bias[m]                       (exact);
- dst int32: int32(sum + bias[m])                       (wrapped mod 2**32);
- dst uint8/int8 with rq = (True, mult f32 (M,), zp, lo, hi), onnxruntime's float requant:
      v = clamp(f32(int32(sum + bias[m])) * mult[m], f32(lo - zp), f32(hi - zp))   (all float32)
      dst = rint_half_even(v) + zp
  rq = (False, ...) stores int32(sum + bias[m]) wrapped to the dst dtype.

How (all int32 lanes, wrapping mod 2**32, so any summation order gives the same integers):
- The zero point is not subtracted per product: the image is copied into a buffer padded with
  x_zp (a pad tap then contributes x_zp*w, cancelled below), and
      sum = sum_t x*w[t, m] + int32(-x_zp * sum_t w[t, m])        (mod 2**32),
  the constant folded with the bias into one int32 row prepared once (the plan).
- The buffer holds a block of RB output rows' input rows, channels last, split into sw column
  phases (phase p holds padded columns p, p + sw, ...; channel multiplier > 1: each input channel
  repeated `mult` times): output pixel (oy, ox) reads tap (ky, kx) at a fixed offset + ox*M, so a
  run of T output pixels of one row is one contiguous T*M-lane loop per tap, the weights tiled
  along the run ((taps, T*M) int32, prepared once). Nine taps are summed in one pass.
- Each run is finished (bias, requant over a float32 multiplier row) straight into dst's row,
  contiguous in NHWC.
- AVX2 (kernels.cpu; not with INTSIM_PORTABLE=1), 3x3 and 5x5 kernels, weights in int16: the
  nine (25) taps are summed as five (13) int16 pairs by vpmaddwd (_make_pair_sums: each pair
  x_a*w_a + x_b*w_b exact in int32 since |x| <= 255; the added tap has weight 0), 16 lanes per
  step, the weights
  packed once as int16 pairs (_pack_pairs); lanes after the last whole 16-lane group take the
  plain loop. Measured 1.3-1.6x faster than the plain loop on MobileNetV2's layers (one thread);
  5x5 over 240 channels at 14x14 (MobileNetV3-Small's layers), batch 1: 0.18 -> 0.09 ms CPU.
- VNNI (avxvnni, avx512vnni, amx ISAs), 3x3 and 5x5, weights in int8: the taps are summed four
  at a time by vpdpbusd on ymm (_make_quad_sums: u8 x s8 quads exact in int32; an int8 x is
  read as x + 128, its -128 * sum w folded into the sums' start), 32 lanes per step, every lane
  of a run (its last group runs into slack lanes); the weights packed once as bytes
  (_pack_quads). One thread, NCHW both sides, AVX-512 host, loaded: MobileNetV2's 144x56x56
  stride-2 layer 108 -> 83 us, 960x7x7 31 -> 24 us against the vpmaddwd pairs; 512-bit
  vpmaddwd (zmm) measured no faster than the ymm pairs on this host and is not used.
Work is shared over (channel chunk, image, block of output rows) items, one contiguous range of
items per thread (a Numba parallel region, or kernels.threads.parallel_items); the bind picks
the rows per block and, for layers whose runs are one pixel, the channel chunks that balance the
ranges (_split: MobileNetV2's 7x7x960 layer has 7 rows, which two threads split 4:3, or 2:1
with the 3-row blocks an NCHW dst wants; two chunks of 480 lanes split it evenly). Problems
below SERIAL_WORK multiply-adds run on the calling thread.

    plan = plan_depthwise_nhwc(x, x_zp, wz, bias, geo, dst, rq)   # checks, weights tiled once
    run_depthwise_nhwc(plan, x, dst, threads=None)                 # checks x/dst, runs
    depthwise_nhwc(x, x_zp, wz, bias, geo, dst, rq, threads=None)  # both

A layer (`plan_depthwise_layer` / `run_depthwise_layer`) takes either layout on either side and
picks the kernel: this one unless both sides are NCHW and the output map is large (more than
SMALL_MAP pixels), where the NCHW kernel (kernels.fast_depthwise, through kernels.fast_conv's
plan) runs. An NCHW side is transposed inside this kernel, block by block: an NCHW x's block
rows into a channels-last staging (kernels.conv_rows._transpose), then the usual fill; an NCHW
dst's block is finished channels-last into a staging block, then transposed into its planes
(blocks of >= 16 output pixels where the map allows, so the 16x16 tiles stay inside the block).
"""
from __future__ import annotations

import functools
import math
from functools import partial
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from . import conv_rows, cpu
from . import fast_depthwise as fd
from .conv import ConvGeom, conv_out_hw
from .fast_conv import run_depthwise_plan
from .jit import kernel
from .requant import ort_round
from .simd.microkernels import pmaddwd_fn, vpdpbusd_fn
from .threads import get_num_threads, native_call, native_split, parallel_items

LANES = 512             # a run of output pixels covers about this many int32 lanes
BUF_BYTES = 1 << 16     # a block's padded input rows take about this many bytes
SERIAL_BUF_BYTES = 1 << 18  # the same on one thread (_serial_rows: fewer blocks, fewer halo rows refilled and
                            # transposed; MobileNetV2's 144x56x56 stride-2 layer, NCHW both sides, one thread:
                            # 3-row blocks 108 us -> 14-row blocks 99 us, AVX-512 host, loaded)
SERIAL_WORK = fd.SERIAL_WORK
NATIVE_SERIAL_WORK = 1 << 16   # the same cut-off when the split is a Numba parallel region (no pool wake-up)
_K, _KW, _SH, _SW, _PT, _PL, _DH, _DW = range(8)


# ------------------------------------------------------------------------------- kernels
@kernel(inline="always")
def _fill(buf, o0, o1, v):
    for i in range(o0, o1):
        buf[np.uint64(i)] = v


@kernel(inline="always")
def _fill_lanes(buf, o, j0, j1, m_, l0, l1, v):
    """buf[o + j*M + l] = v for j0 <= j < j1, l0 <= l < l1 (M = m_ lanes per pixel)."""
    if l0 == 0 and l1 == m_:
        _fill(buf, o + j0 * m_, o + j1 * m_, v)
    else:
        for j in range(j0, j1):
            _fill(buf, o + j * m_ + l0, o + j * m_ + l1, v)


@kernel(inline="always")
def _copy_pixels(xf, s0, step, buf, d0, count, cc, mult_ch, dstep):
    """buf[d0 + j*dstep + c*mult + k] = xf[s0 + j*step + c] for j < count, c < cc, k < mult
    (the pixels of one phase, step = sw*xs apart in the source, dstep = M apart in buf)."""
    for j in range(count):
        s, d = s0 + j * step, d0 + j * dstep
        if mult_ch == 1:
            for c in range(cc):
                buf[np.uint64(d + c)] = xf[np.uint64(s + c)]
        else:
            for c in range(cc):
                v = xf[np.uint64(s + c)]
                for k in range(mult_ch):
                    buf[np.uint64(d + c * mult_ch + k)] = v


@kernel
def _fill_block(xf, img0, h_, w_, xs, c0, c1, mult_ch, m_, zp, geo, iy0, hb, hbm, wq, jr, buf):
    """buf[((p*hbm + r)*wq + jj)*M + c*mult + k] = xf[img0 + (iy*W + ix)*xs + c] (iy = iy0 + r,
    ix = jj*sw + p - pl, k < mult) for r < hb and the input channels c0 <= c < c1, or zp where
    that pixel lies outside the image; the buffer's other lanes are left as they are."""
    sw, pl = geo[_SW], geo[_PL]
    l0, l1 = c0 * mult_ch, c1 * mult_ch
    dense = mult_ch == 1 and l0 == 0 and l1 == m_ and xs == m_
    for r in range(hb):
        iy = iy0 + r
        for p in range(sw):
            o = (p * hbm + r) * wq * m_
            if iy < 0 or iy >= h_:
                _fill_lanes(buf, o, 0, wq, m_, l0, l1, zp)
                continue
            a, b = jr[2 * p], jr[2 * p + 1]
            _fill_lanes(buf, o, 0, a, m_, l0, l1, zp)
            s0 = img0 + (iy * w_ + a * sw + p - pl) * xs + c0
            if sw == 1 and dense:
                for i in range((b - a) * m_):
                    buf[np.uint64(o + a * m_ + i)] = xf[np.uint64(s0 + i)]
            else:
                _copy_pixels(xf, s0, sw * xs, buf, o + a * m_ + l0, b - a, c1 - c0, mult_ch, m_)
            _fill_lanes(buf, o, b, wq, m_, l0, l1, zp)


@kernel(inline="always")
def _lane_sums(buf, toff, wrow, a0, i0, i1, acc):
    """acc[i] = sum_t int32(buf[a0 + toff[t] + i]) * wrow[t*L + i] for i0 <= i < i1 (L = acc.size),
    int32, wrapping."""
    n_ = acc.size
    for i in range(i0, i1):
        acc[i] = 0
    for t in range(toff.size):
        o, ow_ = a0 + toff[t], t * n_
        for i in range(i0, i1):
            acc[i] += np.int32(buf[np.uint64(o + i)]) * wrow[np.uint64(ow_ + i)]


@kernel
def _run_sums(buf, toff, wrow, a0, lanes, acc):
    """_lane_sums for the lanes i < lanes."""
    _lane_sums(buf, toff, wrow, a0, 0, lanes, acc)


@kernel
def _run_sums_9(buf, toff, wrow, a0, lanes, acc):
    """_run_sums for nine taps in one pass (a shallow sum tree)."""
    n_ = acc.size
    o0, o1, o2, o3, o4, o5, o6, o7, o8 = (a0 + toff[0], a0 + toff[1], a0 + toff[2], a0 + toff[3],
                                          a0 + toff[4], a0 + toff[5], a0 + toff[6], a0 + toff[7],
                                          a0 + toff[8])
    for i in range(lanes):
        s = (((np.int32(buf[np.uint64(o0 + i)]) * wrow[np.uint64(i)]
               + np.int32(buf[np.uint64(o1 + i)]) * wrow[np.uint64(n_ + i)])
              + (np.int32(buf[np.uint64(o2 + i)]) * wrow[np.uint64(2 * n_ + i)]
                 + np.int32(buf[np.uint64(o3 + i)]) * wrow[np.uint64(3 * n_ + i)]))
             + ((np.int32(buf[np.uint64(o4 + i)]) * wrow[np.uint64(4 * n_ + i)]
                 + np.int32(buf[np.uint64(o5 + i)]) * wrow[np.uint64(5 * n_ + i)])
                + (np.int32(buf[np.uint64(o6 + i)]) * wrow[np.uint64(6 * n_ + i)]
                   + np.int32(buf[np.uint64(o7 + i)]) * wrow[np.uint64(7 * n_ + i)]))
             + np.int32(buf[np.uint64(o8 + i)]) * wrow[np.uint64(8 * n_ + i)])
        acc[i] = s


# ------------------------------------------------------------------------------- AVX2 pairs
_LO, _HI = (0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)
GROUP = 16              # lanes per step of the vpmaddwd sums (two ymm of int32)


def _make_pair_sums(npairs):
    """An intrinsic pair_sums(buf, toff2, wpk, a0, ngrp, acc) for 2*npairs taps (the last one
    may carry zero weights): for lanes i < 16*ngrp,

        acc[i] = sum_{p < npairs} x(2p, i)*w(2p, i) + x(2p+1, i)*w(2p+1, i)    (int32, wraps)

    with x(t, i) = buf[a0 + toff2[t] + i] widened to int16 (zero- or sign-extended as buf's
    dtype) and w the int16 weights of wpk[((g*npairs + p)*2 + h)*16 + 2k + (0 | 1)] for tap 2p | 2p+1
    of lane 16g + (_LO if h == 0 else _HI)[k]. Per 16 lanes and pair: two 16-byte loads widened
    (vpmovzxbw), interleaved in-lane (vpunpcklwd/hwd: int32 lanes _LO and _HI), two vpmaddwd
    (int16 x int16 products, each pair summed exactly in int32: |x| <= 255 so no pair is
    (-32768)*(-32768)), added into two int32 accumulators, put back in lane order at the end.
    Nothing is bounds-checked: the caller keeps a0 + toff2[t] + 16*ngrp within buf."""
    def emit(builder, bp, tp, wp, cp, a0, signed):
        offs = [builder.add(a0, builder.load(builder.gep(tp, [ir.Constant(_I64, t)])))
                for t in range(2 * npairs)]

        def group(g):
            base = builder.mul(g, ir.Constant(_I64, GROUP))
            wbase = builder.mul(g, ir.Constant(_I64, npairs * 2 * GROUP))
            sums = [ir.Constant(_V8I32, None), ir.Constant(_V8I32, None)]
            for p in range(npairs):
                xa, xb = (_widen(builder, bp, builder.add(base, offs[t]), signed) for t in (2 * p, 2 * p + 1))
                for h, mask in enumerate((_LO16, _HI16)):
                    x2 = builder.shuffle_vector(xa, xb, mask)
                    w2 = _load_vec(builder, wp, builder.add(wbase, ir.Constant(_I64, (2 * p + h) * GROUP)),
                                   _V16I16)
                    sums[h] = builder.add(sums[h], builder.call(pmaddwd_fn(builder), [x2, w2]))
            for h, mask in enumerate((_OUT0, _OUT1)):
                out = builder.shuffle_vector(sums[0], sums[1], mask)
                ptr = builder.gep(cp, [builder.add(base, ir.Constant(_I64, 8 * h))])
                builder.store(out, builder.bitcast(ptr, _V8I32.as_pointer()), align=4)
        return group
    return _sums_intrinsic(emit)


_I64, _I32C = ir.IntType(64), ir.IntType(32)
_V16I8, _V16I16, _V8I32 = (ir.VectorType(ir.IntType(b), n) for b, n in ((8, 16), (16, 16), (32, 8)))
_LO16, _HI16 = (ir.Constant(ir.VectorType(_I32C, 16), [v for k in half for v in (k, k + 16)]) for half in (_LO, _HI))
_OUT0, _OUT1 = (ir.Constant(ir.VectorType(_I32C, 8), _LO), ir.Constant(ir.VectorType(_I32C, 8), _HI))


def _sums_intrinsic(emit):
    """An intrinsic f(buf, toff, wpk, a0, ngrp, acc) -> None whose body is `for g in range(ngrp):
    group(g)`, group = emit(builder, buf, toff, wpk and acc data pointers, a0, buf is signed)."""
    @intrinsic
    def sums(typingctx, buf, toff, wpk, a0, ngrp, acc):
        sig = types.void(buf, toff, wpk, types.int64, types.int64, acc)

        def codegen(context, builder, signature, args):
            group = emit(builder, *_pointers(context, builder, signature, args), args[3], buf.dtype.signed)
            _group_loop(builder, args[4], group)
            return context.get_dummy_value()
        return sig, codegen
    return sums


def _group_loop(builder, ngrp, group):
    """Emit `for g in range(ngrp): group(g)` (g an i64 value; no iteration when ngrp <= 0);
    the caller's codegen goes on after the loop."""
    entry, fn = builder.block, builder.function
    loop, done = fn.append_basic_block("groups_loop"), fn.append_basic_block("groups_done")
    builder.cbranch(builder.icmp_signed(">", ngrp, ir.Constant(_I64, 0)), loop, done)
    builder.position_at_end(loop)
    g = builder.phi(_I64, "g")
    g.add_incoming(ir.Constant(_I64, 0), entry)
    group(g)
    nxt = builder.add(g, ir.Constant(_I64, 1))
    g.add_incoming(nxt, builder.block)
    builder.cbranch(builder.icmp_signed("<", nxt, ngrp), loop, done)
    builder.position_at_end(done)


def _pointers(context, builder, signature, args):
    """Data pointers of buf, toff2, wpk and acc."""
    return tuple(context.make_array(signature.args[k])(context, builder, args[k]).data for k in (0, 1, 2, 5))


def _load_vec(builder, base_ptr, index, vty):
    """The vty vector at base_ptr + index (elements), unaligned."""
    return builder.load(builder.bitcast(builder.gep(base_ptr, [index]), vty.as_pointer()), align=1)


def _widen(builder, bp, index, signed):
    """16 bytes at bp + index as <16 x i16> (sign- or zero-extended)."""
    v = _load_vec(builder, bp, index, _V16I8)
    return builder.sext(v, _V16I16) if signed else builder.zext(v, _V16I16)


_pair_sums_5 = _make_pair_sums(5)       # 3x3: nine taps and a zero one
_pair_sums_13 = _make_pair_sums(13)     # 5x5: 25 taps and a zero one
PAIR_TAPS = (9, 25)                     # tap counts of the vpmaddwd path


# ------------------------------------------------------------------------------- VNNI quads
QUAD = 32               # lanes per step of the vpdpbusd sums (four ymm of int32)
CHUNK = QUAD            # a channel chunk of _split starts on a multiple of this many lanes (both paths)


def _make_quad_sums(taps):
    """An intrinsic quad_sums(buf, toff, wpk, a0, ngrp, acc) for `taps` taps summed four at a
    time by vpdpbusd (u8 x s8, the four products summed into int32 exactly, no saturation), for
    lanes i < 32*ngrp:

        acc[i] = corr(i) + sum_{t < taps} u(t, i) * w(t, i)                      (int32, wraps)

    u(t, i) = buf[a0 + toff[t] + i] as uint8 (an int8 buf: its bits xor 0x80, i.e. x + 128),
    w int8 and corr int32 (-128*sum_t w(t, i) for an int8 buf, else 0, so that acc is the
    plain sum_t x*w) read from the byte pack of _pack_quads: per 32-lane group g at byte
    g*32*(4Q + 4) (Q = ceil(taps/4) quads, taps past `taps` read tap taps-1 with weight 0):
    Q*4 blocks of 8 int32 lanes (quad q, accumulator j: lane k holds the four taps 4q..4q+3 of
    lane 16*(k // 4) + 4j + k % 4 as bytes), then corr in the same 4 x 8 lane order. Per group
    and quad: four 32-byte loads, byte then word interleaves (vpunpck{l,h}bw, vpunpck{l,h}wd:
    the four taps of a lane side by side), four vpdpbusd. The lanes are put back in order at
    the end. On a host without VNNI the same sums are plain IR (never run there: the plan
    takes this path only on VNNI ISAs). Nothing is bounds-checked."""
    nq = -(-taps // 4)
    v8, v16, v32 = (ir.VectorType(ir.IntType(b), n) for b, n in ((8, 32), (16, 16), (32, 8)))
    m_bw = [[b for lane in range(2) for k in ks for b in (16 * lane + k, 32 + 16 * lane + k)]
            for ks in (range(8), range(8, 16))]
    m_wd = [[w for lane in range(2) for k in ks for w in (8 * lane + k, 16 + 8 * lane + k)]
            for ks in (range(4), range(4, 8))]
    m_bw = [ir.Constant(ir.VectorType(_I32C, 32), m) for m in m_bw]
    m_wd = [ir.Constant(ir.VectorType(_I32C, 16), m) for m in m_wd]
    m_out = [ir.Constant(ir.VectorType(_I32C, 8), list(h) + [8 + v for v in h]) for h in ((0, 1, 2, 3), (4, 5, 6, 7))]
    gbytes = 32 * (4 * nq + 4)

    def emit(builder, bp, tp, wp, cp, a0, signed):
        bp = builder.bitcast(bp, ir.IntType(8).as_pointer())
        wp = builder.bitcast(wp, ir.IntType(8).as_pointer())
        offs = [builder.add(a0, builder.load(builder.gep(tp, [ir.Constant(_I64, min(t, taps - 1))])))
                for t in range(4 * nq)]
        flip = ir.Constant(v8, [0x80] * 32)

        def group(g):
            base = builder.mul(g, ir.Constant(_I64, QUAD))
            wbase = builder.mul(g, ir.Constant(_I64, gbytes))

            def wvec(k):
                return _load_vec8(builder, wp, builder.add(wbase, ir.Constant(_I64, 32 * k)), v32)
            sums = [wvec(4 * nq + j) for j in range(4)]
            for q in range(nq):
                t = []
                for k in range(4):
                    v = _load_vec8(builder, bp, builder.add(base, offs[4 * q + k]), v8)
                    t.append(builder.xor(v, flip) if signed else v)
                a = [builder.bitcast(builder.shuffle_vector(t[0], t[1], m), v16) for m in m_bw]
                b = [builder.bitcast(builder.shuffle_vector(t[2], t[3], m), v16) for m in m_bw]
                quads = [builder.bitcast(builder.shuffle_vector(a[h], b[h], m), v32) for h in range(2) for m in m_wd]
                for j in range(4):
                    sums[j] = _vpdpbusd256(builder, sums[j], quads[j], wvec(4 * q + j))
            for h in range(2):          # lanes 16h + 0..7 from sums 0, 1; 16h + 8..15 from sums 2, 3
                for pair in range(2):
                    ptr = builder.gep(cp, [builder.add(base, ir.Constant(_I64, 16 * h + 8 * pair))])
                    out = builder.shuffle_vector(sums[2 * pair], sums[2 * pair + 1], m_out[h])
                    builder.store(out, builder.bitcast(ptr, v32.as_pointer()), align=4)
        return group
    return _sums_intrinsic(emit)


def _load_vec8(builder, base_ptr, index, vty):
    """The vty vector at byte base_ptr + index, unaligned."""
    return builder.load(builder.bitcast(builder.gep(base_ptr, [index]), vty.as_pointer()), align=1)


def _vpdpbusd256(builder, acc, a, b):
    """acc + per int32 lane the sum of four u8(a) x s8(b) byte products (vpdpbusd ymm where the
    host has VNNI, else the same sum in plain IR)."""
    v32 = acc.type
    if cpu.has_vnni():
        return builder.call(vpdpbusd_fn(builder, 8), [acc, a, b])
    b8, w32 = ir.VectorType(ir.IntType(8), 32), ir.VectorType(_I32C, 32)
    prod = builder.mul(builder.zext(builder.bitcast(a, b8), w32), builder.sext(builder.bitcast(b, b8), w32))
    for k in range(4):
        acc = builder.add(acc, builder.shuffle_vector(prod, prod, ir.Constant(v32, [4 * i + k for i in range(8)])))
    return acc


_quad_sums_9 = _make_quad_sums(9)       # 3x3: three quads (the last three taps weight 0)
_quad_sums_25 = _make_quad_sums(25)     # 5x5: seven quads


def _pack_quads(wrow, taps, lanes, signed):
    """The byte pack of _make_quad_sums for a (taps*lanes,) int32 weight row (values in int8),
    the lanes zero-padded to whole 32-lane groups, as an int16 array (the kernels read its bytes):
    per group, w[q, j, k, 4-byte tap quad] then corr[j, k] int32 (-128 * the lane's weight sum for
    a signed x, else 0), lane 16*(k // 4) + 4j + k % 4."""
    nq = -(-taps // 4)
    ng = -(-lanes // QUAD)
    w = np.zeros((4 * nq, ng * QUAD), np.int64)
    w[:taps, :lanes] = wrow.reshape(taps, lanes)
    lane = np.array([16 * (k // 4) + 4 * j + k % 4 for j in range(4) for k in range(8)])   # (j, k) order
    wq = w.reshape(nq, 4, ng, QUAD)[:, :, :, lane].reshape(nq, 4, ng, 4, 8)                 # (q, tap, g, j, k)
    wq = wq.transpose(2, 0, 3, 4, 1).astype(np.int8)                                       # (g, q, j, k, tap)
    corr = (-128 * w.sum(axis=0) if signed else 0 * w.sum(axis=0)).reshape(ng, QUAD)[:, lane]
    corr = np.ascontiguousarray(((corr + 2**31) % 2**32 - 2**31).astype(np.int32).reshape(ng, 32))
    out = np.concatenate([np.ascontiguousarray(wq.reshape(ng, -1)).view(np.uint8), corr.view(np.uint8)], axis=1)
    return np.ascontiguousarray(out).reshape(-1).view(np.int16)


@kernel(inline="always")
def _finish_run(acc, lanes, rows, r0, df, d0, fl):
    """df[d0 + i] for i < lanes from the run's sums and the rows' lanes r0 + i: crow holds
    int32(-zp*sum w + bias) (int32, 8-bit dst) or int32(-zp*sum w) (int64 dst, bias in brow)."""
    crow, brow, mrow = rows[1][r0:], rows[2][r0:], rows[3][r0:]
    requant, is64, zpf, flo, fhi = fl
    if requant:
        for i in range(lanes):
            t = np.int32(acc[i] + crow[i])
            df[np.uint64(d0 + i)] = np.int32(ort_round(t, mrow[i], flo, fhi) + zpf)
    elif is64:
        for i in range(lanes):
            df[np.uint64(d0 + i)] = np.int64(np.int32(acc[i] + crow[i])) + brow[i]
    else:
        for i in range(lanes):
            df[np.uint64(d0 + i)] = np.int32(acc[i] + crow[i])


_XN, _XH, _XW, _XC, _OH, _OW, _OM, _X_NCHW, _OUT_NCHW, _MC, _QUADS = range(11)


@kernel(inline="always")
def _impl_consts(x, geo, dst, shape, dims):
    """(wq, hbm, toff, jr, buf, nblk, acc, runs, xst, ost) of an impl: padded row length, block
    rows, tap offsets, phase column ranges, the block buffer, the blocks per image, a run's int32
    sums, an item's run list (_item_runs), and the channels-last staging of an NCHW x's block
    rows and of an NCHW dst's block (empty for NHWC sides)."""
    w_, c_, oh_, ow_, m_ = dims[_XW], dims[_XC], dims[_OH], dims[_OW], dims[_OM]
    kh_, sh, dh = geo[_K], geo[_SH], geo[_DH]
    rb = shape[1]
    wq = ow_ + ((geo[_KW] - 1) * geo[_DW]) // geo[_SW]
    hbm = (rb - 1) * sh + (kh_ - 1) * dh + 1
    g = geo.copy()
    g[_SH] = 1
    toff = fd._tap_offsets(g, hbm, wq, m_)
    jr = fd._phase_ranges(w_, geo, wq)
    buf = np.empty(geo[_SW] * hbm * wq * m_ + QUAD, x.dtype)     # (slack: a last quad group reads past a run)
    acc = np.empty(shape[0] * m_ + QUAD, np.int32)[:shape[0] * m_]    # (its size is a run's row length)
    runs = np.empty((rb * -(-ow_ // shape[0]), 3), np.int64)
    xst = np.empty(hbm * w_ * c_ if dims[_X_NCHW] else 0, x.dtype)
    ost = np.empty(rb * ow_ * m_ if dims[_OUT_NCHW] else 0, dst.dtype)
    return wq, hbm, toff, jr, buf, -(-oh_ // rb), acc, runs, xst, ost


@kernel(inline="always")
def _item_runs(x, zp, geo, shape, dims, item, consts):
    """Fill the block buffer of one item and list its runs. Items are chunk-major: item =
    (ch*N + n)*blocks + b covers output rows oy0 = b*RB .. oy1-1 of image n and the output lanes
    l0 = ch*MC .. l1-1 (MC = dims[_MC]; one chunk of all M lanes unless the bind split the
    channels, which it does only with T = 1). The buffer gets the chunk's input channels (an
    NCHW x's block rows transposed into the staging first, MC/mult channels per pixel); runs[r] =
    (a0 in the buffer, d0 in dst's flat view or, for an NCHW dst, in the staging block, lanes).
    Returns (count, n, oy0, oy1, l0, l1)."""
    nx, h_, w_, c_, oh_, ow_, m_ = dims[_XN], dims[_XH], dims[_XW], dims[_XC], dims[_OH], dims[_OW], dims[_OM]
    kh_, sh, dh = geo[_K], geo[_SH], geo[_DH]
    wq, hbm, _, jr, buf, nblk, _, runs, xst, _ = consts
    tpix, mc = shape[0], dims[_MC]
    mult_ch = m_ // c_
    ch, rest = item // (nx * nblk), item % (nx * nblk)
    n, oy0 = rest // nblk, (rest % nblk) * shape[1]
    oy1 = min(oh_, oy0 + shape[1])
    l0 = ch * mc
    l1 = min(m_, l0 + mc)
    c0, c1 = l0 // mult_ch, l1 // mult_ch
    iy0, hb = oy0 * sh - geo[_PT], (oy1 - oy0 - 1) * sh + (kh_ - 1) * dh + 1
    xf = x.reshape(x.size)
    if dims[_X_NCHW]:
        cc = c1 - c0
        lo, hi = max(0, iy0), min(h_, iy0 + hb)
        if hi > lo:
            conv_rows._transpose(xf, ((n * c_ + c0) * h_ + lo) * w_, h_ * w_, cc, (hi - lo) * w_, xst, np.int64(0), cc,
                                 xf.size, xst.size)
        _fill_block(xst, -lo * w_ * cc - c0, h_, w_, cc, c0, c1, mult_ch, m_, zp, geo, iy0, hb, hbm, wq, jr, buf)
    else:
        _fill_block(xf, n * h_ * w_ * c_, h_, w_, c_, c0, c1, mult_ch, m_, zp, geo, iy0, hb, hbm, wq, jr, buf)
    count = 0
    d_img = 0 if dims[_OUT_NCHW] else (n * oh_ + oy0) * ow_
    for oy in range(oy0, oy1):
        for ox0 in range(0, ow_, tpix):
            runs[count, 0] = ((oy - oy0) * sh * wq + ox0) * m_ + l0
            runs[count, 1] = (d_img + (oy - oy0) * ow_ + ox0) * m_ + l0
            runs[count, 2] = min(tpix, ow_ - ox0) * m_ if mc == m_ else l1 - l0
            count += 1
    return count, n, oy0, oy1, l0, l1


@kernel(inline="always")
def _finish_item(dst, dims, consts, n, oy0, oy1, l0, l1):
    """An NCHW dst: lanes l0..l1-1 of the item's staged channels-last block to their planes
    (16x16 byte tiles when the block has >= 16 pixels or is the whole image, whose tile
    overruns stay in the chunk's planes; else a plain loop). Nothing for an NHWC dst (the runs
    wrote it)."""
    if not dims[_OUT_NCHW]:
        return
    oh_, ow_, m_ = dims[_OH], dims[_OW], dims[_OM]
    ost = consts[9]
    df = dst.reshape(dst.size)
    pix, plane = (oy1 - oy0) * ow_, oh_ * ow_
    d0 = n * m_ * plane + oy0 * ow_
    if pix >= 16 or pix == plane:
        conv_rows._transpose(ost, l0, m_, pix, l1 - l0, df, d0 + l0 * plane, plane, pix * m_,
                             (n * m_ + l1) * plane)
    else:
        conv_rows._transpose_scalar(ost, 0, m_, 0, pix, l0, l1, df, d0, plane)


@kernel(inline="always")
def _run_target(dst, dims, consts):
    """Where the runs' results go: the NCHW staging block, or dst's flat view."""
    return consts[9] if dims[_OUT_NCHW] else dst.reshape(dst.size)


@kernel
def _nhwc_impl(x, zp, geo, rows, dst, fl, shape, dims, i0, i1):
    """Items i0..i1-1 (_item_runs); shape = (T, RB); dims = [N, H, W, C, OH, OW, M, x is NCHW,
    dst is NCHW, MC]. Portable: plain int32 lane loops (LLVM vectorises them)."""
    consts = _impl_consts(x, geo, dst, shape, dims)
    toff, buf, acc, runs = consts[2], consts[4], consts[6], consts[7]
    df = _run_target(dst, dims, consts)
    for item in range(i0, i1):
        count, n, oy0, oy1, l0, l1 = _item_runs(x, zp, geo, shape, dims, item, consts)
        wrow = rows[0][l0:]
        for r in range(count):
            a0, d0, lanes = runs[r, 0], runs[r, 1], runs[r, 2]
            if toff.size == 9:
                _run_sums_9(buf, toff, wrow, a0, lanes, acc)
            else:
                _run_sums(buf, toff, wrow, a0, lanes, acc)
            _finish_run(acc, lanes, rows, l0, df, d0, fl)
        _finish_item(dst, dims, consts, n, oy0, oy1, l0, l1)


@kernel
def _nhwc_impl_pairs(x, zp, geo, rows, wpk, dst, fl, shape, dims, i0, i1):
    """_nhwc_impl for 3x3 and 5x5 kernels on AVX2: the sums of whole 16-lane groups by
    _pair_sums_5 / _pair_sums_13 (vpmaddwd over the int16 weight pairs wpk of _pack_pairs), or,
    when dims[_QUADS], of all lanes by _quad_sums_9 / _quad_sums_25 (vpdpbusd over the byte pack
    wpk of _pack_quads, 32-lane groups, the last one running past the run into slack lanes of
    the buffer, the sums and the zero-padded pack, its extra sums never stored); a chunk starts
    on a group; with pairs, the lanes after the last 16-lane group by the plain loop."""
    consts = _impl_consts(x, geo, dst, shape, dims)
    toff, buf, acc, runs = consts[2], consts[4], consts[6], consts[7]
    taps = toff.size
    pt = taps + 1                       # taps padded to whole pairs (the last weight 0)
    toff2 = np.empty(pt, np.int64)
    toff2[:taps] = toff
    toff2[taps] = toff[taps - 1]
    quads = dims[_QUADS] != 0
    qstep = 2 * (-(-taps // 4) + 1)     # int16 elements of the quad pack per lane (4Q + 4 bytes)
    df = _run_target(dst, dims, consts)
    for item in range(i0, i1):
        count, n, oy0, oy1, l0, l1 = _item_runs(x, zp, geo, shape, dims, item, consts)
        wrow = rows[0][l0:]
        wpc = wpk[l0 * qstep:] if quads else wpk[(l0 // GROUP) * pt * GROUP:]
        for r in range(count):
            a0, d0, lanes = runs[r, 0], runs[r, 1], runs[r, 2]
            if quads:       # whole groups, the last one past the run's lanes (slack in buf, acc, wpk)
                whole = lanes
                if taps == 9:
                    _quad_sums_9(buf, toff, wpc, a0, -(-lanes // QUAD), acc)
                else:
                    _quad_sums_25(buf, toff, wpc, a0, -(-lanes // QUAD), acc)
            else:
                whole = lanes - lanes % GROUP
                if taps == 9:
                    _pair_sums_5(buf, toff2, wpc, a0, whole // GROUP, acc)
                else:
                    _pair_sums_13(buf, toff2, wpc, a0, whole // GROUP, acc)
            _lane_sums(buf, toff, wrow, a0, whole, lanes, acc)
            _finish_run(acc, lanes, rows, l0, df, d0, fl)
        _finish_item(dst, dims, consts, n, oy0, oy1, l0, l1)


def _pack_pairs(wrow, taps, lanes):
    """The int16 weight pairs of _pair_sums_5 / _pair_sums_13 for a (taps*lanes,) int32 weight row
    (taps odd, values in int16), P = (taps + 1) / 2 pairs: wpk[((g*P + p)*2 + h)*16 + 2k + j] =
    wrow[(2p + j)*lanes + 16g + (_LO, _HI)[h][k]] (zero for tap `taps`), for the lanes' whole
    16-lane groups g."""
    ng, npairs = lanes // GROUP, (taps + 1) // 2
    w = np.zeros((2 * npairs, ng * GROUP), np.int16)
    w[:taps] = wrow.reshape(taps, lanes)[:, :ng * GROUP]
    w = w.reshape(npairs, 2, ng, GROUP)[:, :, :, list(_LO + _HI)]           # (p, j, g, lane order)
    return np.ascontiguousarray(w.reshape(npairs, 2, ng, 2, 8).transpose(2, 0, 3, 4, 1)).reshape(-1)


# ------------------------------------------------------------------------------- plan
class DepthwiseNhwcPlan(NamedTuple):
    """A depthwise NHWC conv's constants, prepared once for one x/dst shape and dtype."""
    x_shape: tuple
    x_dtype: np.dtype
    dst_shape: tuple
    dst_dtype: np.dtype
    x_zp: int
    geo: np.ndarray
    rows: tuple       # wrow (taps*T*M,) int32, crow (T*M,) int32, brow (T*M,) int64, mrow (T*M,) f32
    fl: tuple         # (requant, is64, f32 zp, f32(lo - zp), f32(hi - zp))
    shape: tuple      # (T pixels per run, RB output rows per block)
    work: int         # multiply-adds of one call
    wpk: np.ndarray | None = None   # int16 weight pairs (_pack_pairs): the AVX2 3x3 path; None: plain loops
    quads: bool = False             # wpk is _pack_quads' byte pack (the VNNI path)


def _validate(x, x_zp, wz, bias, geo, dst, rq) -> int:
    """ValueError naming the first bad argument (fast_depthwise's checks on NHWC shapes);
    returns KH*KW."""
    fd._check_array(x, "x", 4, fd._X_DTYPES)
    fd._check_int("x_zp", x_zp, *fd._RANGE[x.dtype])
    fd._check_array(dst, "dst", 4, fd._DST_DTYPES)
    fd._check_array(wz, "wz", 2, fd._I32_SET)
    fd._check_array(bias, "bias", 1, fd._I64_SET)
    n, c, m = x.shape[0], x.shape[3], dst.shape[3]
    if min(x.shape) < 1 or min(dst.shape) < 1:
        fd._fail("x", f"{x.shape} and dst {dst.shape} must not be empty")
    if dst.shape[0] != n or m % c:
        fd._fail("dst", f"shape {dst.shape} must be (N={n}, OH, OW, M = C*mult with C={c})")
    taps = fd._check_geo(geo, _as_nchw(x), _as_nchw(dst))
    if wz.shape != (m, taps):
        fd._fail("wz", f"must be (M, KH*KW) = {(m, taps)}, got {wz.shape}")
    if bias.shape != (m,):
        fd._fail("bias", f"must be ({m},), got {bias.shape}")
    fd._check_rq(rq, dst, m)
    return taps


def _as_nchw(a):
    """The (N, C, H, W) view of an (N, H, W, C) array (shape only: fd._check_geo reads shapes)."""
    return a.transpose(0, 3, 1, 2)


def _block_rows(x_shape, dst_shape, geo) -> int:
    """RB: output rows per item, the padded input rows fitting BUF_BYTES, and at least 8 items."""
    n, oh = dst_shape[0], dst_shape[1]
    return max(1, min(oh, _rows_in_buffer(dst_shape, tuple(int(v) for v in geo), BUF_BYTES), -(-n * oh // 8)))


def _rows_in_buffer(dst_shape, geo, buf_bytes) -> int:
    """The most output rows per block whose padded input rows (all sw phases) fit buf_bytes
    (may be < 1 for a very wide row)."""
    ow, m = dst_shape[2], dst_shape[3]
    kh, kw, sh, sw, _, _, dh, dw = geo
    wq = ow + ((kw - 1) * dw) // sw
    return (buf_bytes // (sw * wq * m) - (kh - 1) * dh - 1) // sh + 1


def plan_depthwise_nhwc(x, x_zp, wz, bias, geo, dst, rq, isa: str | None = None) -> DepthwiseNhwcPlan:
    """Check the arguments (ValueError naming the bad one) and prepare the tiled weights, the
    folded zero-point/bias row and the requant row for x's and dst's shapes and dtypes.
    isa (None: kernels.cpu.best_isa()): "portable" runs plain loops; any other ISA (all have
    AVX2) runs 3x3 kernels with int16 weights (|wz| <= 32767) by vpmaddwd pairs."""
    taps = _validate(x, x_zp, wz, bias, geo, dst, rq)
    m = dst.shape[3]
    tpix = max(1, min(dst.shape[2], (LANES + m // 2) // m))
    is64 = dst.dtype == np.int64
    requant = bool(rq[0])
    zsum = -int(x_zp) * wz.astype(np.int64).sum(axis=1) + (0 if is64 else bias)
    crow = ((zsum + 2**31) % 2**32 - 2**31).astype(np.int32)
    mult = rq[1] if requant else np.zeros(m, np.float32)
    rows = (np.ascontiguousarray(np.tile(wz.T, (1, tpix)).reshape(-1)), np.tile(crow, tpix),
            np.tile(bias, tpix), np.tile(mult.astype(np.float32), tpix))
    zp = int(rq[2]) if requant else 0
    fl = (requant, bool(is64), np.float32(zp), np.float32(int(rq[3]) - zp) if requant else np.float32(0),
          np.float32(int(rq[4]) - zp) if requant else np.float32(0))
    quads = _use_quads(isa, taps, wz, tpix * m)
    if quads:
        wpk = _pack_quads(rows[0], taps, tpix * m, x.dtype == np.int8)
    else:
        wpk = _pack_pairs(rows[0], taps, tpix * m) if _use_pairs(isa, taps, wz, tpix * m) else None
    return DepthwiseNhwcPlan(x.shape, x.dtype, dst.shape, dst.dtype, int(x_zp), geo.copy(), rows, fl,
                             (tpix, _block_rows(x.shape, dst.shape, geo)), int(np.prod(dst.shape)) * taps, wpk, quads)


def _use_quads(isa, taps, wz, lanes) -> bool:
    """The vpdpbusd path: a VNNI ISA (avxvnni, avx512vnni, amx; checked by _use_pairs), 3x3 or
    5x5 taps, int8 weights, at least one 32-lane group."""
    return (_use_pairs(isa, taps, wz, lanes) and (cpu.best_isa() if isa is None else isa) in VNNI_ISAS
            and lanes >= QUAD and -128 <= int(wz.min()) and int(wz.max()) <= 127)


VNNI_ISAS = ("amx", "avx512vnni", "avxvnni")


def _use_pairs(isa, taps, wz, lanes) -> bool:
    """The vpmaddwd path: a non-portable ISA, 3x3 or 5x5 taps (PAIR_TAPS), int16 weights, at least
    one 16-lane group."""
    isa = cpu.best_isa() if isa is None else isa
    if isa not in cpu.ISAS:
        fd._fail("isa", f"must be one of {cpu.ISAS}, got {isa!r}")
    if isa != "portable" and cpu.missing(isa):
        fd._fail("isa", f"{isa!r} cannot run here: {cpu.missing(isa)}")
    return (isa != "portable" and taps in PAIR_TAPS and lanes >= GROUP and wz.size > 0
            and -2**15 <= int(wz.min()) and int(wz.max()) < 2**15)


@kernel(parallel=True)
def _par_nhwc(x, zp, geo, rows, dst, fl, shape, dims, n_items, parts):
    """_nhwc_impl over items 0..n_items-1 in `parts` ranges on Numba's parallel threads."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _nhwc_impl(x, zp, geo, rows, dst, fl, shape, dims, i0, i1)


@kernel(parallel=True)
def _par_nhwc_pairs(x, zp, geo, rows, wpk, dst, fl, shape, dims, n_items, parts):
    """_nhwc_impl_pairs as _par_nhwc runs _nhwc_impl."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _nhwc_impl_pairs(x, zp, geo, rows, wpk, dst, fl, shape, dims, i0, i1)


def run_depthwise_nhwc(plan: DepthwiseNhwcPlan, x, dst, threads=None) -> None:
    """dst = the planned conv of x; x and dst must have the planned shapes and dtypes and be
    C-contiguous ndarrays (ValueError naming the bad one)."""
    _run_planned(plan, x, dst, False, False, threads)


ITEM_COST = 1024        # the fixed cost of an item (loop set-up, staging calls) in lane-pixels (_split's model)
FILL_COST = 0.25        # the cost of filling one buffer lane-pixel relative to one output lane-pixel (ditto)
MIN_CHUNK = 64          # the fewest output lanes a channel chunk of _split gets


def _split(plan: DepthwiseNhwcPlan, threads: int, out_nchw: bool):
    """(shape, MC, items) of a call on `threads` threads: the rows per item RB and the lanes per
    channel chunk MC (M, or, for runs of one pixel, a multiple of CHUNK and of the channel
    multiplier), chosen so that the items, cut into `threads` contiguous ranges as the kernel
    cuts them, give the smallest longest range; ties go to fewer items. RB stays within the
    buffer budget (BUF_BYTES), and an NCHW dst keeps blocks of >= 16 pixels where the map
    allows. The cost model: an item of r output rows and l lanes costs
    l*(r*OW + FILL_COST*hb*WQ) + ITEM_COST with hb = (r - 1)*sh + (KH - 1)*dh + 1 buffer rows.
    One thread: one chunk, the rows of _serial_rows within the budget SERIAL_BUF_BYTES."""
    return _split_shape(tuple(plan.dst_shape), tuple(plan.shape), int(plan.x_shape[3]),
                        tuple(int(v) for v in plan.geo), int(threads), bool(out_nchw),
                        SERIAL_BUF_BYTES if threads <= 1 else BUF_BYTES)


def _serial_rows(oh: int, rb_plan: int, rb_hi: int) -> int:
    """RB on one thread: the fewest blocks of at most rb_hi rows (each block refills its
    (KH - 1)*dh halo rows, and transposes them again for an NCHW x), their rows balanced (a
    short last block would drop an NCHW dst's 16x16 tiles for the scalar loop), at least
    rb_plan rows (an NCHW dst's >= 16-pixel blocks). MobileNetV2's 7x7x960 layer, NCHW both
    sides: 3 blocks of 3, 3, 1 rows 53 us -> 2 blocks of 4, 3 rows 42 us (one thread)."""
    nblk = -(-oh // rb_hi)
    return max(rb_plan, -(-oh // nblk))


@functools.lru_cache(maxsize=256)
def _split_shape(dst_shape, shape, c, geo, threads, out_nchw, buf_bytes):
    n, oh, ow, m = dst_shape
    tpix, rb_plan = shape
    rb_hi = max(rb_plan, min(oh, _rows_in_buffer(dst_shape, geo, buf_bytes)))
    if threads <= 1:
        rb = _serial_rows(oh, rb_plan, rb_hi)
        return (tpix, rb), m, n * -(-oh // rb)
    kh, kw, sh, sw, _, _, dh, dw = geo
    wq = ow + ((kw - 1) * dw) // sw
    rb_lo = min(rb_plan, oh, -(-16 // ow)) if out_nchw else 1
    q = math.lcm(CHUNK, m // c)
    chunks = {m}
    if tpix == 1:
        for k in range(2, 2 * threads + 1):
            mc = -(-(-(-m // k)) // q) * q
            if MIN_CHUNK <= mc < m:
                chunks.add(int(mc))
    best = None
    for rb in range(rb_lo, rb_hi + 1):
        nblk = -(-oh // rb)
        rows = [min(oh, (b + 1) * rb) - b * rb for b in range(nblk)]
        for mc in sorted(chunks, reverse=True):
            costs = [(min(m, l0 + mc) - l0) * (r * ow + FILL_COST * ((r - 1) * sh + (kh - 1) * dh + 1) * wq)
                     + ITEM_COST for l0 in range(0, m, mc) for _ in range(n) for r in rows]
            items = len(costs)
            parts = min(threads, items)
            span = max(sum(costs[items * p // parts:items * (p + 1) // parts]) for p in range(parts))
            key = (span, items, -mc)
            if best is None or key < best[0]:
                best = (key, (tpix, rb), mc, items)
    return best[1:]


def _split_run(run, items, threads):
    """run(i0, i1) over range(items), one chunk per thread (kernels.threads.parallel_items;
    measured a little faster than 2 or 4 chunks per thread at batch 1 and 8 on a shared host)."""
    parallel_items(run, items, threads=threads, per_thread=1)


def _nchw_shape(shape):
    return (shape[0], shape[3], shape[1], shape[2])


def _run_planned(plan: DepthwiseNhwcPlan, x, dst, x_nchw: bool, out_nchw: bool, threads=None) -> None:
    """run_depthwise_nhwc with x and/or dst in NCHW (the planned NHWC shapes transposed),
    transposed inside the kernel block by block."""
    _bind_planned(plan, x_nchw, out_nchw, threads)(x, dst)


def _bind_planned(plan: DepthwiseNhwcPlan, x_nchw: bool, out_nchw: bool, threads=None):
    """_run_planned with everything but x and dst fixed (threads taken now): call(x, dst) checks
    that both are C-contiguous ndarrays of the planned shapes and dtypes (ValueError naming the
    bad one), then runs the kernel: as one Numba parallel region (kernels.threads.native_split)
    or through _split_run (one thread or the pool)."""
    x_shape = _nchw_shape(plan.x_shape) if x_nchw else plan.x_shape
    dst_shape = _nchw_shape(plan.dst_shape) if out_nchw else plan.dst_shape
    threads = get_num_threads() if threads is None else int(threads)
    if plan.work < (NATIVE_SERIAL_WORK if native_split(threads) else SERIAL_WORK):
        threads = 1
    n, oh, ow, m = plan.dst_shape
    shape, mc, items = _split(plan, threads, out_nchw)
    dims = np.array(plan.x_shape + (oh, ow, m, int(x_nchw), int(out_nchw), mc, int(plan.quads)), np.int64)
    head = (np.int64(plan.x_zp), plan.geo, plan.rows) + (() if plan.wpk is None else (plan.wpk,))
    tail = (plan.fl, shape, dims)
    impl, par = (_nhwc_impl, _par_nhwc) if plan.wpk is None else (_nhwc_impl_pairs, _par_nhwc_pairs)
    native = native_split(threads) and items > 1
    parts = np.int64(min(threads, items))
    x_dtype, dst_dtype = plan.x_dtype, plan.dst_dtype

    def check(x, dst):
        if not (type(x) is np.ndarray and x.shape == x_shape and x.dtype == x_dtype and x.flags.c_contiguous):
            _bad_array("x", x, x_shape, x_dtype)
        if not (type(dst) is np.ndarray and dst.shape == dst_shape and dst.dtype == dst_dtype
                and dst.flags.c_contiguous):
            _bad_array("dst", dst, dst_shape, dst_dtype)

    def call(x, dst):
        check(x, dst)
        if native and native_call(par, threads, x, *head, dst, *tail, items, parts):
            return
        if threads <= 1 or native:          # (native: a forked child, which starts no regions)
            impl(x, *head, dst, *tail, 0, items)
        else:
            _split_run(lambda i0, i1: impl(x, *head, dst, *tail, i0, i1), items, threads)

    def freeze(x, dst):
        """call(x, dst) on these very arrays as a call(), checked now (the kernel itself on one thread)."""
        if threads > 1 or native:
            return partial(call, x, dst)
        check(x, dst)
        return partial(impl, x, *head, dst, *tail, 0, items)
    call.freeze = freeze
    return call


def _bad_array(name, a, shape, dtype):
    fd._fail(name, f"must be a C-contiguous {dtype} array of shape {shape}, got "
             f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")


def depthwise_nhwc(x, x_zp, wz, bias, geo, dst, rq, threads=None) -> None:
    """dst = the depthwise conv of the module docstring (fast kernels); raises ValueError naming
    the bad argument. threads: the pool size of kernels.threads.parallel_items (None: its default)."""
    run_depthwise_nhwc(plan_depthwise_nhwc(x, x_zp, wz, bias, geo, dst, rq), x, dst, threads)


def depthwise_nhwc_ref(x, x_zp, wz, bias, geo, dst, rq, threads=None) -> None:
    """NumPy int64 twin of depthwise_nhwc (no validation; threads is ignored), channels last:
    kernels.fast_depthwise.depthwise_ref (so kernels.conv.conv2d_acc_ref) on NCHW copies."""
    d = np.empty((dst.shape[0], dst.shape[3], dst.shape[1], dst.shape[2]), dst.dtype)
    fd.depthwise_ref(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), x_zp, wz, bias, geo, d, rq)
    dst[...] = d.transpose(0, 2, 3, 1)


# ------------------------------------------------------------------------------- layers
SMALL_MAP = 1 << 16     # output pixels up to which an NCHW layer runs channels-last inside. With the
                        # in-kernel transposes this was faster than the NCHW kernel at every size measured
                        # (AVX-512 host, batch 1, 2 threads, us: 32x112x112 197 vs 267, 16x224x224 325 vs
                        # 454, 64x112x112 375 vs 509, 32x112x112 s2 110 vs 330; batch 8 1050-1310 vs
                        # 1220-1270); on the AVX2 host it tied at 112x112 and won below 4096 pixels


class DepthwiseLayer(NamedTuple):
    """A depthwise conv layer for one input shape: the NCHW plan (kernels.fast_conv.DepthwisePlan)
    and the channels-last plan of the same constants (to_nchw: its blocks sized for an NCHW dst,
    at least 16 output pixels each where the map allows)."""
    nchw: tuple
    nhwc: DepthwiseNhwcPlan
    out_shape: tuple      # (N, OH, OW, M)
    to_nchw: DepthwiseNhwcPlan | None = None


def plan_depthwise_layer(plan, x_shape, x_dtype, out_dtype) -> DepthwiseLayer:
    """The layer of an NCHW depthwise plan (kernels.fast_conv.plan_depthwise) for x of NCHW
    shape x_shape, writing out_dtype (ValueError naming a bad argument)."""
    n, c, h, w = (int(v) for v in x_shape)
    kh, kw, sh, sw, pt, pl, dh, dw = (int(v) for v in plan.geo)
    g = plan.pc.geom
    oh, ow = conv_out_hw(h, w, kh, kw, ConvGeom(sh, sw, pt, pl, g.pad_bottom, g.pad_right, dh, dw, g.group))
    m = plan.pc.m
    out_shape = (n, oh, ow, m)
    nhwc = plan_depthwise_nhwc(np.empty((n, h, w, c), x_dtype), plan.x_zp, plan.pc.wz, plan.bias, plan.geo,
                               np.empty(out_shape, out_dtype), plan.rq)
    tpix, rb = nhwc.shape
    to_nchw = nhwc._replace(shape=(tpix, min(oh, max(rb, -(-16 // ow)))))
    return DepthwiseLayer(plan, nhwc, out_shape, to_nchw)


def run_depthwise_layer(layer: DepthwiseLayer, x, out, x_layout: str = "nchw", out_layout: str = "nchw") -> None:
    """out = the layer's depthwise conv of x; x (N, C, H, W) or (N, H, W, C) for x_layout "nhwc",
    out (N, M, OH, OW) or (N, OH, OW, M), C-contiguous (checked, ValueError naming the bad one).
    NCHW sides are transposed block by block inside the channels-last kernel, except an
    NCHW-to-NCHW layer with more than SMALL_MAP output pixels, which runs the NCHW kernel."""
    bind_depthwise_layer(layer, x_layout, out_layout)(x, out)


def bind_depthwise_layer(layer: DepthwiseLayer, x_layout: str = "nchw", out_layout: str = "nchw"):
    """run_depthwise_layer for one layout pair with its per-call constants computed once (the
    kernel thread count, kernels.threads.get_num_threads(), is taken now): call(x, out), and
    call.freeze(x, out) -> call() for these very arrays."""
    n, oh, ow, m = layer.out_shape
    if x_layout not in ("nchw", "nhwc") or out_layout not in ("nchw", "nhwc"):
        fd._fail("layout", f"must be 'nchw' or 'nhwc', got {x_layout!r}, {out_layout!r}")
    if x_layout == out_layout == "nchw" and oh * ow > SMALL_MAP:
        run = partial(run_depthwise_plan, layer.nchw)
        run.freeze = partial(partial, run)
        return run
    x_nchw, out_nchw = x_layout == "nchw", out_layout == "nchw"
    plan = layer.to_nchw if out_nchw and layer.to_nchw is not None else layer.nhwc
    run = _bind_planned(plan, x_nchw, out_nchw)
    if not x_nchw:
        return run

    def call(x, out):
        run(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x, out)

    def freeze(x, out):
        """call(x, out) on these very arrays as a call(): the planned kernel's own freeze (its
        checks done now) when x is already C-contiguous (no copy to make per call)."""
        if isinstance(x, np.ndarray) and x.flags.c_contiguous:
            return run.freeze(x, out)
        return partial(call, x, out)
    call.freeze = freeze
    return call


def bind_depthwise(plan, x_shape, x_dtype, out_dtype, x_layout: str = "nchw", out_layout: str = "nchw"):
    """bind_depthwise_layer of plan_depthwise_layer(plan, x_shape, x_dtype, out_dtype): the
    NCHW depthwise plan (kernels.fast_conv.plan_depthwise) bound to one input shape and layout pair."""
    return bind_depthwise_layer(plan_depthwise_layer(plan, x_shape, x_dtype, out_dtype), x_layout, out_layout)
