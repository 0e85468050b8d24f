"""Integer GEMM with zero points and bias, exact int64 sums (portable Numba path).

    acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n])

a, b: any integer dtype; a_zp scalar; b_zp, bias: int64 (N,). Products and sums are int64;
storing into an int32 `acc` wraps (two's complement), into an int64 `acc` is exact.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def _gemm_acc_impl(a, b, a_zp, b_zp, bias, acc):
    m_, k_ = a.shape
    n_ = b.shape[1]
    row = np.empty(n_, np.int64)
    bz = np.empty((k_, n_), np.int64)
    for k in range(k_):
        for n in range(n_):
            bz[k, n] = np.int64(b[k, n]) - b_zp[n]
    for m in range(m_):
        for n in range(n_):
            row[n] = bias[n]
        for k in range(k_):
            av = np.int64(a[m, k]) - a_zp
            if av != 0:
                for n in range(n_):
                    row[n] += av * bz[k, n]
        for n in range(n_):
            acc[m, n] = row[n]


def _check_gemm(a, b, b_zp, bias, acc):
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"gemm: a {a.shape} and b {b.shape} do not multiply")
    n = b.shape[1]
    if b_zp.shape != (n,) or bias.shape != (n,):
        raise ValueError(f"gemm: b_zp {b_zp.shape} and bias {bias.shape} must be ({n},)")
    if acc.shape != (a.shape[0], n) or acc.dtype not in (np.int32, np.int64):
        raise ValueError(f"gemm: acc must be int32/int64 {(a.shape[0], n)}, got {acc.dtype} {acc.shape}")
    for name, t in (("a", a), ("b", b)):
        if t.dtype.kind not in "iu":
            raise ValueError(f"gemm: {name} must be an integer array, got {t.dtype}")


def gemm_acc(a, b, a_zp, b_zp, bias, acc) -> None:
    b_zp = np.ascontiguousarray(b_zp, np.int64)
    bias = np.ascontiguousarray(bias, np.int64)
    _check_gemm(a, b, b_zp, bias, acc)
    _gemm_acc_impl(np.ascontiguousarray(a), np.ascontiguousarray(b), np.int64(a_zp), b_zp, bias, acc)


def gemm_acc_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of gemm_acc."""
    r = (a.astype(np.int64) - np.int64(a_zp)) @ (b.astype(np.int64) - np.asarray(b_zp, np.int64)[None, :])
    acc[...] = (r + np.asarray(bias, np.int64)[None, :]).astype(acc.dtype)


def batched_gemm_acc(a, b, a_zp, b_zp, bias, acc) -> None:
    """a (B, M, K), b (B, K, N): gemm_acc per batch entry."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0] or acc.shape[0] != a.shape[0]:
        raise ValueError(f"batched_gemm: a {a.shape}, b {b.shape}, acc {acc.shape} do not match")
    for i in range(a.shape[0]):
        gemm_acc(a[i], b[i], a_zp, b_zp, bias, acc[i])


def batched_gemm_acc_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    r = (a.astype(np.int64) - np.int64(a_zp)) @ (b.astype(np.int64) - np.asarray(b_zp, np.int64)[None, None, :])
    acc[...] = (r + np.asarray(bias, np.int64)[None, None, :]).astype(acc.dtype)
