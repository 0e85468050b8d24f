"""Packing for the SIMD GEMM engine (kernels.simd): the weights B once into panels, the
activations A per (M block, K block) inside the drivers, and the per-call column offsets.

    bw[k, n] = b[k, n] - b_zp[n]                   int16 panels (G = 2) or int8 (G = 4)
    S[n]     = sum_k bw[k, n]                      col_sum; abs_sum = sum_k |bw[k, n]|
    off[n]   = bias[n] - (a_zp + o) * S[n]         int32 (wraps), o = 128 for int8 A on VNNI

Panel layout [K block][panel][step][NR][G], K blocks of kc_steps(steps) steps (pack_panels).
The "amx" panels are the avx512vnni layout (NR = 32, G = 4) with K padded with zeros to whole
AMX tile steps (steps a multiple of AMX_TILE_STEPS = 16, i.e. K to a multiple of 64) and K
blocks of kc_tile_steps(steps) steps, a multiple of 16 (pack_panels_kc).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import cpu
from ..conv_rows import CONV_KIND, pack_conv_tiles
from ..jit import kernel, kernel_array
from .microkernels import AMX_MR, AMX_NR, AMX_TILE_STEPS, AVX2_MR, AVX2_NR, VNNI_MR, VNNI_NR

KC_STEPS = 128            # longest K block (steps; see kc_steps): B block of 16 panels = 128 KiB, in L2
NC_PANELS = 16            # N block: 16 panels
AMX_KC_TILES = 64         # longest AMX K block, in tile steps of 16 steps (64 k): up to K = 4096 the
                          # C tiles stay in tile registers across all of K (one init load, one store
                          # or requant); 1 thread, 2048^3 15.8-18.8 ms against 22.6-25.4 with 8 (512 k)
AMX_MIN_K = 128           # below, "amx" packs for avx512vnni: K padded to 64 wasted most tile work
                          # and the VNNI path requantizes in registers (ops suite, K = 16..64:
                          # 0.14-0.33x of onnxruntime on AMX against 0.57-1.7x on VNNI)
MC_TILES = 16             # M block: at most 16 tiles of MR rows
# isa -> (MR, NR, G): tile rows, tile columns, k per int32 lane of its micro-kernel
GEOM = {"avx2": (AVX2_MR, AVX2_NR, 2), "avx512vnni": (VNNI_MR, VNNI_NR, 4), "amx": (AMX_MR, AMX_NR, 4),
        "avx2-ubsw": (4, 16, 4)}   # kernels.fast_pairs' vpmaddubsw engine


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


def ceil_div(a, b):
    return -(-a // b)


ALIGN = 64                # bytes: a cache line. Tile rows and zmm panel rows that start on one are loaded
                          # from one line, not two (AMX 512^3: 0.14 ms with A and B aligned, 0.31 with
                          # both 16 bytes off; 2048^3 20 vs 34 ms; bound kernel, alternating)


@kernel
def aligned_bytes(n):
    """An uninitialised uint8 array of n bytes whose data starts on an ALIGN-byte boundary (a view
    of a slightly longer buffer); callers view it as their dtype."""
    buf = np.empty(n + ALIGN, np.uint8)
    off = (ALIGN - buf.ctypes.data % ALIGN) % ALIGN
    return buf[off:off + n]


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


@kernel(inline="always")
def kc_tile_steps(steps):
    """The AMX K block (steps, a multiple of 16): `steps` (a multiple of 16) cut into equal
    blocks of at most AMX_KC_TILES tile steps of 16, as kc_steps cuts steps."""
    u = steps // 16
    nb = (u + AMX_KC_TILES - 1) // AMX_KC_TILES
    return 16 * max(1, (u + nb - 1) // max(nb, 1))


def amx_steps(k: int) -> int:
    """Steps of the AMX panels for K: K padded to whole tile steps (64 k)."""
    return ceil_div(int(k), 4 * AMX_TILE_STEPS) * AMX_TILE_STEPS


def k_block(steps: int) -> int:
    """Python twin of kc_steps: the K block (in steps) the packers and drivers use for `steps`."""
    nb = -(-int(steps) // KC_STEPS)
    return max(1, -(-int(steps) // max(nb, 1)))


@kernel
def pack_panels(bw, nr, g, steps, panels):
    """pack_panels_kc with K blocks of kc_steps(steps) steps."""
    pack_panels_kc(bw, nr, g, steps, kc_steps(steps), panels)


@kernel
def pack_panels_kc(bw, nr, g, steps, kc, panels):
    """panels[(s0*n_panels + p*ns)*nr*g + ((s - s0)*nr + j)*g + t] = bw[s*g + t, p*nr + j] for
    K blocks s0 = 0, kc, 2kc... of ns = min(kc, steps - s0) steps (0 outside bw): the panels of
    one K block are contiguous."""
    k_, n_ = bw.shape
    n_panels = panels.shape[0] // (steps * nr * g)
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


def pack_b(b, b_zp, isa: str | None = None, amx_min_k: int | None = None) -> PackedB:
    """Pack weights b (K, N) int8/uint8 with per-column zero points b_zp (N,) for `isa`
    (default kernels.cpu.best_isa()); "amx" packs for "avx512vnni" when K < amx_min_k (default
    AMX_MIN_K), and
    for "avx2" (as "avx512vnni" does) when some b - b_zp leaves int8."""
    if not isinstance(b, np.ndarray) or b.ndim != 2:
        raise ValueError(f"pack_b: weight b must be a 2-D int8/uint8 array, got {type(b).__name__} "
                         f"{np.shape(b)}")
    b_zp = vector_arg(b_zp, b.shape[1], np.int64, "b_zp", "pack_b")
    _check_b(b, b_zp)
    isa = cpu.best_isa() if isa is None else isa
    if isa not in cpu.ISAS:
        raise ValueError(f"pack_b: unknown isa {isa!r}")
    bw = np.ascontiguousarray(b, np.int64) - b_zp[None, :]
    if isa == "amx" and cpu.missing("amx"):    # a tile instruction without them is SIGILL
        raise ValueError(f"pack_b: isa 'amx' cannot run here: {cpu.missing('amx')}")
    if isa == "amx" and b.shape[0] < (AMX_MIN_K if amx_min_k is None else amx_min_k):
        isa = "avx512vnni"
    if isa == "avxvnni":            # no 256-bit VEX vpdpbusd micro-kernel yet: int16 panels
        isa = "avx2"
    if isa in ("avx512vnni", "amx") and (bw.min() < -128 or bw.max() > 127):
        isa = "avx2"
    k, n = b.shape
    col_sum, abs_sum = bw.sum(0), np.abs(bw).sum(0)
    if isa == "portable":
        return PackedB(isa, k, n, 0, np.zeros(0, np.int16), col_sum, abs_sum, b.copy(), b_zp)
    _, nr, g = GEOM[isa]
    steps = amx_steps(k) if isa == "amx" else ceil_div(k, g)
    dtype = np.dtype(np.int16 if g == 2 else np.int8)
    panels = aligned_bytes(ceil_div(n, nr) * steps * nr * g * dtype.itemsize).view(dtype)
    pack_panels_kc(bw, nr, g, steps, kc_tile_steps(steps) if isa == "amx" else kc_steps(steps), panels)
    return PackedB(isa, k, n, steps, panels, col_sum, abs_sum, b.copy(), b_zp)


# Source of A, packed per (M block, K block) inside the driver. geo (int64):


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



def vector_arg(v, n, dtype, name, where):
    """A scalar or an (n,) vector as a contiguous, writable (n,) array of dtype, else ValueError."""
    v = np.asarray(v)
    if v.ndim == 0:
        v = np.full(n, v)
    if v.shape != (n,):
        raise ValueError(f"{where}: {name} must be a scalar or have shape ({n},), got {v.shape}")
    return kernel_array(v, dtype)


def offsets(packed, a_dtype, a_zp, bias):
    """bias[n] - (a_zp + o) * S[n], wrapped to int32 (the sums run mod 2**32)."""
    o = 128 if (packed.isa != "avx2" and a_dtype == np.int8) else 0
    off = bias - (np.int64(a_zp) + o) * packed.col_sum
    pad = ceil_div(packed.n, GEOM[packed.isa][1]) * GEOM[packed.isa][1]
    out = np.zeros(pad, np.int32)
    out[:packed.n] = off.astype(np.int32)
    return out, o


def fits_int32(packed, a_dtype, a_zp, bias) -> bool:
    """True when every exact acc is provably inside int32 (so int32 sums are exact)."""
    info = np.iinfo(a_dtype)
    amax = max(abs(int(info.max) - int(a_zp)), abs(int(info.min) - int(a_zp)))
    bound = np.abs(bias.astype(np.float64)) + float(amax) * packed.abs_sum.astype(np.float64)
    return bool(bound.max(initial=0.0) < 2.0**31 - 2**12)

