"""onnxruntime 1.32's float32 ReduceMean over trailing axes, bit for bit (x86-64).

onnxruntime reduces the trailing axes of a C-contiguous tensor as rows (its "KR" fast shape:
rows = prod(leading axes), L = prod(reduced axes); ReduceAggregatorMean::FastReduceKR in
onnxruntime/core/providers/cpu/reduction/reduction_ops.h): each row summed by Eigen's
vectorized redux over 4-float SSE packets, then divided:

    s = start of the row's first 16-byte aligned packet: min((4 - (r*L mod 4)) mod 4, L)
        (the tensor's buffer is 16-byte aligned, as onnxruntime's allocator gives it)
    A = 4 * floor((L - s) / 4), A2 = 8 * floor((L - s) / 8)
    A == 0:  sum = ((x0 + x1) + x2) + ...                            (in order, float32)
    else:    p = x[s:s+4]; if A > 4: q = x[s+4:s+8],
             p += x[i:i+4], q += x[i+4:i+8] for i = s+8, s+16, ... < s+A2; p += q;
             p += x[s+A2:s+A2+4] when A > A2
             sum = (p0 + p2) + (p1 + p3); sum += x_i for i < s, then for s+A <= i < L
    mean = f32(sum / f32(L))

every + one float32 rounding (Eigen's redux_impl with LinearVectorizedTraversal, predux of
Packet4f). `ort_mean_rows` is the Numba kernel, `ort_mean_rows_ref` its NumPy twin; both are
compared with onnxruntime itself in tests/kernels/test_ort_mean.py.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

F32 = np.float32


@kernel
def _mean_rows_impl(x, rows, n, out):
    for r in range(rows):
        b = r * n
        s = min((4 - (b & 3)) & 3, n)
        a = (n - s) // 4 * 4
        a2 = (n - s) // 8 * 8
        if a == 0:
            acc = x[b]
            for i in range(1, n):
                acc = acc + x[b + i]
        else:
            j = b + s
            p0, p1, p2, p3 = x[j], x[j + 1], x[j + 2], x[j + 3]
            if a > 4:
                q0, q1, q2, q3 = x[j + 4], x[j + 5], x[j + 6], x[j + 7]
                for i in range(j + 8, j + a2, 8):
                    p0, p1, p2, p3 = p0 + x[i], p1 + x[i + 1], p2 + x[i + 2], p3 + x[i + 3]
                    q0, q1, q2, q3 = q0 + x[i + 4], q1 + x[i + 5], q2 + x[i + 6], q3 + x[i + 7]
                p0, p1, p2, p3 = p0 + q0, p1 + q1, p2 + q2, p3 + q3
                if a > a2:
                    i = j + a2
                    p0, p1, p2, p3 = p0 + x[i], p1 + x[i + 1], p2 + x[i + 2], p3 + x[i + 3]
            acc = (p0 + p2) + (p1 + p3)
            for i in range(b, b + s):
                acc = acc + x[i]
            for i in range(j + a, b + n):
                acc = acc + x[i]
        out[r] = acc / np.float32(n)


def _check(x, n, out):
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("ort_mean_rows: x must be a C-contiguous float32 array")
    if n < 1 or x.size % n:
        raise ValueError(f"ort_mean_rows: {x.size} elements are not whole rows of {n}")
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.size != x.size // n \
            or not out.flags.c_contiguous:
        raise ValueError(f"ort_mean_rows: out must be C-contiguous float32 of {x.size // n} elements")


def ort_mean_rows(x, n, out) -> None:
    """out[r] = onnxruntime's mean of row r of x read as (size/n, n) rows (module doc)."""
    _check(x, n, out)
    _mean_rows_impl(x.reshape(-1), x.size // n, n, out.reshape(-1))


def bind_ort_mean_rows(x, n, out):
    """call() doing ort_mean_rows(x, n, out) on these very arrays, checked now."""
    _check(x, n, out)
    xf, of, rows = x.reshape(-1), out.reshape(-1), x.size // n
    return lambda: _mean_rows_impl(xf, rows, n, of)


def ort_mean_rows_ref(x, n, out) -> None:
    """NumPy twin of ort_mean_rows: Eigen's packet order on 4-lane float32 vectors."""
    _check(x, n, out)
    rows = x.reshape(-1, n)
    res = out.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):     # IEEE overflow to inf, inf - inf = NaN
        _ref_rows(rows, n, res)


def _ref_rows(rows, n, res):
    for r in range(rows.shape[0]):
        v = rows[r]
        s = min((4 - (r * n) % 4) % 4, n)
        a, a2 = (n - s) // 4 * 4, (n - s) // 8 * 8
        if a == 0:
            acc = v[0]
            for i in range(1, n):
                acc = F32(acc + v[i])
        else:
            p = v[s:s + 4].copy()
            if a > 4:
                q = v[s + 4:s + 8].copy()
                for i in range(s + 8, s + a2, 8):
                    p, q = (p + v[i:i + 4]).astype(F32), (q + v[i + 4:i + 8]).astype(F32)
                p = (p + q).astype(F32)
                if a > a2:
                    p = (p + v[s + a2:s + a2 + 4]).astype(F32)
            acc = F32(F32(p[0] + p[2]) + F32(p[1] + p[3]))
            for i in list(range(s)) + list(range(s + a, n)):
                acc = F32(acc + v[i])
        res[r] = F32(acc / F32(n))
