"""Fast path of onnxruntime's AVX2 u8 x s8 GEMM (accumulation mode `x86-u8s8-pairs`), bit-exact
with kernels.x86pairs.gemm_acc_pairs and using the same instructions as MLAS.

Contract (identical to kernels.x86pairs.gemm_acc_pairs; a uint8 (M, K), b int8 (K, N)):

    sat16(v)   = min(max(v, -32768), 32767)
    raw[m, n]  = sum_j sat16(a[m, 2j] * b[2j, n] + a[m, 2j+1] * b[2j+1, n])   (zero beyond K)
    acc[m, n]  = raw[m, n] - a_zp * sum_k b[k, n] - b_zp[n] * sum_k a[m, k]
                 + K * a_zp * b_zp[n] + bias[n]

How. `pack_b_pairs` stores the RAW weights (no zero point) as int8 panels of 16 columns, K
zero-padded to a multiple of 4, each column's 4 consecutive k adjacent (pairs (2j, 2j+1) next
to each other), in kernels.simd's panel layout [K block][panel][step][16][4]. The micro-
kernel (4 rows x 16 columns, as MLAS) broadcasts 4 bytes of a row of A and runs, per 8-column ymm,

    vpmaddubsw(a_u8, b_s8)  -> 16 int16 lanes, each sat16(a[k]b[k] + a[k+1]b[k+1])
    vpmaddwd(that, ones)    -> 8 int32 lanes, the two saturated pairs of one k quad summed
    vpaddd                  -> int32 accumulator (wraps mod 2**32)

so raw is formed exactly as MLAS forms it. raw is exact in int32 while ceil(K/2) * 32768 <
2**31 (K <= 131070); the zero-point and bias terms are then added in int64 from exact row and
column sums and stored: an int32 acc wraps (as MLAS's int32 sum does), an int64 acc is exact.
For an int64 acc with K > 131070 the exact slow kernel (x86pairs) runs instead; on a host
without AVX2 every call runs x86pairs.

Convolution (conv2d_pairs_fast, same results as x86pairs.conv2d_acc_pairs): per image and
group, im2col rows (oy, ox) with K in onnxruntime's NHWC order (ky, kx, c), padded taps equal
to x_zp, then the GEMM above with the im2col row sums in the zero-point terms. Depthwise convs
(C/group == M/group == 1) are summed exactly by kernels.fast_conv, as MLAS's depthwise kernels do.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import cgutils

from . import cpu
from .conv import ConvGeom
from .fast_conv import conv2d_fast, conv2d_fast_requant, group_rq, pack_conv
from .simd.drivers import a_in_place, driver_consts, epilogue, gemm_geo, item_c, n_items, rq_none, work_threads
from .simd.microkernels import make_microkernel, make_microkernel_q, pmaddwd_fn
from .simd.packing import pack_block, pack_panels
from .conv_plan import ConvPlan, GroupPlan, make_plan, run_plan
from .conv_rows import conv_geo
from .jit import kernel, kernel_array
from .threads import bind_items
from .requant import requant_float
from .x86pairs import (check_conv_pairs, check_conv_pairs_inputs, check_gemm_pairs, conv2d_acc_pairs, conv2d_acc_pairs_ref,
                       gemm_acc_pairs, gemm_acc_pairs_ref, is_ort_depthwise, weights_khwc)

MR, NR, G = 4, 16, 4               # tile rows, tile columns, k per int32 lane (8 accumulators: with
                                   # B, broadcast, product and the ones vector, 13 of 16 ymm registers)
K_RAW_EXACT = 131070               # largest K whose raw pair sum always fits int32


def _madd_ubsw(builder, acc, a_splat, b8):
    """acc + vpmaddwd(vpmaddubsw(a_u8, b_s8), ones): per int32 lane, the two int16-saturated
    pair sums of one k quad, added into acc (int32, wraps)."""
    v8 = ir.VectorType(ir.IntType(8), 32)
    v16 = ir.VectorType(ir.IntType(16), 16)
    ubsw = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16, [v8, v8]),
                                          "llvm.x86.avx2.pmadd.ub.sw")
    pairs = builder.call(ubsw, [builder.bitcast(a_splat, v8), b8])
    ones = ir.Constant(v16, [1] * 16)
    return builder.add(acc, builder.call(pmaddwd_fn(builder), [pairs, ones]))


mk_ubsw = make_microkernel(MR, NR // 8, 8, 8, _madd_ubsw)
mk_ubsw_q = make_microkernel_q(MR, NR // 8, 8, 8, _madd_ubsw)


class PackedPairs(NamedTuple):
    """Raw int8 weights packed for vpmaddubsw. panels: 1-D int8, [K block of kernels.simd.packing.kc_steps(steps) steps][panel]
    [step][16 columns][4 k], zero beyond K and N; col_sum: int64 (N,) sum_k b[k, n]; b: a
    copy of the weights (for the fallback and the twin)."""
    k: int
    n: int
    steps: int
    panels: np.ndarray
    col_sum: np.ndarray
    b: np.ndarray


def _ceil(a, b):
    return -(-a // b)


def pack_b_pairs(b) -> PackedPairs:
    """Pack weights b (K, N) int8 (raw values; zero points are applied at run time)."""
    if not isinstance(b, np.ndarray) or b.ndim != 2 or b.dtype != np.int8:
        raise ValueError(f"pack_b_pairs: weight b must be a 2-D int8 array, got "
                         f"{getattr(b, 'dtype', type(b).__name__)} {np.shape(b)}")
    if min(b.shape) < 1:
        raise ValueError(f"pack_b_pairs: weight b has an empty shape {b.shape}")
    k, n = b.shape
    steps = _ceil(k, G)
    panels = np.empty(_ceil(n, NR) * steps * NR * G, np.int8)
    pack_panels(np.ascontiguousarray(b), NR, G, steps, panels)
    return PackedPairs(k, n, steps, panels, b.astype(np.int64).sum(axis=0), b.copy())


def _check_packed(packed, where):
    if not isinstance(packed, PackedPairs):
        raise ValueError(f"{where}: packed must come from pack_b_pairs, got {type(packed).__name__}")
    p = packed.panels
    want = _ceil(packed.n, NR) * _ceil(packed.k, G) * NR * G
    if not (isinstance(p, np.ndarray) and p.dtype == np.int8 and p.ndim == 1 and p.flags.c_contiguous
            and p.size == want and packed.steps == _ceil(packed.k, G)
            and isinstance(packed.b, np.ndarray) and packed.b.shape == (packed.k, packed.n)
            and packed.b.dtype == np.int8 and packed.col_sum.shape == (packed.n,)):
        raise ValueError(f"{where}: packed weights are inconsistent (panels "
                         f"{getattr(p, 'dtype', None)} {getattr(p, 'shape', None)}, want int8 ({want},))")


@kernel
def _tiles_ubsw(a, a0, lda, panels, b0, ns, q0, q1, t0, nt, c, c0, ldc, offs, first, qlast, qout, geo):
    """Tiles t0..t0+nt-1 (A words at a0 + (tile - t0)*4*lda) x panels q0..q1-1 (B at b0 + p*ns*64
    int8) of one K block, 4x16 vpmaddubsw micro-kernel, into C at c0 + (tile - t0)*4*ldc +
    (p - q0)*16; with qlast (the last K block of a requantized GEMM) mk_ubsw_q stores the
    requantized bytes into qout (kernels.simd.drivers.q_consts) instead."""
    if qlast:          # the branch outside the loops: the int32 loop stays as lean as before
        for t in range(nt):
            for p in range(q0, q1):
                mk_ubsw_q(a, a0 + t * 4 * lda, lda, panels, b0 + p * ns * 64, ns, c, c0 + t * 4 * ldc + (p - q0) * 16,
                          ldc, offs, p * 16, first, qout, (t0 + t) * 4, p * 16, geo)
    else:
        for t in range(nt):
            for p in range(q0, q1):
                mk_ubsw(a, a0 + t * 4 * lda, lda, panels, b0 + p * ns * 64, ns, c, c0 + t * 4 * ldc + (p - q0) * 16,
                        ldc, offs, p * 16, first)


@kernel
def _drive_ubsw(src, geo, panels, offs, dst, rq, i0, i1):
    """Items i0..i1-1 (kernels.simd.drivers.item_bounds): per K block (kernels.simd.packing.kc_steps), the item's A
    tiles as u8 quads (read in place from a row-major A when K % 4 == 0 and the tiles are full,
    else packed once), then per B block of 16 panels, per tile and panel, the 4x16 vpmaddubsw
    micro-kernel accumulates into the item's int32 C (started from offs): dst itself when
    kernels.simd.drivers.c_target allows, else a block written by epilogue."""
    mr, nr, g, nc = 4, 16, 4, 16
    steps, n_panels, fused, kc, qout = driver_consts(geo, dst, rq, nr, g)
    for item in range(i0, i1):
        t0, t1, p0, p1, direct, ldc, cblk = item_c(item, geo, dst, rq, mr, nr, nc, fused, steps)
        in_place = a_in_place(geo, np.int64(0), t1, mr)
        apk = np.empty(0 if in_place else (t1 - t0) * 128 * mr * g, np.uint8)
        for s0 in range(0, steps, kc):
            ns, first = min(kc, steps - s0), 1 if s0 == 0 else 0
            if in_place:
                a, a0, lda = src, (t0 * mr * geo[2]) // 4 + s0, geo[2] // 4
            else:
                pack_block(src, geo, np.int64(0), np.int64(g), np.int64(mr), t0, t1, s0, ns, apk)
                a, a0, lda = apk, 0, ns
            for q0 in range(p0, p1, nc):
                q1 = min(q0 + nc, p1)
                b0 = s0 * n_panels * nr * g
                if direct:
                    _tiles_ubsw(a, a0, lda, panels, b0, ns, q0, q1, t0, t1 - t0, dst, t0 * mr * ldc + q0 * nr, ldc,
                                offs, first, False, qout, geo)
                else:
                    _tiles_ubsw(a, a0, lda, panels, b0, ns, q0, q1, t0, t1 - t0, cblk, (q0 - p0) * nr, ldc, offs,
                                first, fused and s0 + ns >= steps, qout, geo)
        if not direct and not fused:
            epilogue(cblk.reshape(((t1 - t0) * mr, ldc)), t0 * mr, p0 * nr, geo, dst, rq)


@kernel
def _fix_zero_points(acc, a, a_zp, col_sum, b_zp, bias):
    """acc[m, n] (holding raw) += -a_zp*col_sum[n] - b_zp[n]*rowsum[m] + K*a_zp*b_zp[n] + bias[n],
    computed in int64 and stored in acc's dtype (an int32 store wraps)."""
    m_, k_ = a.shape
    n_ = acc.shape[1]
    off = np.empty(n_, np.int64)
    for n in range(n_):
        off[n] = bias[n] - a_zp * col_sum[n] + np.int64(k_) * a_zp * b_zp[n]
    for m in range(m_):
        rs = np.int64(0)
        for k in range(k_):
            rs += np.int64(a[m, k])
        for n in range(n_):
            acc[m, n] = np.int64(acc[m, n]) + off[n] - b_zp[n] * rs


@kernel(parallel=True)
def _par_ubsw(src, geo, panels, offs, dst, rq, n_items, parts):
    """_drive_ubsw over items 0..n_items-1 in `parts` contiguous ranges, run by Numba's parallel
    threads (kernels.threads.native_split)."""
    for p in prange(parts):
        i0, i1 = n_items * p // parts, n_items * (p + 1) // parts
        if i0 < i1:
            _drive_ubsw(src, geo, panels, offs, dst, rq, i0, i1)


def run_raw(a, packed: PackedPairs, raw, threads=None, off=None, rq=None, conv=None) -> None:
    """raw (M, N) int32/int64 C-contiguous = int32(off[n] + the raw pair sums of a (M, K) uint8
    C-contiguous), wrapping mod 2**32 (off: int64 (N,), default 0); with rq = (True, mult (N,),
    zp, lo, hi), raw is uint8/int8 and receives the ORT float requantization of those int32
    sums instead. With conv = (c0, cg, kh, kw, cgeo, pad), `a` is an NHWC image (N, H, W, C) and
    A its im2col rows (kernels.conv_rows.im2col_rows), packed tile by tile, never stored.
    Callers validate every argument (gemm_pairs_packed, kernels.conv_plan do)."""
    rows = a.shape[0] if conv is None else raw.shape[0]
    bind_raw(packed, rows, off, rq, conv, a.shape, threads)(a.reshape(-1), raw)


def bind_raw(packed: PackedPairs, rows, off=None, rq=None, conv=None, x_shape=None, threads=None):
    """run_raw with everything but the data fixed: call(a_flat, raw) for an A of `rows` rows (or,
    with conv, the NHWC image of shape x_shape). Work split and threads are taken now.
    Pointer-level: callers check a and raw on every call."""
    offs = np.zeros(_ceil(packed.n, NR) * NR, np.int32)
    if off is not None:
        offs[:packed.n] = off.astype(np.int32)      # wraps: the sums are taken mod 2**32
    geo = gemm_geo(rows, packed.k, packed.n, "avx2-ubsw")
    if conv is not None:
        geo = conv_geo(geo, x_shape, *conv)
    rq = rq_none() if rq is None else rq
    return bind_items(_drive_ubsw, _par_ubsw, (geo, packed.panels, offs), (rq,), n_items(geo, "avx2-ubsw"),
                      work_threads(geo, threads))


def gemm_pairs_packed(a, a_zp, packed: PackedPairs, b_zp, bias, acc) -> None:
    """acc = onnxruntime's AVX2 u8s8 GEMM of a with the packed weights (module docstring).

    a: (M, K) uint8; a_zp: integer in [0, 255]; packed: pack_b_pairs(b); b_zp: (N,) integers in
    [-128, 127]; bias: (N,) int64; acc: (M, N) int32 (wraps like MLAS) or int64. Same results
    as kernels.x86pairs.gemm_acc_pairs(a, b, a_zp, b_zp, bias, acc).
    """
    where = "gemm_pairs_packed"
    _check_packed(packed, where)
    try:
        a_zp, b_zp, bias = check_gemm_pairs(a, packed.b, a_zp, b_zp, bias, acc)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    slow = not cpu.has_avx2() or (acc.dtype == np.int64 and packed.k > K_RAW_EXACT)
    if slow or a.shape[0] == 0:
        gemm_acc_pairs(a, packed.b, a_zp, b_zp, bias, acc)
        return
    a = kernel_array(a)
    out = acc if acc.flags.c_contiguous else np.empty(acc.shape, acc.dtype)
    if not b_zp.any():
        # no row-sum term: bias - a_zp*S[n] starts the int32 sums; exact when they cannot wrap
        off = bias - np.int64(a_zp) * packed.col_sum
        raw_max = float(_ceil(packed.k, 2) * 32768)
        if acc.dtype == np.int32 or raw_max + float(np.abs(off).max(initial=0)) < 2.0**31:
            run_raw(a, packed, out, off=off)
            if out is not acc:
                acc[...] = out
            return
    run_raw(a, packed, out)
    _fix_zero_points(out, a, np.int64(a_zp), packed.col_sum, b_zp, bias)
    if out is not acc:
        acc[...] = out


def gemm_pairs_packed_ref(a, a_zp, packed: PackedPairs, b_zp, bias, acc) -> None:
    """NumPy int64 twin of gemm_pairs_packed (x86pairs' twin on the unpacked weights)."""
    _check_packed(packed, "gemm_pairs_packed")
    gemm_acc_pairs_ref(a, packed.b, a_zp, b_zp, bias, acc)


# ----------------------------------------------------------------------------- convolution
class PackedConvPairs(NamedTuple):
    """Conv weights prepared once. kind "gemm": packs holds one PackedPairs per group, its B
    the group's weights in onnxruntime's (ky, kx, c) K order; kind "depthwise" (C/group ==
    M/group == 1): no packs, the exact kernels.fast_conv path runs. w is a copy of the weights."""
    kind: str
    geom: object
    packs: tuple
    w: np.ndarray
    dw_cache: dict     # depthwise: the exact engine's weights per w_zp (bytes)


def pack_conv_pairs(w, geom) -> PackedConvPairs:
    """Prepare w (M, C/group, KH, KW) int8 for conv2d_pairs_fast; geom: kernels.conv.ConvGeom
    (or any object with its fields)."""
    if not isinstance(w, np.ndarray) or w.ndim != 4 or w.dtype != np.int8 or min(w.shape) < 1:
        raise ValueError(f"pack_conv_pairs: weight w must be a non-empty 4-D int8 array, got "
                         f"{getattr(w, 'dtype', type(w).__name__)} {np.shape(w)}")
    group = int(geom.group)
    if group < 1 or w.shape[0] % group:
        raise ValueError(f"pack_conv_pairs: weight {w.shape} does not split into {group} groups")
    if is_ort_depthwise(w, geom):
        return PackedConvPairs("depthwise", geom, (), w.copy(), {})
    packs = tuple(pack_b_pairs(wk) for wk in weights_khwc(w, group))
    return PackedConvPairs("gemm", geom, packs, w.copy(), {})


def plan_conv_pairs(pc: PackedConvPairs, in_chw, x_zp, w_zp, bias, rq) -> ConvPlan:
    """The conv plan (kernels.conv_plan) of a GEMM-kind pc for uint8 inputs (C, H, W): per group,
    the raw vpmaddubsw sums, then off[j] = bias[j] - x_zp*col_sum[j] + K*x_zp*w_zp[j] and the
    w_zp[j]*rowsum term. w_zp, bias: int64 (M,); rq as kernels.conv_rows.rows_to_nchw."""
    if pc.kind != "gemm":
        raise ValueError(f"plan_conv_pairs: a {pc.kind} conv has no GEMM plan")
    mg = pc.w.shape[0] // int(pc.geom.group)
    k = pc.w.shape[1] * pc.w.shape[2] * pc.w.shape[3]
    groups = []
    for gi, pack in enumerate(pc.packs):
        wz = np.ascontiguousarray(w_zp[gi * mg:(gi + 1) * mg], np.int64)
        off = bias[gi * mg:(gi + 1) * mg] - np.int64(x_zp) * pack.col_sum + np.int64(k) * np.int64(x_zp) * wz
        bind_q = partial(_raw_bind_q, pack, off.astype(np.int64), gi * mg) if not wz.any() else None
        groups.append(GroupPlan(partial(_raw_gemm, pack), off.astype(np.int64), wz, bool(wz.any()), bind_q))
    return make_plan(in_chw, np.uint8, x_zp, pc.geom, pc.w.shape, groups, rq)


def _raw_gemm(pack, cols, raw):
    run_raw(cols, pack, raw)


def _raw_bind_q(pack, off, c0, rows, conv, x_shape, rq):
    """GroupPlan.bind_q of the pair engine (the offsets hold bias and zero points: no wz term)."""
    return bind_raw(pack, rows, off, group_rq(rq, c0, pack.n), conv, x_shape)


def _check_packed_conv(pc, where):
    if not isinstance(pc, PackedConvPairs) or pc.kind not in ("gemm", "depthwise"):
        raise ValueError(f"{where}: pc must come from pack_conv_pairs, got {type(pc).__name__}")
    group = int(pc.geom.group)
    if pc.kind == "gemm":
        k = pc.w.shape[1] * pc.w.shape[2] * pc.w.shape[3]
        if len(pc.packs) != group:
            raise ValueError(f"{where}: pc has {len(pc.packs)} packs for {group} groups")
        for p in pc.packs:
            _check_packed(p, where)
            if (p.k, p.n) != (k, pc.w.shape[0] // group):
                raise ValueError(f"{where}: a group's packed weights ({p.k}, {p.n}) do not match w {pc.w.shape}")


def conv2d_pairs_fast(x, x_zp, pc: PackedConvPairs, w_zp, bias, acc) -> None:
    """acc = onnxruntime's QLinearConv accumulation for uint8 x and int8 w on an AVX2 host,
    the same results as kernels.x86pairs.conv2d_acc_pairs(x, pc.w, x_zp, w_zp, bias, pc.geom, acc).

    x: (N, C, H, W) uint8; x_zp in [0, 255]; pc: pack_conv_pairs(w, geom); w_zp: (M,) in
    [-128, 127]; bias: (M,) int64; acc: (N, M, OH, OW) int32 (wraps) or int64. Per group and
    output pixel the im2col row is in (ky, kx, c) order with padded taps equal to x_zp, and
    gemm_pairs_packed's formula applies with K = KH*KW*C/group; depthwise convs are exact.
    """
    where = "conv2d_pairs_fast"
    _check_packed_conv(pc, where)
    try:
        x_zp, w_zp, bias = check_conv_pairs(x, pc.w, x_zp, w_zp, bias, pc.geom, acc)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    k = pc.w.shape[1] * pc.w.shape[2] * pc.w.shape[3]
    slow = not cpu.has_avx2() or (acc.dtype == np.int64 and k > K_RAW_EXACT)
    if slow:
        conv2d_acc_pairs(x, pc.w, x_zp, w_zp, bias, pc.geom, acc)
        return
    out = acc if acc.flags.c_contiguous else np.empty(acc.shape, acc.dtype)
    if pc.kind == "depthwise":
        conv2d_fast(x, x_zp, _depthwise_pack(pc, w_zp), bias, out)
    else:
        run_plan(plan_conv_pairs(pc, x.shape[1:], x_zp, w_zp, bias, rq_none()), x, out, where)
    if out is not acc:
        acc[...] = out


def _depthwise_pack(pc: PackedConvPairs, w_zp):
    """The exact depthwise engine's weights for pc (packed once per weight zero point)."""
    key = w_zp.tobytes()
    cached = pc.dw_cache.get(key)
    if cached is None:
        cached = pc.dw_cache[key] = pack_conv(pc.w, w_zp, _conv_geom(pc.geom))
    return cached


def conv2d_pairs_fast_requant(x, x_zp, pc: PackedConvPairs, w_zp, bias, mult, zp, lo, hi, out) -> None:
    """out (N, M, OH, OW) uint8/int8 = onnxruntime's QLinearConv on an AVX2 host: the int32
    accumulator of conv2d_pairs_fast (wrapped), then clamp(rint_RNE(clamp(f32(acc) * mult[m],
    lo - zp, hi - zp)) + zp, lo, hi), every float op in float32 (kernels.requant)."""
    where = "conv2d_pairs_fast_requant"
    _check_packed_conv(pc, where)
    m = pc.w.shape[0]
    try:
        x_zp, w_zp, bias, (oh, ow) = check_conv_pairs_inputs(x, pc.w, x_zp, w_zp, bias, pc.geom, where)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    shape = (x.shape[0], m, oh, ow)
    if not isinstance(out, np.ndarray) or out.dtype not in (np.uint8, np.int8) or out.shape != shape \
            or not out.flags.c_contiguous:
        raise ValueError(f"{where}: out must be a C-contiguous uint8/int8 array of shape {shape}, got "
                         f"{getattr(out, 'dtype', None)} {getattr(out, 'shape', None)}")
    mult = kernel_array(np.broadcast_to(np.asarray(mult, np.float32), (m,)))
    info = np.iinfo(out.dtype)
    if not (info.min <= int(lo) <= int(zp) <= int(hi) <= info.max) or not np.all(np.isfinite(mult)):
        raise ValueError(f"{where}: need finite mult and {info.min} <= lo <= zp <= hi <= {info.max}")
    if not cpu.has_avx2():
        acc = np.empty(shape, np.int32)
        conv2d_acc_pairs(x, pc.w, x_zp, w_zp, bias, pc.geom, acc)
        requant_float(acc.reshape(shape[0], m, -1), mult, zp, lo, hi, out.reshape(shape[0], m, -1))
        return
    if pc.kind == "depthwise":
        conv2d_fast_requant(x, x_zp, _depthwise_pack(pc, w_zp), bias, mult, zp, lo, hi, out)
        return
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    run_plan(plan_conv_pairs(pc, x.shape[1:], x_zp, w_zp, bias, rq), x, out, where)


def _conv_geom(g) -> ConvGeom:
    return ConvGeom(int(g.stride_h), int(g.stride_w), int(g.pad_top), int(g.pad_left), int(g.pad_bottom),
                    int(g.pad_right), int(g.dil_h), int(g.dil_w), int(g.group))


def conv2d_pairs_fast_ref(x, x_zp, pc: PackedConvPairs, w_zp, bias, acc) -> None:
    """NumPy int64 twin of conv2d_pairs_fast (x86pairs' conv twin on the unpacked weights)."""
    _check_packed_conv(pc, "conv2d_pairs_fast")
    conv2d_acc_pairs_ref(x, pc.w, x_zp, w_zp, bias, pc.geom, acc)
