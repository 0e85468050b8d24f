"""Fast exact integer GEMM: weights packed once into panels, a register-blocked SIMD
micro-kernel, cache blocking over K and N, threads over (M, N) blocks.

Contract (same as kernels.gemm.gemm_acc, for a in uint8/int8 and b in int8/uint8, int4 weights
given as int8 values):

    acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n])

How it is computed. `pack_b` stores bw[k, n] = b[k, n] - b_zp[n] (|bw| <= 383, so int16) and the
column sums S[n] = sum_k bw[k, n]. At run time, with a' = a + o:

    acc[m, n] = (bias[n] - (a_zp + o) * S[n]) + sum_k a'[m, k] * bw[k, n]

- isa "avx2" (o = 0): vpmaddwd multiplies int16 pairs (a'[m,2s], a'[m,2s+1]) x (bw[2s,n], bw[2s+1,n])
  and sums each pair exactly in int32 (|pair| <= 2*255*383 < 2**18); no saturation anywhere.
- isa "avx512vnni" (o = 128 for int8 a, else 0): vpdpbusd sums four u8 x s8 products exactly
  in int32; used only when every bw fits int8, otherwise the avx2 panels are used.
  (An "avxvnni" host, VEX vpdpbusd on ymm only, gets the avx2 panels for now.)
- isa "portable": kernels.gemm.gemm_acc (plain Numba loops).
The sum runs in int32 and wraps mod 2**32, so an int32 `acc` equals the exact sum wrapped to
int32 (as kernels.gemm stores it). An int64 `acc` is exact: when the bound
|bias[n]| + max|a - a_zp| * sum_k |bw[k, n]| may leave int32, the exact portable kernel runs.

The fused variant writes the ORT float requantization (kernels.requant) from the int32 tile:
    y[m, n] = clamp(rint_half_even(f32(acc[m, n]) * mult[n]) + zp, lo, hi), all float32.
Earlier K blocks accumulate int32 sums in a per-item block; in the last K block the
micro-kernel requantizes its registers and stores bytes into y (kernels.simd, `q_target`:
an 8-bit y with unit column stride and any row stride >= N). Other outputs (transposed,
column-strided) go through the int32 block and `epilogue`.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from numba import prange

from . import cpu
from .gemm import gemm_acc, gemm_acc_ref
from .conv_rows import CONV_KIND, pack_conv_tiles
from .jit import kernel
from .requant import ort_round, ort_round_ref
from .simd import AVX2_MR, AVX2_NR, VNNI_MR, VNNI_NR, mk_avx2, mk_avx2_q, mk_vnni512, mk_vnni512_q
from . import threads
# The thread runtime lives in kernels.threads; these names stay importable from here.
from .threads import bind_items, get_num_threads, native_call, native_split, parallel_items, serial_here, \
    set_num_threads  # noqa: F401

KC_STEPS = 128            # longest K block (steps; see kc_steps): B block of 16 panels = 128 KiB, in L2
NC_PANELS = 16            # N block: 16 panels
MC_TILES = 16             # M block: at most 16 tiles of MR rows
_GEOM = {"avx2": (AVX2_MR, AVX2_NR, 2), "avx512vnni": (VNNI_MR, VNNI_NR, 4),
         "avx2-ubsw": (4, 16, 4)}   # kernels.fast_pairs' vpmaddubsw engine (its own MR, NR, G)


class PackedB(NamedTuple):
    """Weights prepared once. panels: 1-D, layout [panel][step][NR][G] (int16 for G=2,
    int8 for G=4), zero beyond K and N; col_sum/abs_sum: int64 (N,) of bw and |bw|."""
    isa: str
    k: int
    n: int
    steps: int
    panels: np.ndarray
    col_sum: np.ndarray
    abs_sum: np.ndarray
    b: np.ndarray
    b_zp: np.ndarray


def _ceil(a, b):
    return -(-a // b)


def _check_b(b, b_zp):
    if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype not in (np.int8, np.uint8):
        raise ValueError(f"pack_b: weight b must be a 2-D int8/uint8 array, got "
                         f"{getattr(b, 'dtype', type(b))} {getattr(b, 'shape', '')}")
    if min(b.shape) < 1:
        raise ValueError(f"pack_b: weight b has an empty shape {b.shape}")
    if b_zp.shape != (b.shape[1],):
        raise ValueError(f"pack_b: b_zp {b_zp.shape} must be ({b.shape[1]},)")
    info = np.iinfo(b.dtype)
    if b_zp.size and (b_zp.min() < info.min or b_zp.max() > info.max):
        raise ValueError(f"pack_b: b_zp outside the {b.dtype} range")


@kernel(inline="always")
def kc_steps(steps):
    """Steps per K block: the K loop cut into equal blocks of at most KC_STEPS (= 128) steps,
    the last one possibly shorter by less than the block count (a short last block would cost
    a C reload and a B re-stream for little work: K = 576 as 128 + 16 steps ran 12% slower)."""
    nb = (steps + 127) // 128
    return max(1, (steps + nb - 1) // max(nb, 1))


def k_block(steps: int) -> int:
    """Python twin of kc_steps: the K block (in steps) the packers and drivers use for `steps`."""
    nb = -(-int(steps) // KC_STEPS)
    return max(1, -(-int(steps) // max(nb, 1)))


@kernel
def pack_panels(bw, nr, g, steps, panels):
    """panels[(s0*n_panels + p*ns)*nr*g + ((s - s0)*nr + j)*g + t] = bw[s*g + t, p*nr + j] for
    K blocks s0 = 0, kc, 2kc... of ns = min(kc, steps - s0) steps, kc = kc_steps(steps) (0 outside
    bw): the panels of one K block are contiguous."""
    k_, n_ = bw.shape
    n_panels = panels.shape[0] // (steps * nr * g)
    kc = kc_steps(steps)
    for s0 in range(0, steps, kc):
        ns = min(kc, steps - s0)
        for p in range(n_panels):
            base = (s0 * n_panels + p * ns) * nr * g
            for s in range(ns):
                for j in range(nr):
                    col = p * nr + j
                    for t in range(g):
                        k = (s0 + s) * g + t
                        v = 0
                        if col < n_ and k < k_:
                            v = bw[k, col]
                        panels[base + (s * nr + j) * g + t] = v


def pack_b(b, b_zp, isa: str | None = None) -> PackedB:
    """Pack weights b (K, N) int8/uint8 with per-column zero points b_zp (N,) for `isa`
    (default kernels.cpu.best_isa())."""
    if not isinstance(b, np.ndarray) or b.ndim != 2:
        raise ValueError(f"pack_b: weight b must be a 2-D int8/uint8 array, got {type(b).__name__} "
                         f"{np.shape(b)}")
    b_zp = vector_arg(b_zp, b.shape[1], np.int64, "b_zp", "pack_b")
    _check_b(b, b_zp)
    isa = cpu.best_isa() if isa is None else isa
    if isa not in cpu.ISAS:
        raise ValueError(f"pack_b: unknown isa {isa!r}")
    bw = np.ascontiguousarray(b, np.int64) - b_zp[None, :]
    if isa == "avxvnni":            # no 256-bit VEX vpdpbusd micro-kernel yet: int16 panels
        isa = "avx2"
    if isa == "avx512vnni" and (bw.min() < -128 or bw.max() > 127):
        isa = "avx2"
    k, n = b.shape
    col_sum, abs_sum = bw.sum(0), np.abs(bw).sum(0)
    if isa == "portable":
        return PackedB(isa, k, n, 0, np.zeros(0, np.int16), col_sum, abs_sum, b.copy(), b_zp)
    _, nr, g = _GEOM[isa]
    steps = _ceil(k, g)
    panels = np.empty(_ceil(n, nr) * steps * nr * g, np.int16 if g == 2 else np.int8)
    pack_panels(bw, nr, g, steps, panels)
    return PackedB(isa, k, n, steps, panels, col_sum, abs_sum, b.copy(), b_zp)


# Source of A, packed per (M block, K block) inside the driver. geo (int64):
#   [kind, M, K, N, mc_tiles, trans, ...unused, (panels per item: optional, default NC)]
# kind 0: row-major A, A[m, k] = src[m*K + k].
# kind 2: column-major A, A[m, k] = src[k*M + m] (an im2col^T buffer, or x itself for 1x1).
G_KIND, G_M, G_K, G_N, G_MC, G_TRANS, G_C, G_H, G_W, G_OW, G_SH, G_SW, G_PT, G_PL, G_NP = range(15)


@kernel
def pack_block(src, geo, add, g, mr, t0, t1, s0, ns, apk):
    """Lanes of the A tiles t0..t1-1 for K block steps s0..s0+ns-1, row by row:
    apk[(((t - t0)*mr + r)*ns + s)*G + u] = A[t*mr + r, (s0 + s)*G + u] + add (so int32 word
    ((t - t0)*mr + r)*ns + s holds the G lanes of row r, step s, lowest first); zero for rows
    >= M and k >= K. apk: int16 (G=2) or uint8 (G=4, the sum & 0xFF), at least
    (t1 - t0)*mr*ns*G long. One loop nest, no calls: rows of a few bytes are common."""
    if geo[0] == CONV_KIND:          # implicit im2col: the tiles come from the NHWC image
        pack_conv_tiles(src, geo, add, g, mr, t0, t1, s0, ns, apk)
        return
    m_, k_ = geo[1], geo[2]
    kw, k0 = ns * g, s0 * g
    kn = max(0, min(kw, k_ - k0))
    for t in range(t0, t1):
        for r in range(mr):
            m, o = t * mr + r, ((t - t0) * mr + r) * kw
            out = apk[o:o + kw]            # views: unit-stride loops over them vectorize
            if m >= m_:
                out[:] = 0
                continue
            if geo[0] == 0:
                row = src[m * k_ + k0:m * k_ + k0 + kn]
                if add == 0:
                    for j in range(kn):
                        out[j] = row[j]
                else:
                    for j in range(kn):
                        out[j] = row[j] + add
            else:
                for j in range(kn):
                    out[j] = src[(k0 + j) * m_ + m] + add
            for j in range(kn, kw):
                out[j] = 0


@kernel
def epilogue(cblk, m0, n0, geo, dst, rq):
    """Write the valid part of an int32 block: dst[m, n] (trans=0) or dst[n, m] (trans=1),
    the sum itself or its ORT float requantization (rq = (requant, mult, zp, lo, hi))."""
    requant, mult, zp, lo, hi = rq
    flo, fhi = np.float32(lo - zp), np.float32(hi - zp)
    mi, nj = min(cblk.shape[0], geo[1] - m0), min(cblk.shape[1], geo[3] - n0)
    if geo[5] and requant:
        for j in range(nj):
            mj = mult[n0 + j]
            for i in range(mi):
                dst[n0 + j, m0 + i] = np.int64(ort_round(cblk[i, j], mj, flo, fhi)) + zp
    elif geo[5]:
        for j in range(nj):
            for i in range(mi):
                dst[n0 + j, m0 + i] = cblk[i, j]
    elif requant:
        mv = mult[n0:n0 + nj]
        zp32 = np.int32(zp)
        for i in range(mi):
            src, d = cblk[i, :nj], dst[m0 + i, n0:n0 + nj]      # row views: the loop vectorises
            for j in range(nj):
                d[j] = np.int32(ort_round(src[j], mv[j], flo, fhi)) + zp32     # in [lo, hi]: fits dst
    else:
        for i in range(mi):
            src, d = cblk[i, :nj], dst[m0 + i, n0:n0 + nj]      # row views: the copy vectorises
            for j in range(nj):
                d[j] = src[j]


@kernel(inline="always")
def item_bounds(item, geo, mr, nr, nc):
    """Tiles t0..t1-1 and panels p0..p1-1 of work item `item`: M blocks of geo[G_MC] tiles times
    N ranges of geo[G_NP] panels (a descriptor of 14 entries, as conv builds, uses nc)."""
    n_tiles, n_panels = (geo[1] + mr - 1) // mr, (geo[3] + nr - 1) // nr
    npi = geo[14] if geo.shape[0] > 14 and geo[14] > 0 else nc
    n_ni = (n_panels + npi - 1) // npi
    t0, p0 = (item // n_ni) * geo[4], (item % n_ni) * npi
    return t0, min(t0 + geo[4], n_tiles), p0, min(p0 + npi, n_panels)


@kernel(inline="always")
def c_target(dst, rq, geo, t1, p1, mr, nr):
    """True when an item's tiles (up to row t1*mr, column p1*nr) may be summed straight into dst:
    plain int32 sums (no requant, not transposed) into a row-contiguous dst, all tiles full."""
    return (not rq[0]) and geo[5] == 0 and dst.itemsize == 4 and dst.strides[1] == 4 and \
        dst.strides[0] > 0 and dst.strides[0] % 4 == 0 and t1 * mr <= geo[1] and p1 * nr <= geo[3]


@kernel(inline="always")
def a_in_place(geo, add, t1, mr):
    """True when a driver may read an item's A tiles (up to row t1*mr) straight from src: a
    row-major A (geo[0] == 0: not column-major, not a conv descriptor) of uint8 values taken as
    they are (add == 0), K % 4 == 0 (rows are whole u8 quads), all tiles full."""
    return geo[0] == 0 and add == 0 and geo[2] % 4 == 0 and t1 * mr <= geo[1]


@kernel(inline="always")
def q_target(dst, rq, geo):
    """True when the micro-kernels requantize in registers and store bytes straight into dst:
    requant, not transposed, an 8-bit dst with unit column stride and rows that do not overlap
    (row stride >= N bytes; any stride for one row)."""
    return rq[0] and geo[5] == 0 and dst.itemsize == 1 and dst.strides[1] == 1 and \
        (dst.strides[0] >= geo[3] or geo[1] == 1)


@kernel(inline="always")
def q_consts(rq, n_pad):
    """(mult padded with zeros to n_pad float32, float32 [lo - zp, hi - zp, zp]) for the
    requantizing micro-kernels (small integers: exact in float32)."""
    requant, mult, zp, lo, hi = rq
    mp = np.zeros(n_pad, np.float32)
    n = min(n_pad, mult.shape[0])
    mp[:n] = mult[:n]
    rqs = np.empty(3, np.float32)
    rqs[0], rqs[1], rqs[2] = np.float32(lo - zp), np.float32(hi - zp), np.float32(zp)
    return mp, rqs


@kernel(inline="always")
def cblk_size(direct, fused, steps, tiles, mr, ldc):
    """int32 words of an item's C block: none when summed into dst or when a requantized GEMM
    has a single K block (the micro-kernel starts from the offsets and stores bytes)."""
    return 0 if direct or (fused and steps <= kc_steps(steps)) else tiles * mr * ldc


@kernel(inline="always")
def driver_consts(geo, dst, rq, nr, g):
    """(steps, n_panels, fused, kc, qout) of a driver call (every driver's prologue): K steps of g
    lanes, N panels of nr columns, whether the last K block requantizes in registers into dst
    (q_target), the K block (kc_steps) and the micro-kernels' requant operands (dst, q_consts)."""
    steps, n_panels = (geo[2] + g - 1) // g, (geo[3] + nr - 1) // nr
    mp, rqs = q_consts(rq, n_panels * nr)
    return steps, n_panels, q_target(dst, rq, geo), kc_steps(steps), (dst, mp, rqs)


@kernel(inline="always")
def item_c(item, geo, dst, rq, mr, nr, nc, fused, steps):
    """(t0, t1, p0, p1, direct, ldc, cblk) of work item `item`: its tiles and panels (item_bounds),
    whether its sums go straight into dst (c_target), C's row stride in int32 words and the
    item's int32 C block (cblk_size: empty when direct, or fused with a single K block)."""
    t0, t1, p0, p1 = item_bounds(item, geo, mr, nr, nc)
    direct = c_target(dst, rq, geo, t1, p1, mr, nr)
    ldc = dst.strides[0] // 4 if direct else (p1 - p0) * nr
    return t0, t1, p0, p1, direct, ldc, np.empty(cblk_size(direct, fused, steps, t1 - t0, mr, ldc), np.int32)


@kernel
def _tiles_avx2(apk, lda, panels, b0, ns, q0, q1, t0, nt, c, c0, ldc, offs, first, qlast, qout, geo):
    """Tiles t0..t0+nt-1 (A words at (tile - t0)*6*lda) x panels q0..q1-1 (B at b0 + p*ns*32
    int16) of one K block, 6x16 vpmaddwd micro-kernel, into C at c0 + (tile - t0)*6*ldc +
    (p - q0)*16; with qlast (the last K block of a requantized GEMM) mk_avx2_q stores the
    requantized bytes into qout (see q_consts) instead."""
    if qlast:          # the branch outside the loops: the int32 loop stays as lean as before
        for t in range(nt):
            for p in range(q0, q1):
                mk_avx2_q(apk, t * 6 * lda, lda, panels, b0 + p * ns * 32, ns, c, c0 + t * 6 * ldc + (p - q0) * 16,
                          ldc, offs, p * 16, first, qout, (t0 + t) * 6, p * 16, geo)
    else:
        for t in range(nt):
            for p in range(q0, q1):
                mk_avx2(apk, t * 6 * lda, lda, panels, b0 + p * ns * 32, ns, c, c0 + t * 6 * ldc + (p - q0) * 16,
                        ldc, offs, p * 16, first)


@kernel
def _drive_avx2(src, geo, add, panels, offs, dst, rq, i0, i1):
    """Items i0..i1-1 (see item_bounds). Per item, per K block (kc_steps): pack the item's A
    tiles once (int16 lanes), then per B block of nc panels (L2), per tile and panel, the 6x16
    vpmaddwd micro-kernel accumulates into the item's int32 C (started from the offsets row):
    dst itself when c_target allows, else a block written by epilogue."""
    mr, nr, g, nc = 6, 16, 2, 16
    steps, n_panels, fused, kc, qout = driver_consts(geo, dst, rq, nr, g)
    for item in range(i0, i1):
        t0, t1, p0, p1, direct, ldc, cblk = item_c(item, geo, dst, rq, mr, nr, nc, fused, steps)
        apk = np.empty((t1 - t0) * 128 * mr * g, np.int16)
        for s0 in range(0, steps, kc):
            ns, first = min(kc, steps - s0), 1 if s0 == 0 else 0
            pack_block(src, geo, add, g, mr, t0, t1, s0, ns, apk)
            for q0 in range(p0, p1, nc):
                q1 = min(q0 + nc, p1)
                b0 = s0 * n_panels * nr * g
                if direct:
                    _tiles_avx2(apk, ns, panels, b0, ns, q0, q1, t0, t1 - t0, dst, t0 * mr * ldc + q0 * nr, ldc, offs,
                                first, False, qout, geo)
                else:
                    _tiles_avx2(apk, ns, panels, b0, ns, q0, q1, t0, t1 - t0, cblk, (q0 - p0) * nr, ldc, offs,
                                first, fused and s0 + ns >= steps, qout, geo)
        if not direct and not fused:
            epilogue(cblk.reshape(((t1 - t0) * mr, ldc)), t0 * mr, p0 * nr, geo, dst, rq)


@kernel
def _tiles_vnni512(a, a0, lda, panels, b0, ns, q0, q1, t0, nt, c, c0, ldc, offs, first, qlast, qout, geo):
    """As _tiles_avx2 with the 6x32 vpdpbusd micro-kernels (A words at a0 + (tile - t0)*6*lda,
    B at b0 + p*ns*128 int8)."""
    if qlast:          # the branch outside the loops: the int32 loop stays as lean as before
        for t in range(nt):
            for p in range(q0, q1):
                mk_vnni512_q(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                             c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first, qout, (t0 + t) * 6,
                             p * 32, geo)
    else:
        for t in range(nt):
            for p in range(q0, q1):
                mk_vnni512(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                           c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first)


@kernel
def _drive_vnni512(src, geo, add, panels, offs, dst, rq, i0, i1):
    """As _drive_avx2 with u8 lanes and the 6x32 vpdpbusd (zmm) micro-kernel; compiled only on
    VNNI hosts. A row-major uint8 A (add = 0) with K % 4 == 0 is read in place where the
    item's tiles are full (its rows are already the u8 quads the micro-kernel reads), else
    packed per K block."""
    mr, nr, g, nc = 6, 32, 4, 8
    steps, n_panels, fused, kc, qout = driver_consts(geo, dst, rq, nr, g)
    for item in range(i0, i1):
        t0, t1, p0, p1, direct, ldc, cblk = item_c(item, geo, dst, rq, mr, nr, nc, fused, steps)
        in_place = a_in_place(geo, add, t1, mr)
        apk = np.empty(0 if in_place else (t1 - t0) * 128 * mr * g, np.uint8)
        for s0 in range(0, steps, kc):
            ns, first = min(kc, steps - s0), 1 if s0 == 0 else 0
            if in_place:       # (add == 0: src holds uint8; the view only unifies the types)
                a, a0, lda = src.view(np.uint8), (t0 * mr * geo[2]) // 4 + s0, geo[2] // 4
            else:
                pack_block(src, geo, add, g, mr, t0, t1, s0, ns, apk)
                a, a0, lda = apk, 0, ns
            for q0 in range(p0, p1, nc):
                q1 = min(q0 + nc, p1)
                b0 = s0 * n_panels * nr * g
                if direct:
                    _tiles_vnni512(a, a0, lda, panels, b0, ns, q0, q1, t0, t1 - t0, dst, t0 * mr * ldc + q0 * nr,
                                   ldc, offs, first, False, qout, geo)
                else:
                    _tiles_vnni512(a, a0, lda, panels, b0, ns, q0, q1, t0, t1 - t0, cblk, (q0 - p0) * nr, ldc,
                                   offs, first, fused and s0 + ns >= steps, qout, geo)
        if not direct and not fused:
            epilogue(cblk.reshape(((t1 - t0) * mr, ldc)), t0 * mr, p0 * nr, geo, dst, rq)


@kernel(parallel=True)
def _par_avx2(src, geo, add, panels, offs, dst, rq, n_items, parts):
    """_drive_avx2 over items 0..n_items-1 in `parts` contiguous ranges, run by Numba's parallel
    threads (see native_split)."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _drive_avx2(src, geo, add, panels, offs, dst, rq, i0, i1)


@kernel(parallel=True)
def _par_vnni512(src, geo, add, panels, offs, dst, rq, n_items, parts):
    """_drive_vnni512 as _par_avx2 runs _drive_avx2."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _drive_vnni512(src, geo, add, panels, offs, dst, rq, i0, i1)


_DRIVERS = {"avx2": _drive_avx2, "avx512vnni": _drive_vnni512}
_PAR_DRIVERS = {"avx2": _par_avx2, "avx512vnni": _par_vnni512}
def _check_a(a, k, where):
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.dtype not in (np.uint8, np.int8):
        raise ValueError(f"{where}: activation a must be a 2-D uint8/int8 array, got "
                         f"{getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}")
    if a.shape[1] != k:
        raise ValueError(f"{where}: a {a.shape} and packed weights (K={k}) do not multiply")


def _check_zp(a_zp, dtype, where):
    info = np.iinfo(dtype)
    if not info.min <= int(a_zp) <= info.max:
        raise ValueError(f"{where}: a_zp {a_zp} outside the {np.dtype(dtype)} range")


def vector_arg(v, n, dtype, name, where):
    """A scalar or an (n,) vector as a contiguous (n,) array of dtype, else ValueError."""
    v = np.asarray(v)
    if v.ndim == 0:
        v = np.full(n, v)
    if v.shape != (n,):
        raise ValueError(f"{where}: {name} must be a scalar or have shape ({n},), got {v.shape}")
    return np.ascontiguousarray(v, dtype)


def offsets(packed, a_dtype, a_zp, bias):
    """bias[n] - (a_zp + o) * S[n], wrapped to int32 (the sums run mod 2**32)."""
    o = 128 if (packed.isa != "avx2" and a_dtype == np.int8) else 0
    off = bias - (np.int64(a_zp) + o) * packed.col_sum
    pad = _ceil(packed.n, _GEOM[packed.isa][1]) * _GEOM[packed.isa][1]
    out = np.zeros(pad, np.int32)
    out[:packed.n] = off.astype(np.int32)
    return out, o


def fits_int32(packed, a_dtype, a_zp, bias) -> bool:
    """True when every exact acc is provably inside int32 (so int32 sums are exact)."""
    info = np.iinfo(a_dtype)
    amax = max(abs(int(info.max) - int(a_zp)), abs(int(info.min) - int(a_zp)))
    bound = np.abs(bias.astype(np.float64)) + float(amax) * packed.abs_sum.astype(np.float64)
    return bool(bound.max(initial=0.0) < 2.0**31 - 2**12)


def _mc_tiles(m, n, isa, threads=2):
    """M block size: up to MC_TILES tiles, smaller when that would leave threads idle."""
    mr, nr, _ = _GEOM[isa]
    n_blocks = _ceil(_ceil(n, nr), NC_PANELS if nr == 16 else 8)
    want = max(_ceil(4 * threads, n_blocks), 1)
    return int(min(MC_TILES, max(1, _ceil(_ceil(m, mr), want))))


def _gemm_split(m, n, isa, threads):
    """(tiles per M block, panels per item) of a GEMM: an item spans all of N (A is packed once
    per K block and reused by every panel) unless there are too few M blocks to keep `threads`
    busy, in which case N is split too; at least 4 items per thread when the shape allows."""
    mr, nr, _ = _GEOM[isa]
    n_tiles, n_panels = _ceil(m, mr), _ceil(n, nr)
    if threads > 1 and n_tiles <= MC_TILES:
        # few rows: one M block, N cut in one range per thread (B is read once; the M-and-N
        # split re-read B per M block: 49x320x1280 205 -> 177 us, 49x4608x512 744 -> 713 us)
        return n_tiles, _ceil(n_panels, min(n_panels, threads))
    want = 4 * max(threads, 1) if threads > 1 else 1
    mc = int(min(MC_TILES, max(1, _ceil(n_tiles, want))))
    n_mb = _ceil(n_tiles, mc)
    n_split = min(n_panels, max(1, _ceil(want, n_mb)))
    return mc, _ceil(n_panels, n_split)


def gemm_geo(m, k, n, isa, trans=0):
    """The driver's descriptor of a row-major A (M, K); entry G_NP = 14 holds panels per item."""
    mc, npi = _gemm_split(m, n, isa, get_num_threads())
    return np.array([0, m, k, n, mc, trans, 0, 0, 0, 1, 1, 1, 0, 0, npi], np.int64)


def n_items(geo, isa) -> int:
    """Number of (M block, N range) work items of the driver for descriptor geo."""
    mr, nr, _ = _GEOM[isa]
    n_panels = _ceil(int(geo[G_N]), nr)
    npi = int(geo[G_NP]) if geo.shape[0] > G_NP and geo[G_NP] > 0 else (NC_PANELS if nr == 16 else 8)
    return _ceil(_ceil(int(geo[G_M]), mr), int(geo[G_MC])) * _ceil(n_panels, npi)


SERIAL_OPS = 2**24          # 2*M*N*K below which one thread is faster than waking another
NATIVE_SERIAL_OPS = int(os.environ.get("INTSIM_NATIVE_SERIAL_OPS", 2**21))   # the same for a parallel region
OUTPUT_OPS = 64             # per output, the operations its tile's overhead is worth


def work_threads(geo, threads=None) -> int:
    """Threads for the GEMM of descriptor geo: an explicit `threads` as given; by default
    (None) 1 below SERIAL_OPS operations (handing work to a pool thread costs tens of
    microseconds), else set_num_threads(). Each output also costs about OUTPUT_OPS operations
    (its tile's loads, stores and requantization), which dominate when K is small: the
    MobileNetV2-style stem (18432 x 27 x 16) ran 391 us on one thread, 282 us on two."""
    if threads is not None:
        return int(threads)
    m, n, k = int(geo[G_M]), int(geo[G_N]), int(geo[G_K])
    threads = get_num_threads()
    least = NATIVE_SERIAL_OPS if native_split(threads) else SERIAL_OPS
    return 1 if m * n * (2 * k + OUTPUT_OPS) < least else threads


def run_packed(src, geo, add, packed, offs, dst, rq, threads=None) -> None:
    """Pointer-level entry: every argument is validated by the public wrappers
    (gemm_packed*, kernels.fast_conv); call it only through them."""
    bind_packed(geo, add, packed, offs, rq, threads)(src, dst)


def bind_packed(geo, add, packed, offs, rq, threads=None):
    """run_packed with everything but src and dst fixed: call(src, dst) runs the driver over all
    work items (on this thread alone when work_threads says one is enough). The work split and
    thread count are taken now (from get_num_threads()). Pointer-level like run_packed: callers
    check that src and dst fit geo on every call (kernels.conv_plan's bound plans do)."""
    return bind_items(_DRIVERS[packed.isa], _PAR_DRIVERS[packed.isa], (geo, np.int64(add), packed.panels, offs),
                      (rq,), n_items(geo, packed.isa), work_threads(geo, threads))


def rq_none():
    return (False, np.ones(1, np.float32), np.int64(0), np.int64(0), np.int64(0))


def gemm_packed(a, a_zp, packed: PackedB, bias, acc) -> None:
    """acc (M, N) int32 (wraps) or int64 (exact) = bias + (a - a_zp) @ (b - b_zp), see module doc."""
    where = "gemm_packed"
    _check_a(a, packed.k, where)
    _check_zp(a_zp, a.dtype, where)
    bias = vector_arg(bias, packed.n, np.int64, "bias", where)
    if not isinstance(acc, np.ndarray) or acc.shape != (a.shape[0], packed.n) or \
            acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"{where}: acc must be int32/int64 {(a.shape[0], packed.n)}, got "
                         f"{getattr(acc, 'dtype', None)} {getattr(acc, 'shape', None)}")
    exact64 = acc.dtype == np.int64 and not fits_int32(packed, a.dtype, a_zp, bias)
    if packed.isa == "portable" or exact64 or a.shape[0] == 0:
        gemm_acc(a, packed.b, a_zp, packed.b_zp, bias, acc)
        return
    offs, o = offsets(packed, a.dtype, a_zp, bias)
    a = np.ascontiguousarray(a)
    run_packed(a.reshape(-1), gemm_geo(a.shape[0], packed.k, packed.n, packed.isa), o, packed, offs, acc, rq_none())


def gemm_packed_ref(a, a_zp, packed: PackedB, bias, acc) -> None:
    """NumPy int64 twin of gemm_packed (from the unpacked weights kept in `packed`)."""
    gemm_acc_ref(a, packed.b, a_zp, packed.b_zp, np.broadcast_to(np.asarray(bias, np.int64), (packed.n,)), acc)


def _check_requant(mult, zp, lo, hi, out, shape, where):
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype not in (np.uint8, np.int8):
        raise ValueError(f"{where}: out must be uint8/int8 {shape}, got "
                         f"{getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")
    info = np.iinfo(out.dtype)
    if not (info.min <= lo <= zp <= hi <= info.max):
        raise ValueError(f"{where}: need {info.min} <= lo {lo} <= zp {zp} <= hi {hi} <= {info.max}")
    if not np.all(np.isfinite(mult)):
        raise ValueError(f"{where}: mult must be finite")


def gemm_packed_requant(a, a_zp, packed: PackedB, bias, mult, zp, lo, hi, out) -> None:
    """out (M, N) uint8/int8 = clamp(rint_RNE(f32(acc) * mult[n]) + zp, lo, hi), every op in
    float32, acc the int32 sum of gemm_packed (wrapped, as ORT's int32 accumulator)."""
    where = "gemm_packed_requant"
    _check_a(a, packed.k, where)
    _check_zp(a_zp, a.dtype, where)
    bias = vector_arg(bias, packed.n, np.int64, "bias", where)
    mult = vector_arg(mult, packed.n, np.float32, "mult", where)
    _check_requant(mult, zp, lo, hi, out, (a.shape[0], packed.n), where)
    if packed.isa == "portable" or a.shape[0] == 0:
        acc = np.empty((a.shape[0], packed.n), np.int32)
        gemm_acc(a, packed.b, a_zp, packed.b_zp, bias, acc)
        _requant_rows(acc, mult, zp, lo, hi, out)
        return
    offs, o = offsets(packed, a.dtype, a_zp, bias)
    a = np.ascontiguousarray(a)
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    run_packed(a.reshape(-1), gemm_geo(a.shape[0], packed.k, packed.n, packed.isa), o, packed, offs, out, rq)


def _requant_rows(acc, mult, zp, lo, hi, out):
    out[...] = (ort_round_ref(acc, mult[None, :], lo - zp, hi - zp).astype(np.int64) + zp).astype(out.dtype)


def gemm_packed_requant_ref(a, a_zp, packed: PackedB, bias, mult, zp, lo, hi, out) -> None:
    """NumPy twin: int64 sum wrapped to int32, then the float32 requantization."""
    acc = np.empty((a.shape[0], packed.n), np.int32)
    gemm_packed_ref(a, a_zp, packed, bias, acc)
    _requant_rows(acc, np.broadcast_to(np.asarray(mult, np.float32), (packed.n,)), zp, lo, hi, out)


def __getattr__(name):
    """fast_gemm.NATIVE_THREADS reads kernels.threads.NATIVE_THREADS (it changes in a forked child)."""
    if name == "NATIVE_THREADS":
        return threads.NATIVE_THREADS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
