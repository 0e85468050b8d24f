"""Integer GEMM with zero points and bias (portable Numba path).

    acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n])

a (M, K), b (K, N): integer dtypes of at most 32 bits (int64 inputs are accepted when their
values fit int32); a_zp: scalar int; b_zp, bias: int64 (N,); acc (M, N) int32 or int64,
written in place. The sum is formed in int64 (exact for 8- and 16-bit operands; beyond that it
wraps modulo 2**64 like the NumPy twin); storing into an int32 `acc` wraps (two's complement, in `store_acc`).

How the kernel stays exact and fast: both operands are centred first (a - a_zp, b - b_zp) into
the narrowest of int16/int32/int64 that holds both (one dtype for both operands keeps the
number of compiled specializations small). When |a - a_zp| <= A and |b - b_zp| <= B
(bounds from the dtypes and zero points, not the data), a run of `kblock = (2**31 - 1) // (A*B)`
products cannot leave int32, so each run is summed in int32 (vectorizable) and the runs are
added in int64. If A*B >= 2**31, every product is summed in int64. Loop order (m, k, n).
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

INT32_MAX = 2**31 - 1
_NARROW = (np.int16, np.int32, np.int64)


# ------------------------------------------------------------------------------ validation
def check_int_operand(name: str, t: np.ndarray, ndim: int) -> np.ndarray:
    """Return `t` as a C-contiguous native-endian integer array of rank `ndim`, or raise."""
    t = np.asarray(t)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {t.dtype}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {t.shape}")
    if t.dtype.itemsize > 4:
        if t.size and (t.min() < -2**31 or t.max() > INT32_MAX):
            raise ValueError(f"{name} ({t.dtype}) holds values outside int32")
    if not t.dtype.isnative:
        t = t.astype(t.dtype.newbyteorder("="))
    return np.ascontiguousarray(t)


def check_acc(name: str, acc: np.ndarray, shape: tuple) -> None:
    """`acc` must be a writeable int32/int64 array of exactly `shape`."""
    if not isinstance(acc, np.ndarray) or acc.dtype not in (np.int32, np.int64) or not acc.dtype.isnative:
        raise ValueError(f"{name} must be a native int32 or int64 array, got {getattr(acc, 'dtype', type(acc))}")
    if acc.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {acc.shape}")
    if not acc.flags.writeable:
        raise ValueError(f"{name} is read-only")


def int64_out(acc: np.ndarray) -> np.ndarray:
    """Where a kernel writes its int64 sums: `acc` itself when it is a C-contiguous int64
    array, else a fresh int64 buffer that `store_acc` then narrows into `acc`."""
    return acc if acc.dtype == np.int64 and acc.flags.c_contiguous else np.empty(acc.shape, np.int64)


def store_acc(acc: np.ndarray, out: np.ndarray) -> None:
    """The one place where the accumulator width is applied: int64 sums stored into an int32
    `acc` keep their low 32 bits (two's complement wrap, NumPy's int64 -> int32 cast)."""
    if out is not acc:
        acc[...] = out.astype(acc.dtype)


def check_scalar_zp(name: str, zp) -> int:
    """A scalar integer zero point that fits int32."""
    v = np.asarray(zp)
    if v.size != 1 or v.dtype.kind not in "iu":
        raise ValueError(f"{name} must be one integer, got {zp!r}")
    v = int(v.reshape(()))
    if not -2**31 <= v <= INT32_MAX:
        raise ValueError(f"{name} = {v} is outside int32")
    return v


def check_vector(name: str, v, n: int) -> np.ndarray:
    """An (n,) integer vector as contiguous int64 (zero points, bias)."""
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer array, got dtype {a.dtype}")
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    if a.dtype == np.uint64 and a.size and a.max() > 2**63 - 1:
        raise ValueError(f"{name} holds values outside int64")
    return np.ascontiguousarray(a, np.int64)


# -------------------------------------------------------------------------------- centring
def centred_bound(dtype, zp_lo: int, zp_hi: int) -> int:
    """max |x - zp| over every x of `dtype` and every zp in [zp_lo, zp_hi]; 64-bit operands
    were checked to hold int32 values (check_int_operand), so int32's range bounds them."""
    info = np.iinfo(dtype if np.dtype(dtype).itemsize <= 4 else np.int32)
    return max(abs(int(info.min) - zp_hi), abs(int(info.max) - zp_lo))


def narrow_dtype(bound: int):
    """The narrowest of int16/int32/int64 holding [-bound, bound]."""
    for dt in _NARROW:
        if bound <= np.iinfo(dt).max:
            return dt
    raise ValueError(f"centred values up to {bound} do not fit int64")


def centre(x: np.ndarray, zp, bound: int) -> np.ndarray:
    """x - zp (zp scalar or broadcastable) in the narrowest dtype that holds +-bound."""
    return (x.astype(np.int64) - zp).astype(narrow_dtype(bound))


def k_block(a_bound: int, b_bound: int) -> int:
    """How many products of |a| <= a_bound, |b| <= b_bound can be summed in int32 (0: none)."""
    p = a_bound * b_bound
    return INT32_MAX // p if p else 1 << 30


# --------------------------------------------------------------------------------- kernels
@kernel
def gemm_centred_impl(ac, bc, row_bias, col_bias, kblock, out):
    """out[m, n] = row_bias[m] + col_bias[n] + sum_k ac[m, k] * bc[k, n] (int64) for centred
    operands (GEMM: bias per column; conv: bias per row); runs of `kblock`
    products are summed in int32 (the caller proves they fit), kblock == 0 sums all in int64.
    Columns are walked in tiles whose (K, tile) slab of `bc` stays in the L2 cache."""
    n_ = bc.shape[1]
    tile = max(64, (1 << 18) // max(1, ac.shape[1] * bc.itemsize))
    row = np.empty(min(tile, n_), np.int64)
    part = np.empty(min(tile, n_), np.int32)
    for n0 in range(0, n_, tile):
        _gemm_tile(ac, bc, row_bias, col_bias, kblock, out, n0, min(n_, n0 + tile), row, part)


@kernel
def _gemm_tile(ac, bc, row_bias, col_bias, kblock, out, n0, n1, row, part):
    m_, k_ = ac.shape
    nt = n1 - n0
    step = kblock if kblock > 0 else max(k_, 1)
    for m in range(m_):
        for j in range(nt):
            row[j] = row_bias[m] + col_bias[n0 + j]
        for k0 in range(0, k_, step):
            k1 = min(k_, k0 + step)
            if kblock > 0:
                part[:nt] = 0
                for k in range(k0, k1):
                    av = np.int32(ac[m, k])
                    if av != 0:
                        bk = bc[k, n0:n1]
                        for j in range(nt):
                            part[j] += av * np.int32(bk[j])
                for j in range(nt):
                    row[j] += part[j]
            else:
                for k in range(k0, k1):
                    av = np.int64(ac[m, k])
                    if av != 0:
                        bk = bc[k, n0:n1]
                        for j in range(nt):
                            row[j] += av * np.int64(bk[j])
        for j in range(nt):
            out[m, n0 + j] = row[j]


@kernel
def _batched_impl(ac, bc, bias, kblock, out):
    no_row_bias = np.zeros(ac.shape[1], np.int64)
    for i in range(ac.shape[0]):
        gemm_centred_impl(ac[i], bc[i], no_row_bias, bias, kblock, out[i])


# ---------------------------------------------------------------------------------- public
def _prepare(a, b, a_zp, b_zp, bias, nd):
    """Validate and centre the operands of a (batched when nd == 3) GEMM."""
    a = check_int_operand("a", a, nd)
    b = check_int_operand("b", b, nd)
    if a.shape[-1] != b.shape[-2] or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"a {a.shape} and b {b.shape} do not multiply")
    n = b.shape[-1]
    a_zp = check_scalar_zp("a_zp", a_zp)
    b_zp = check_vector("b_zp", b_zp, n)
    bias = check_vector("bias", bias, n)
    zl, zh = (int(b_zp.min()), int(b_zp.max())) if n else (0, 0)
    a_bound, b_bound = centred_bound(a.dtype, a_zp, a_zp), centred_bound(b.dtype, zl, zh)
    common = max(a_bound, b_bound)
    ac, bc = centre(a, a_zp, common), centre(b, b_zp, common)
    return ac, bc, bias, k_block(a_bound, b_bound)


def gemm_acc(a, b, a_zp, b_zp, bias, acc) -> None:
    """acc[m, n] = bias[n] + sum_k (a[m, k] - a_zp) * (b[k, n] - b_zp[n]), int64 sums, stored
    into `acc` (int32: wraps; int64: exact). Raises ValueError on bad shapes or dtypes."""
    ac, bc, bias, kb = _prepare(a, b, a_zp, b_zp, bias, 2)
    check_acc("acc", acc, (ac.shape[0], bc.shape[1]))
    out = int64_out(acc)
    gemm_centred_impl(ac, bc, np.zeros(ac.shape[0], np.int64), bias, kb, out)
    store_acc(acc, out)


def gemm_acc_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of gemm_acc (no validation)."""
    r = (np.asarray(a).astype(np.int64) - np.int64(a_zp)) @ \
        (np.asarray(b).astype(np.int64) - np.asarray(b_zp, np.int64)[None, :])
    acc[...] = (r + np.asarray(bias, np.int64)[None, :]).astype(acc.dtype)


def batched_gemm_acc(a, b, a_zp, b_zp, bias, acc) -> None:
    """a (B, M, K), b (B, K, N), acc (B, M, N): gemm_acc for every batch entry (broadcasting
    is the caller's job); a_zp, b_zp and bias are shared by all entries."""
    ac, bc, bias, kb = _prepare(a, b, a_zp, b_zp, bias, 3)
    check_acc("acc", acc, (ac.shape[0], ac.shape[1], bc.shape[2]))
    out = int64_out(acc)
    _batched_impl(ac, bc, bias, kb, out)
    store_acc(acc, out)


def batched_gemm_acc_ref(a, b, a_zp, b_zp, bias, acc) -> None:
    """NumPy int64 twin of batched_gemm_acc (no validation)."""
    r = (np.asarray(a).astype(np.int64) - np.int64(a_zp)) @ \
        (np.asarray(b).astype(np.int64) - np.asarray(b_zp, np.int64)[None, None, :])
    acc[...] = (r + np.asarray(bias, np.int64)[None, None, :]).astype(acc.dtype)
