"""The SIMD GEMM engine's drivers (kernels.simd): work items of (M block, N range), per item
and K block the A tiles packed once (kernels.simd.packing.pack_block), the micro-kernels
(kernels.simd.microkernels) over tiles x panels, and the int32 block's `epilogue`; threads
through kernels.threads. `bind_packed` fixes everything but the source and destination arrays.
"""
from __future__ import annotations

import os

import numpy as np
from numba import prange

from ..conv_rows import window_rows, window_run
from ..jit import kernel
from ..requant import ort_round
from ..threads import bind_items, get_num_threads, native_split
from .. import cpu
from .microkernels import (AMX_TILE_STEPS, amx_begin, amx_end, mk_amx, mk_amx_q, mk_avx2, mk_avx2_q, mk_vnni512,
                           mk_vnni512_h, mk_vnni512_hq, mk_vnni512_q)
from .packing import (ALIGN, G_K, G_M, G_MC, G_N, G_NP, GEOM, MC_TILES, NC_PANELS, aligned_bytes, amx_steps,
                      ceil_div, kc_steps, kc_tile_steps, pack_block)

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


IN_PLACE_PANELS = 2       # panels of an AMX item up to which A rows off a cache line are read in place


@kernel(inline="always")
def amx_in_place_end(src, geo, add, t0, t1, p0, p1, mr, steps):
    """tf (t0 <= tf <= t1): the AMX driver reads the A tiles t0..tf-1 of an item straight from
    src (tileloadd with K as the byte stride) and packs only tiles tf..t1-1: a row-major uint8
    A (add == 0) whose rows start on ALIGN-byte lines (src aligned, K % ALIGN == 0), or any
    rows when the item has at most IN_PLACE_PANELS panels (a tile row read across two lines
    costs each panel that reads it; packing costs once: 784 x 1152 x 128 (4 panels) 0.25 vs
    0.17 ms packed, 12544 x 147 x 64 (2 panels) spent 0.39 of 0.68 ms packing); tiles full
    (tf*mr <= M) and, when each tile row reads `over` = 4*steps - K > 0 bytes past K (from
    the next row of A; the panels are zero there), over <= K and a row of A after the last
    in-place tile (tf*mr < M). So a GEMM whose M is not a multiple of mr packs its last,
    partial tile alone (49 x 4608: one tile of two)."""
    lines = geo[2] % ALIGN == 0 and src.ctypes.data % ALIGN == 0
    if not (geo[0] == 0 and add == 0 and (lines or p1 - p0 <= IN_PLACE_PANELS)):
        return t0
    over = steps * 4 - geo[2]
    if over > geo[2]:
        return t0
    tf = min(t1, geo[1] // mr)
    if over > 0 and tf * mr >= geo[1]:
        tf -= 1
    return max(t0, tf)


@kernel(inline="always")
def vnni_a_in_place(geo, add, t1, mr, steps):
    """True when the VNNI driver may read an item's A tiles (up to row t1*mr) straight from src,
    rows K bytes apart (the byte-addressed micro-kernels): a row-major uint8 A (add == 0), all
    tiles full, and for K % 4 != 0 (each row's last word reads `over` = 4*steps - K bytes past
    K, from the next row of A, which the zero panels beyond K multiply by zero) over <= K and a
    row of A after the item's last (t1*mr < M), so no read leaves src. MobileNetV2's stem
    (12544 x 27 x 32) spent 0.10 of 0.24 ms packing its rows of 27 bytes."""
    over = steps * 4 - geo[2]
    return geo[0] == 0 and add == 0 and t1 * mr <= geo[1] and (over == 0 or (over <= geo[2] and t1 * mr < geo[1]))


@kernel(inline="always")
def block_a(src, geo, add, g, mr, t0, t1, s0, ns, apk, in_place):
    """(a, a0, lda) of u8 A for tiles t0..t1-1, K block s0..s0+ns-1, a0 and lda in bytes: src
    itself when in_place (vnni_a_in_place: add == 0, so src holds uint8; the view only unifies
    the types), else the block packed into apk (pack_block)."""
    if in_place:
        return src.view(np.uint8), t0 * mr * geo[2] + 4 * s0, geo[2]
    pack_block(src, geo, add, np.int64(g), np.int64(mr), t0, t1, s0, ns, apk)
    return apk, 0, 4 * ns


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
    return t0, t1, p0, p1, direct, ldc, aligned_bytes(4 * cblk_size(direct, fused, steps, t1 - t0, mr, ldc)).view(np.int32)


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
            pack_block(src, geo, add, np.int64(g), np.int64(mr), t0, t1, s0, ns, apk)
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
    """As _tiles_avx2 with the 6x32 vpdpbusd micro-kernels (A bytes at a0 + (tile - t0)*6*lda,
    B at b0 + p*ns*128 int8). A last panel holding at most 16 columns of N runs the 12x16 half
    kernels (mk_vnni512_h*: the panel's left half) over pairs of tiles (an odd last tile: the
    6x32 kernel)."""
    qf = q1 - 1 if q1 > q0 and geo[3] - (q1 - 1) * 32 <= 16 else q1     # panels qf..q1-1: a half panel
    if qlast:          # the branch outside the loops: the int32 loop stays as lean as before
        for t in range(nt):
            for p in range(q0, qf):
                mk_vnni512_q(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                             c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first, qout, (t0 + t) * 6,
                             p * 32, geo)
        for p in range(qf, q1):
            for t in range(0, nt - 1, 2):
                mk_vnni512_hq(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                              c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first, qout, (t0 + t) * 6,
                              p * 32, geo)
            if nt % 2:
                t = nt - 1
                mk_vnni512_q(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                             c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first, qout, (t0 + t) * 6,
                             p * 32, geo)
    else:
        for t in range(nt):
            for p in range(q0, qf):
                mk_vnni512(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                           c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first)
        for p in range(qf, q1):
            for t in range(0, nt - 1, 2):
                mk_vnni512_h(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                             c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first)
            if nt % 2:
                t = nt - 1
                mk_vnni512(a, a0 + t * 6 * lda, lda, panels, b0 + p * ns * 128, ns, c,
                           c0 + t * 6 * ldc + (p - q0) * 32, ldc, offs, p * 32, first)


@kernel
def _drive_vnni512(src, geo, add, panels, offs, dst, rq, i0, i1):
    """As _drive_avx2 with u8 lanes and the 6x32 vpdpbusd (zmm) micro-kernel; compiled only on
    VNNI hosts. A row-major uint8 A (add = 0) is read in place where the item's tiles are full
    (vnni_a_in_place: its rows, K bytes apart, are already the u8 quads the micro-kernel reads),
    and so are the windows of a one-row uint8 image (kernels.conv_rows.window_rows: rows sw*C
    bytes apart, runs of tiles inside one image); else packed per K block (windows: tile by tile)."""
    mr, nr, g, nc = 6, 32, 4, 8
    steps, n_panels, fused, kc, qout = driver_consts(geo, dst, rq, nr, g)
    windows = window_rows(src, geo, add)
    for item in range(i0, i1):
        t0, t1, p0, p1, direct, ldc, cblk = item_c(item, geo, dst, rq, mr, nr, nc, fused, steps)
        in_place = vnni_a_in_place(geo, add, t1, mr, steps)
        apk = np.empty(0 if in_place else (t1 - t0) * 128 * mr * g, np.uint8)
        for s0 in range(0, steps, kc):
            ns, first = min(kc, steps - s0), 1 if s0 == 0 else 0
            u0 = t0
            while u0 < t1:          # runs of tiles: read in place (windows) or packed
                u1, a0, lda = window_run(geo, u0, t1, mr, steps) if windows else (u0, 0, 0)
                if u1 > u0:
                    a, a0 = src.view(np.uint8), a0 + 4 * s0
                else:
                    u1 = u0 + 1 if windows else t1
                    a, a0, lda = block_a(src, geo, add, g, mr, u0, u1, s0, ns, apk, in_place)
                for q0 in range(p0, p1, nc):
                    q1 = min(q0 + nc, p1)
                    b0 = s0 * n_panels * nr * g
                    if direct:
                        _tiles_vnni512(a, a0, lda, panels, b0, ns, q0, q1, u0, u1 - u0, dst,
                                       u0 * mr * ldc + q0 * nr, ldc, offs, first, False, qout, geo)
                    else:
                        _tiles_vnni512(a, a0, lda, panels, b0, ns, q0, q1, u0, u1 - u0, cblk,
                                       (u0 - t0) * mr * ldc + (q0 - p0) * nr, ldc, offs, first,
                                       fused and s0 + ns >= steps, qout, geo)
                u0 = u1
        if not direct and not fused:
            epilogue(cblk.reshape(((t1 - t0) * mr, ldc)), t0 * mr, p0 * nr, geo, dst, rq)


@kernel(inline="always")
def amx_config():
    """The 64-byte ldtilecfg operand: palette 1, tiles 0-7 each 16 rows x 64 bytes (colsb as
    little-endian uint16 at byte 16 + 2t, rows at byte 48 + t), the other tiles unused."""
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    for t in range(8):
        cfg[16 + 2 * t] = 64
        cfg[48 + t] = 16
    return cfg


@kernel
def _tiles_amx(a, a0, lda, panels, b0, ns, q0, q1, t0, nt, c, c0, ldc, init, ldi, qlast, qout, geo, one=False):
    """Tiles t0..t0+nt-1 of 32 rows (A bytes at a0 + (tile - t0)*32*lda) x panels q0..q1-1 (B at
    b0 + p*ns*128 int8) of one K block of ns steps (a multiple of 16), mk_amx into C at
    c0 + (tile - t0)*32*ldc + (p - q0)*32; started from the init rows (word 32*p of each) when
    ldi >= 0 (the first K block), else from C. With qlast (the last K block of a requantized
    GEMM) each 32 x 32 block, just stored, is requantized into qout by mk_amx_q (its 16-row
    halves that start below M). `one`: every block's sums go to the same 32 x 32 block at c[c0]
    (ldc = 32), a requantized GEMM of one K block (each block requantized right after its sums)."""
    first = 1 if ldi >= 0 else 0
    for t in range(nt):
        for p in range(q0, q1):
            cb = c0 if one else c0 + t * 32 * ldc + (p - q0) * 32
            mk_amx(a, a0 + t * 32 * lda, lda, panels, b0 + p * ns * 128, ns // AMX_TILE_STEPS, c,
                   cb, ldc, init, p * 32, first, max(ldi, 0))
            if qlast:
                for h in range(2):
                    if (t0 + t) * 32 + 16 * h < geo[1]:
                        mk_amx_q(c, cb + 16 * h * ldc, ldc, qout, (t0 + t) * 32 + 16 * h, p * 32, geo)


@kernel
def _drive_amx(src, geo, add, panels, offs, dst, rq, i0, i1):
    """As _drive_vnni512 with the 32x32 AMX micro-kernel (2 x 2 tiles of tdpbusd); compiled and
    run only where kernels.cpu.amx_usable. K runs in whole tile steps (the panels and the packed
    A are zero beyond K; blocks of kc_tile_steps). The tile config is loaded on this thread
    first and released last. The int32 sums go into dst (c_target) or the item's block; an 8-bit
    dst (q_target) gets each block requantized by mk_amx_q right after its last K block, other
    outputs the block through `epilogue`; a requantized GEMM of one K block (K <= 4096) passes
    each block's sums through one 32 x 32 block (4 KiB, in L1) instead of an item-sized one. A
    row-major uint8 A (add = 0) is read in place tile by tile (amx_in_place_end): only the tiles
    that cannot be (a partial last tile) are packed per K block."""
    mr, nr, g, nc = 32, 32, 4, 8
    steps = (geo[2] + 63) // 64 * AMX_TILE_STEPS
    n_panels = (geo[3] + nr - 1) // nr
    kc = kc_tile_steps(steps)
    n_pad = n_panels * nr
    fused = q_target(dst, rq, geo)
    mp, rqs = q_consts(rq, n_pad)
    qout = (dst, mp, rqs)
    init = aligned_bytes(64 * n_pad).view(np.int32)     # 16 rows of the column offsets
    for r in range(16):
        init[r * n_pad:(r + 1) * n_pad] = offs[:n_pad]
    one = fused and steps <= kc                     # one K block: requantized block by block
    blk = aligned_bytes(4 * mr * nr if one else 0).view(np.int32)
    windows = window_rows(src, geo, add)
    amx_begin(amx_config())
    for item in range(i0, i1):
        if one:
            t0, t1, p0, p1 = item_bounds(item, geo, mr, nr, nc)
            direct, ldc, cblk = False, nr, blk
        else:
            t0, t1, p0, p1, direct, ldc, cblk = item_c(item, geo, dst, rq, mr, nr, nc, False, steps)
        tf = amx_in_place_end(src, geo, add, t0, t1, p0, p1, mr, steps)    # tiles t0..tf-1 in place, tf..t1-1 packed
        wa0, wlda = t0 * mr * geo[2], geo[2]
        if windows:
            tf, wa0, wlda = window_run(geo, t0, t1, mr, steps)
        apk = aligned_bytes((t1 - tf) * kc * mr * g)
        ua = src.view(np.uint8) if tf > t0 else apk             # (a uint8 src when tf > t0: add == 0)
        for s0 in range(0, steps, kc):
            ns = min(kc, steps - s0)
            ldi = n_pad if s0 == 0 else -1
            if t1 > tf:
                pack_block(src, geo, add, np.int64(g), np.int64(mr), tf, t1, s0, ns, apk)
            for q0 in range(p0, p1, nc):
                q1 = min(q0 + nc, p1)
                b0 = s0 * n_panels * nr * g
                for part in range(2):       # the in-place tiles, then the packed ones
                    u0, u1 = (t0, tf) if part == 0 else (tf, t1)
                    if u1 <= u0:
                        continue
                    a = ua if part == 0 else apk
                    a0, lda = (wa0 + 4 * s0, wlda) if part == 0 else (0, 4 * ns)     # bytes
                    if direct:
                        _tiles_amx(a, a0, lda, panels, b0, ns, q0, q1, u0, u1 - u0, dst, u0 * mr * ldc + q0 * nr,
                                   ldc, init, ldi, False, qout, geo)
                    elif one:
                        _tiles_amx(a, a0, lda, panels, b0, ns, q0, q1, u0, u1 - u0, cblk, 0, ldc, init, ldi, True,
                                   qout, geo, True)
                    else:
                        _tiles_amx(a, a0, lda, panels, b0, ns, q0, q1, u0, u1 - u0, cblk,
                                   (u0 - t0) * mr * ldc + (q0 - p0) * nr, ldc, init, ldi, fused and s0 + ns >= steps,
                                   qout, geo)
        if not direct and not fused:
            epilogue(cblk.reshape(((t1 - t0) * mr, ldc)), t0 * mr, p0 * nr, geo, dst, rq)
    amx_end()


@kernel(parallel=True)
def _par_amx(src, geo, add, panels, offs, dst, rq, n_items, parts):
    """_drive_amx as _par_avx2 runs _drive_avx2 (each part loads the tile config on its thread)."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _drive_amx(src, geo, add, panels, offs, dst, rq, i0, i1)


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


SERIAL_DRIVERS = {"avx2": _drive_avx2, "avx512vnni": _drive_vnni512, "amx": _drive_amx}
_PAR_DRIVERS = {"avx2": _par_avx2, "avx512vnni": _par_vnni512, "amx": _par_amx}


def _gemm_split(m, n, isa, threads):
    """(tiles per M block, panels per item) of a GEMM: an item spans all of N (A is packed once
    per K block and reused by every panel) unless there are too few M blocks to keep `threads`
    busy, in which case N is split too; at least 4 items per thread when the shape allows, but
    on AMX, whose threads take equal runs of items: `threads` times the fewest M blocks."""
    mr, nr, _ = GEOM[isa]
    n_tiles, n_panels = ceil_div(m, mr), ceil_div(n, nr)
    if threads > 1 and n_tiles <= MC_TILES:
        # few rows: one M block, N cut in one range per thread (B is read once; the M-and-N
        # split re-read B per M block: 49x320x1280 205 -> 177 us, 49x4608x512 744 -> 713 us)
        return n_tiles, ceil_div(n_panels, min(n_panels, threads))
    if threads > 1 and isa == "amx":
        # AMX: the fewest M blocks of <= MC_TILES tiles that is a multiple of `threads`, each item
        # all of N (no N split: each M block streams B once; the 32-row tiles make blocks few):
        # 784 x 1152 x 128 as 14 items (4 tiles x 2 panels) put 75 us on the slower of 2 threads,
        # as 2 items of 13 and 12 tiles 57 us (each part timed alone, 1 thread: 105 us)
        return ceil_div(n_tiles, threads * ceil_div(n_tiles, threads * MC_TILES)), n_panels
    want = 4 * max(threads, 1) if threads > 1 else 1
    mc = int(min(MC_TILES, max(1, ceil_div(n_tiles, want))))
    n_mb = ceil_div(n_tiles, mc)
    n_split = min(n_panels, max(1, ceil_div(want, n_mb)))
    return mc, ceil_div(n_panels, n_split)


def gemm_geo(m, k, n, isa, trans=0):
    """The driver's descriptor of a row-major A (M, K); entry G_NP = 14 holds panels per item."""
    mc, npi = _gemm_split(m, n, isa, get_num_threads())
    return np.array([0, m, k, n, mc, trans, 0, 0, 0, 1, 1, 1, 0, 0, npi], np.int64)


def n_items(geo, isa) -> int:
    """Number of (M block, N range) work items of the driver for descriptor geo."""
    mr, nr, _ = GEOM[isa]
    n_panels = ceil_div(int(geo[G_N]), nr)
    npi = int(geo[G_NP]) if geo.shape[0] > G_NP and geo[G_NP] > 0 else (NC_PANELS if nr == 16 else 8)
    return ceil_div(ceil_div(int(geo[G_M]), mr), int(geo[G_MC])) * ceil_div(n_panels, npi)


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
    check that src and dst fit geo on every call (kernels.conv_plan's bound plans do).
    AMX panels run only where kernels.cpu.amx_usable (asked once per process: a process that
    did not pack them, e.g. one that unpickled them, requests the tile permission here)."""
    if packed.isa == "amx":
        if not cpu.amx_usable():
            raise RuntimeError(f"kernels.simd: AMX panels cannot run in this process: {cpu.missing('amx')}")
        want = ceil_div(packed.n, GEOM["amx"][1]) * amx_steps(packed.k) * GEOM["amx"][1] * 4
        if packed.steps != amx_steps(packed.k) or packed.panels.dtype != np.int8 or packed.panels.size != want:
            raise ValueError(f"kernels.simd: AMX panels of {packed.panels.size} {packed.panels.dtype} and "
                             f"{packed.steps} steps do not fit K={packed.k}, N={packed.n} (want {want} int8)")
    return bind_items(SERIAL_DRIVERS[packed.isa], _PAR_DRIVERS[packed.isa], (geo, np.int64(add), packed.panels, offs),
                      (rq,), n_items(geo, packed.isa), work_threads(geo, threads))


def rq_none():
    return (False, np.ones(1, np.float32), np.int64(0), np.int64(0), np.int64(0))

