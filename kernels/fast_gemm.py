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
- isa "portable": kernels.gemm.gemm_acc (plain Numba loops).
The sum runs in int32 and wraps mod 2**32, so an int32 `acc` equals the exact sum wrapped to
int32 (as kernels.gemm stores it). An int64 `acc` is exact: when the bound
|bias[n]| + max|a - a_zp| * sum_k |bw[k, n]| may leave int32, the exact portable kernel runs.

The fused variant writes the ORT float requantization (kernels.requant) from the int32 tile:
    y[m, n] = clamp(rint_half_even(f32(acc[m, n]) * mult[n]) + zp, lo, hi), all float32.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import cpu
from .gemm import gemm_acc, gemm_acc_ref
from .jit import kernel
from .simd import AVX2_MR, AVX2_NR, VNNI_MR, VNNI_NR, mk_avx2, mk_vnni512

KC_STEPS = 128            # K block: 256 k for avx2 (B block of 16 panels = 128 KiB, in L2)
NC_PANELS = 16            # N block: 16 panels
MC_TILES = 16             # M block: at most 16 tiles of MR rows
_GEOM = {"avx2": (AVX2_MR, AVX2_NR, 2), "avx512vnni": (VNNI_MR, VNNI_NR, 4),
         "avxvnni": (VNNI_MR, VNNI_NR, 4)}


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


@kernel
def _pack_panels_impl(bw, nr, g, steps, panels):
    k_, n_ = bw.shape
    for p in range(panels.shape[0] // (steps * nr * g)):
        for s in range(steps):
            base = (p * steps + s) * nr * g
            for j in range(nr):
                col = p * nr + j
                for t in range(g):
                    k = s * g + t
                    v = 0
                    if col < n_ and k < k_:
                        v = bw[k, col]
                    panels[base + j * g + t] = v


def pack_b(b, b_zp, isa: str | None = None) -> PackedB:
    """Pack weights b (K, N) int8/uint8 with per-column zero points b_zp (N,) for `isa`
    (default kernels.cpu.best_isa())."""
    b_zp = np.ascontiguousarray(np.broadcast_to(np.asarray(b_zp, np.int64), (np.shape(b)[-1],)))
    _check_b(b, b_zp)
    isa = cpu.best_isa() if isa is None else isa
    if isa not in cpu.ISAS:
        raise ValueError(f"pack_b: unknown isa {isa!r}")
    bw = np.ascontiguousarray(b, np.int64) - b_zp[None, :]
    if isa in ("avx512vnni", "avxvnni") and (bw.min() < -128 or bw.max() > 127):
        isa = "avx2"
    k, n = b.shape
    col_sum, abs_sum = bw.sum(0), np.abs(bw).sum(0)
    if isa == "portable":
        return PackedB(isa, k, n, 0, np.zeros(0, np.int16), col_sum, abs_sum, b.copy(), b_zp)
    _, nr, g = _GEOM[isa]
    steps = _ceil(k, g)
    panels = np.empty(_ceil(n, nr) * steps * nr * g, np.int16 if g == 2 else np.int8)
    _pack_panels_impl(bw, nr, g, steps, panels)
    return PackedB(isa, k, n, steps, panels, col_sum, abs_sum, b.copy(), b_zp)


@kernel(parallel=True)
def _pack_a_impl(a, add, g, mr, steps, apack):
    """apack[(t*steps + s)*mr + r] = G values a[t*mr + r, s*G + t'] + add, lowest lane first
    (16-bit lanes for G=2, 8-bit for G=4); zero outside a."""
    m_, k_ = a.shape
    bits = 32 // g
    mask = (1 << bits) - 1
    for t in prange((m_ + mr - 1) // mr):
        for s in range(steps):
            for r in range(mr):
                m = t * mr + r
                word = 0
                if m < m_:
                    for u in range(g):
                        k = s * g + u
                        if k < k_:
                            word |= ((np.int64(a[m, k]) + add) & mask) << (bits * u)
                apack[(t * steps + s) * mr + r] = word


@kernel
def _init_block(cblk, offs, col0):
    for i in range(cblk.shape[0]):
        for j in range(cblk.shape[1]):
            cblk[i, j] = offs[col0 + j]


@kernel
def _add_tile(cblk, tile, row0, col0, mr, nr):
    for r in range(mr):
        for j in range(nr):
            cblk[row0 + r, col0 + j] += tile[r * nr + j]


@kernel
def _epilogue(cblk, m0, n0, m_, n_, dst, trans, requant, mult, zp, lo, hi):
    """Write the valid part of an int32 block: dst[m, n] (trans=0) or dst[n, m] (trans=1),
    either the sum itself or its ORT float requantization."""
    flo = np.float32(lo - zp)
    fhi = np.float32(hi - zp)
    for i in range(min(cblk.shape[0], m_ - m0)):
        for j in range(min(cblk.shape[1], n_ - n0)):
            c = cblk[i, j]
            if requant:
                v = np.float32(c) * mult[n0 + j]
                v = min(max(v, flo), fhi)
                val = np.int64(np.rint(v)) + zp
            else:
                val = np.int64(c)
            if trans:
                dst[n0 + j, m0 + i] = val
            else:
                dst[m0 + i, n0 + j] = val


@kernel(parallel=True)
def _drive_avx2(apack, m_, n_, panels, steps, offs, mc_tiles, dst, trans, requant, mult, zp, lo, hi):
    mr, nr = 6, 16
    n_tiles, n_panels = (m_ + mr - 1) // mr, (n_ + nr - 1) // nr
    n_mb, n_nb = (n_tiles + mc_tiles - 1) // mc_tiles, (n_panels + 15) // 16
    for item in prange(n_mb * n_nb):
        t0, p0 = (item // n_nb) * mc_tiles, (item % n_nb) * 16
        t1, p1 = min(t0 + mc_tiles, n_tiles), min(p0 + 16, n_panels)
        cblk = np.empty(((t1 - t0) * mr, (p1 - p0) * nr), np.int32)
        _init_block(cblk, offs, p0 * nr)
        tile = np.empty(mr * nr, np.int32)
        for s0 in range(0, steps, 128):
            ns = min(128, steps - s0)
            for t in range(t0, t1):
                for p in range(p0, p1):
                    mk_avx2(apack, (t * steps + s0) * mr, panels, (p * steps + s0) * nr * 2, ns, tile)
                    _add_tile(cblk, tile, (t - t0) * mr, (p - p0) * nr, mr, nr)
        _epilogue(cblk, t0 * mr, p0 * nr, m_, n_, dst, trans, requant, mult, zp, lo, hi)


@kernel(parallel=True)
def _drive_vnni512(apack, m_, n_, panels, steps, offs, mc_tiles, dst, trans, requant, mult, zp, lo, hi):
    mr, nr = 6, 32
    n_tiles, n_panels = (m_ + mr - 1) // mr, (n_ + nr - 1) // nr
    n_mb, n_nb = (n_tiles + mc_tiles - 1) // mc_tiles, (n_panels + 7) // 8
    for item in prange(n_mb * n_nb):
        t0, p0 = (item // n_nb) * mc_tiles, (item % n_nb) * 8
        t1, p1 = min(t0 + mc_tiles, n_tiles), min(p0 + 8, n_panels)
        cblk = np.empty(((t1 - t0) * mr, (p1 - p0) * nr), np.int32)
        _init_block(cblk, offs, p0 * nr)
        tile = np.empty(mr * nr, np.int32)
        for s0 in range(0, steps, 128):
            ns = min(128, steps - s0)
            for t in range(t0, t1):
                for p in range(p0, p1):
                    mk_vnni512(apack, (t * steps + s0) * mr, panels, (p * steps + s0) * nr * 4, ns, tile)
                    _add_tile(cblk, tile, (t - t0) * mr, (p - p0) * nr, mr, nr)
        _epilogue(cblk, t0 * mr, p0 * nr, m_, n_, dst, trans, requant, mult, zp, lo, hi)


_DRIVERS = {"avx2": _drive_avx2, "avx512vnni": _drive_vnni512}


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


def _vec(v, n, dtype, name, where):
    v = np.ascontiguousarray(np.broadcast_to(np.asarray(v), (n,)), dtype)
    if v.shape != (n,):
        raise ValueError(f"{where}: {name} must have shape ({n},)")
    return v


def _offsets(packed, a_dtype, a_zp, bias):
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


def pack_a(a, packed, add, apack=None):
    """Pack activations (M, K) into the micro-kernel's A panels (a reused buffer if given)."""
    mr, _, g = _GEOM[packed.isa]
    size = _ceil(a.shape[0], mr) * packed.steps * mr
    if apack is None or apack.size < size:
        apack = np.empty(size, np.int32)
    _pack_a_impl(a, add, g, mr, packed.steps, apack)
    return apack


def _mc_tiles(m, n, packed, threads=2):
    """M block size: up to MC_TILES tiles, smaller when that leaves threads idle."""
    mr, nr, _ = _GEOM[packed.isa]
    n_blocks = _ceil(_ceil(n, nr), NC_PANELS if nr == 16 else 8)
    want = max(4 * threads // n_blocks, 1)
    return int(min(MC_TILES, max(1, _ceil(_ceil(m, mr), want))))


def _run(apack, m, packed, offs, dst, trans, requant, mult, zp, lo, hi):
    drive = _DRIVERS["avx512vnni" if packed.isa == "avxvnni" else packed.isa]
    drive(apack, m, packed.n, packed.panels, packed.steps, offs, _mc_tiles(m, packed.n, packed),
          dst, trans, requant, mult, np.int64(zp), np.int64(lo), np.int64(hi))


def gemm_packed(a, a_zp, packed: PackedB, bias, acc) -> None:
    """acc (M, N) int32 (wraps) or int64 (exact) = bias + (a - a_zp) @ (b - b_zp), see module doc."""
    where = "gemm_packed"
    _check_a(a, packed.k, where)
    _check_zp(a_zp, a.dtype, where)
    bias = _vec(bias, packed.n, np.int64, "bias", where)
    if not isinstance(acc, np.ndarray) or acc.shape != (a.shape[0], packed.n) or \
            acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"{where}: acc must be int32/int64 {(a.shape[0], packed.n)}, got "
                         f"{getattr(acc, 'dtype', None)} {getattr(acc, 'shape', None)}")
    exact64 = acc.dtype == np.int64 and not fits_int32(packed, a.dtype, a_zp, bias)
    if packed.isa == "portable" or exact64 or a.shape[0] == 0:
        gemm_acc(a, packed.b, a_zp, packed.b_zp, bias, acc)
        return
    offs, o = _offsets(packed, a.dtype, a_zp, bias)
    apack = pack_a(a, packed, o)
    _run(apack, a.shape[0], packed, offs, acc, 0, False, np.ones(1, np.float32), 0, 0, 0)


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
    bias = _vec(bias, packed.n, np.int64, "bias", where)
    mult = _vec(mult, packed.n, np.float32, "mult", where)
    _check_requant(mult, zp, lo, hi, out, (a.shape[0], packed.n), where)
    if packed.isa == "portable" or a.shape[0] == 0:
        acc = np.empty((a.shape[0], packed.n), np.int32)
        gemm_acc(a, packed.b, a_zp, packed.b_zp, bias, acc)
        _requant_rows(acc, mult, zp, lo, hi, out)
        return
    offs, o = _offsets(packed, a.dtype, a_zp, bias)
    apack = pack_a(a, packed, o)
    _run(apack, a.shape[0], packed, offs, out, 0, True, mult, zp, lo, hi)


def _requant_rows(acc, mult, zp, lo, hi, out):
    v = acc.astype(np.float32) * mult[None, :]
    v = np.clip(v, np.float32(lo - zp), np.float32(hi - zp))
    out[...] = (np.rint(v).astype(np.int64) + zp).astype(out.dtype)


def gemm_packed_requant_ref(a, a_zp, packed: PackedB, bias, mult, zp, lo, hi, out) -> None:
    """NumPy twin: int64 sum wrapped to int32, then the float32 requantization."""
    acc = np.empty((a.shape[0], packed.n), np.int32)
    gemm_packed_ref(a, a_zp, packed, bias, acc)
    _requant_rows(acc, np.broadcast_to(np.asarray(mult, np.float32), (packed.n,)), zp, lo, hi, out)
