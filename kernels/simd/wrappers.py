"""The SIMD GEMM engine's checked entry points (kernels.simd): every argument validated, then
the packed weights run by the drivers; the portable kernels.gemm when the host has no SIMD
engine or an int64 sum could leave int32. NumPy int64 twins `*_ref`.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from ..gemm import gemm_acc, gemm_acc_ref
from ..requant import ort_round_ref
from .drivers import bind_packed, gemm_geo, rq_none, run_packed
from ..jit import kernel_array
from .packing import PackedB, fits_int32, offsets, vector_arg

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



def _check_gemm(a, a_zp, packed: PackedB, bias, acc, where) -> tuple:
    """gemm_packed's arguments checked: (bias as int64 (N,), whether the portable kernel runs:
    no SIMD engine, an int64 acc whose sums could leave int32, or no rows)."""
    _check_a(a, packed.k, where)
    _check_zp(a_zp, a.dtype, where)
    bias = vector_arg(bias, packed.n, np.int64, "bias", where)
    if not isinstance(acc, np.ndarray) or acc.shape != (a.shape[0], packed.n) or \
            acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"{where}: acc must be int32/int64 {(a.shape[0], packed.n)}, got "
                         f"{getattr(acc, 'dtype', None)} {getattr(acc, 'shape', None)}")
    exact64 = acc.dtype == np.int64 and not fits_int32(packed, a.dtype, a_zp, bias)
    return bias, packed.isa == "portable" or exact64 or a.shape[0] == 0


def bind_gemm_packed(a, a_zp, packed: PackedB, bias, acc):
    """call() doing gemm_packed(a, a_zp, packed, bias, acc) on these very arrays (a's values
    read at each call), checked now: the zero-point offsets, the GEMM geometry and the work
    split (thread count: get_num_threads() now) derived once. Only the SIMD driver is bound;
    otherwise (or for arrays that are not C-contiguous) the call is gemm_packed itself."""
    bias, portable = _check_gemm(a, a_zp, packed, bias, acc, "gemm_packed")
    if portable or not (a.flags.c_contiguous and acc.flags.c_contiguous):
        return partial(gemm_packed, a, a_zp, packed, bias, acc)
    offs, o = offsets(packed, a.dtype, a_zp, bias)
    run = bind_packed(gemm_geo(a.shape[0], packed.k, packed.n, packed.isa), o, packed, offs, rq_none())
    return partial(run, a.reshape(-1), acc)


def gemm_packed(a, a_zp, packed: PackedB, bias, acc) -> None:
    """acc (M, N) int32 (wraps) or int64 (exact) = bias + (a - a_zp) @ (b - b_zp), see module doc."""
    where = "gemm_packed"
    bias, portable = _check_gemm(a, a_zp, packed, bias, acc, where)
    if portable:
        gemm_acc(a, packed.b, a_zp, packed.b_zp, bias, acc)
        return
    offs, o = offsets(packed, a.dtype, a_zp, bias)
    a = kernel_array(a)
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
    a = kernel_array(a)
    rq = (True, mult, np.int64(zp), np.int64(lo), np.int64(hi))
    run_packed(a.reshape(-1), gemm_geo(a.shape[0], packed.k, packed.n, packed.isa), o, packed, offs, out, rq)


def _requant_rows(acc, mult, zp, lo, hi, out):
    out[...] = (ort_round_ref(acc, mult[None, :], lo - zp, hi - zp).astype(np.int64) + zp).astype(out.dtype)


def gemm_packed_requant_ref(a, a_zp, packed: PackedB, bias, mult, zp, lo, hi, out) -> None:
    """NumPy twin: int64 sum wrapped to int32, then the float32 requantization."""
    acc = np.empty((a.shape[0], packed.n), np.int32)
    gemm_packed_ref(a, a_zp, packed, bias, acc)
    _requant_rows(acc, np.broadcast_to(np.asarray(mult, np.float32), (packed.n,)), zp, lo, hi, out)

