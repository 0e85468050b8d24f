"""QLinearMatMul of two activations (B computed at run time, e.g. attention's q x k^T and
softmax(...) x v) with onnxruntime's float requantization (kernels.requant), in one pass:

    acc[p, m, n] = bias[n] + sum_k (a[p, m, k] - za) * (b[p, k, n] - zb)          (exact)
    y[p, m, n]   = rint_half_even(clamp(f32(acc) * mult[n], f32(lo - zp), f32(hi - zp))) + zp

which is requant_float's clamp(rint(f32(acc) * mult[n]) + zp, lo, hi): lo - zp and hi - zp
are integers, so clamping before or after the rounding gives the same integer (the
kernels.requant.ort_round contract). The sums are int32: the wrapper refuses operands whose
worst case max|bias| + K * max|a - za| * max|b - zb| could leave int32 (the caller then takes
the int64 engine path), so every sum is exact. B is re-read per call; nothing is packed.

    qlinear_matmul_act(a (P, M, K), za, b (P, K, N), zb, bias (N,) int32, mult (N,) float32,
                       zp, lo, hi, out (P, M, N))          a, b, out 8-bit, C-contiguous
    qlinear_matmul_act_ref(...)                            NumPy int64 twin (kernels.requant's)
"""
from __future__ import annotations

import numba
import numpy as np

from .jit import kernel
from .requant import ort_round, requant_float_ref
from .threads import get_num_threads, native_call

_INT32_MAX = 2**31 - 1
PAR_MACS = 1 << 21      # below this many multiply-adds (~0.2 ms on one thread) a call runs on the calling thread alone


@kernel
def _qmm_rows(a, za, b, zb, bias, mult, flo, fhi, zp, out, p0, p1):
    """Batch entries p0..p1-1 (see the module doc); int32 sums of 8-bit differences."""
    _, m_, k_ = a.shape
    n_ = b.shape[2]
    bz = np.empty((k_, n_), np.int32)
    acc = np.empty(n_, np.int32)
    for p in range(p0, p1):
        for k in range(k_):
            for n in range(n_):
                bz[k, n] = np.int32(np.int32(b[p, k, n]) - zb)
        for m in range(m_):
            for n in range(n_):
                acc[n] = bias[n]
            for k in range(k_):
                av = np.int32(np.int32(a[p, m, k]) - za)
                for n in range(n_):
                    acc[n] = np.int32(acc[n] + av * bz[k, n])
            for n in range(n_):
                out[p, m, n] = np.int32(ort_round(acc[n], mult[n], flo, fhi)) + zp


@kernel(parallel=True)
def _qmm_par(a, za, b, zb, bias, mult, flo, fhi, zp, out, parts):
    """_qmm_rows over the batch entries split into `parts` equal ranges, one per thread."""
    n_items = a.shape[0]
    for t in numba.prange(parts):
        _qmm_rows(a, za, b, zb, bias, mult, flo, fhi, zp, out, t * n_items // parts, (t + 1) * n_items // parts)


def _diff_max(dtype, zp: int) -> int:
    info = np.iinfo(dtype)
    return max(abs(int(info.max) - zp), abs(int(info.min) - zp))


def fits_int32(a_dtype, za: int, b_dtype, zb: int, k: int, bias_max: int) -> bool:
    """Whether every sum of a K-long product of these operand types and zero points, plus a
    bias of magnitude <= bias_max, stays in int32 (the wrapper's precondition)."""
    return bias_max + k * _diff_max(a_dtype, za) * _diff_max(b_dtype, zb) <= _INT32_MAX


_BYTES = (np.dtype(np.uint8), np.dtype(np.int8))


def _check_params(za, zb, bias, mult, zp, lo, hi, out_dtype) -> int:
    """Validate the parameters once; returns max|bias|."""
    out_dtype = np.dtype(out_dtype)
    if out_dtype not in _BYTES:
        raise ValueError(f"qlinear_matmul_act: the output must be uint8 or int8, got {out_dtype}")
    if not isinstance(bias, np.ndarray) or bias.dtype != np.int32 or bias.ndim != 1 or \
            not isinstance(mult, np.ndarray) or mult.dtype != np.float32 or mult.shape != bias.shape:
        raise ValueError("qlinear_matmul_act: bias must be int32 (N,) and mult float32 (N,)")
    if not np.isfinite(mult).all():
        raise ValueError("qlinear_matmul_act: mult holds a non-finite value")
    info = np.iinfo(out_dtype)
    if not info.min <= lo <= hi <= info.max or not info.min <= zp <= info.max:
        raise ValueError(f"qlinear_matmul_act: zp {zp} and clamp [{lo}, {hi}] must lie in {out_dtype}'s range")
    if not (-128 <= za <= 255 and -128 <= zb <= 255):
        raise ValueError(f"qlinear_matmul_act: zero points {za}, {zb} are not 8-bit values")
    return int(np.abs(bias.astype(np.int64)).max(initial=0))


def bind_qlinear_matmul_act(za, zb, bias, mult, zp, lo, hi, out_dtype):
    """call(a, b, out, threads=None) doing qlinear_matmul_act with these parameters, checked
    now; each call checks only its arrays (and that their K keeps the sums in int32). With
    more than one thread (the kernels' count, or `threads`) and at least PAR_MACS
    multiply-adds, the batch entries are split across one Numba parallel region."""
    za, zb, zp, lo, hi = int(za), int(zb), int(zp), int(lo), int(hi)
    bias_max = _check_params(za, zb, bias, mult, zp, lo, hi, out_dtype)
    out_dtype = np.dtype(out_dtype)
    n = bias.shape[0]
    head = (np.int32(za),)
    mid = (np.int32(zb), bias, mult, np.float32(lo - zp), np.float32(hi - zp), np.int32(zp))
    fits: dict = {}     # (a dtype, b dtype, K) -> whether the sums stay in int32

    def call(a, b, out, threads=None):
        for name, v in (("a", a), ("b", b), ("out", out)):
            if type(v) is not np.ndarray or v.ndim != 3 or v.dtype not in _BYTES or not v.flags.c_contiguous:
                raise ValueError(f"qlinear_matmul_act: '{name}' must be a C-contiguous 3-D uint8/int8 array")
        p, m, k = a.shape
        if b.shape != (p, k, n) or out.shape != (p, m, n) or out.dtype != out_dtype:
            raise ValueError(f"qlinear_matmul_act: a {a.shape}, b {b.shape} and out {out.dtype} {out.shape} do not "
                             f"fit (P, M, K) x (P, K, {n}) -> {out_dtype} (P, M, {n})")
        key = (a.dtype, b.dtype, k)
        ok = fits.get(key)
        if ok is None:
            ok = fits[key] = fits_int32(a.dtype, za, b.dtype, zb, k, bias_max)
        if not ok:
            raise ValueError(f"qlinear_matmul_act: sums of K={k} products with zero points {za}, {zb} may leave int32")
        t = get_num_threads() if threads is None else int(threads)
        if t > 1 and p > 1 and p * m * k * n >= PAR_MACS and \
                native_call(_qmm_par, t, a, *head, b, *mid, out, np.int64(min(t, p))):
            return
        _qmm_rows(a, *head, b, *mid, out, 0, p)
    return call


def qlinear_matmul_act(a, za, b, zb, bias, mult, zp, lo, hi, out, threads: int | None = None) -> None:
    """out = the module doc's y for a (P, M, K) x b (P, K, N) (bind_qlinear_matmul_act, called
    once). Raises ValueError (shapes, dtypes, ranges, a sum that could leave int32)."""
    bind_qlinear_matmul_act(za, zb, bias, mult, zp, lo, hi, getattr(out, "dtype", None))(a, b, out, threads)


def qlinear_matmul_act_ref(a, za, b, zb, bias, mult, zp, lo, hi, out, threads: int | None = None) -> None:
    """NumPy int64 twin of qlinear_matmul_act (no int32 limit): exact sums, then
    kernels.requant.requant_float_ref per output column."""
    acc = np.matmul(a.astype(np.int64) - int(za), b.astype(np.int64) - int(zb)) + np.asarray(bias, np.int64)
    p, m, n = acc.shape
    requant_float_ref(acc.reshape(p * m, n, 1), np.asarray(mult, np.float32), zp, lo, hi, out.reshape(p * m, n, 1))
