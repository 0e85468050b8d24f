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

Axes in the middle (or leading): x read as (L, K, N), L = prod(axes before), K = prod(reduced
axes), N = prod(axes after) >= 2, each column c of each block l summed over its K rows
x[l, 0..K-1, c], then divided by f32(K) (ReduceAggregatorMean::FastReduceRK / FastReduceKRK):

    L == 1 ("RK": ReduceAggregatorSum::FastReduceRK copies row 0, then adds rows 1.. in order)
        sum = ((x0 + x1) + x2) + ... + x_{K-1}
    L > 1  ("KRK": per block, MlasGemm of a row of K ones by the (K, N) block, M == 1: MLAS's
            MlasSgemmKernelM1Avx, rows taken 4, then 2, then 1 at a time into C = +0.0;
            x * 1.0 is exact)
        C = +0; for each 4 rows j..j+3: C = (((x_j + x_j+1) + x_j+2) + x_j+3) + C
        then, when K mod 4 >= 2: C = (x_j + x_j+1) + C;  when K is odd: C = x_{K-1} + C
    mean = f32(sum / f32(K))

`ort_mean_cols` / `ort_mean_cols_ref` are that kernel and its twin.
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


@kernel
def _mean_cols_impl(x, lead, k, n, out):
    inv = np.float32(k)
    for d in range(lead):
        b, o = d * k * n, d * n
        if lead == 1:
            for c in range(n):
                out[o + c] = x[b + c]
            for r in range(1, k):
                i = b + r * n
                for c in range(n):
                    out[o + c] = out[o + c] + x[i + c]
        else:
            for c in range(n):
                out[o + c] = np.float32(0.0)
            j = 0
            while j + 4 <= k:
                i0 = b + j * n
                i1, i2, i3 = i0 + n, i0 + 2 * n, i0 + 3 * n
                for c in range(n):
                    out[o + c] = (((x[i0 + c] + x[i1 + c]) + x[i2 + c]) + x[i3 + c]) + out[o + c]
                j += 4
            if k - j >= 2:
                i0 = b + j * n
                i1 = i0 + n
                for c in range(n):
                    out[o + c] = (x[i0 + c] + x[i1 + c]) + out[o + c]
                j += 2
            if j < k:
                i0 = b + j * n
                for c in range(n):
                    out[o + c] = x[i0 + c] + out[o + c]
        for c in range(n):
            out[o + c] = out[o + c] / inv


def _check_cols(x, lead, k, n, out):
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("ort_mean_cols: x must be a C-contiguous float32 array")
    if lead < 1 or k < 1 or n < 2 or x.size != lead * k * n:
        raise ValueError(f"ort_mean_cols: {x.size} elements are not ({lead}, {k}, {n}) with {n} >= 2 columns")
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.size != lead * n \
            or not out.flags.c_contiguous:
        raise ValueError(f"ort_mean_cols: out must be C-contiguous float32 of {lead * n} elements")


def ort_mean_cols(x, lead, k, n, out) -> None:
    """out[l, c] = onnxruntime's mean over the K rows of x read as (lead, k, n) (module doc)."""
    _check_cols(x, lead, k, n, out)
    _mean_cols_impl(x.reshape(-1), lead, k, n, out.reshape(-1))


def bind_ort_mean_cols(x, lead, k, n, out):
    """call() doing ort_mean_cols(x, lead, k, n, out) on these very arrays, checked now."""
    _check_cols(x, lead, k, n, out)
    xf, of = x.reshape(-1), out.reshape(-1)
    return lambda: _mean_cols_impl(xf, lead, k, n, of)


def ort_mean_cols_ref(x, lead, k, n, out) -> None:
    """NumPy twin of ort_mean_cols: whole float32 rows added in the module doc's order."""
    _check_cols(x, lead, k, n, out)
    v = x.reshape(lead, k, n)
    with np.errstate(over="ignore", invalid="ignore"):
        if lead == 1:
            acc = v[:, 0].copy()
            for r in range(1, k):
                acc = acc + v[:, r]
        else:
            acc, j = np.zeros((lead, n), F32), 0
            while j + 4 <= k:
                acc = (((v[:, j] + v[:, j + 1]) + v[:, j + 2]) + v[:, j + 3]) + acc
                j += 4
            if k - j >= 2:
                acc = (v[:, j] + v[:, j + 1]) + acc
                j += 2
            if j < k:
                acc = v[:, j] + acc
        out.reshape(lead, n)[...] = acc / F32(k)
