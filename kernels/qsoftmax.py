"""onnxruntime's com.microsoft QLinearSoftmax (CPU), bit for bit, in NumPy and Numba.

The table and the row loop follow contrib_ops/cpu/quantization/qlinear_softmax.cc
(QlinearBuildLookupTableUint32, QlinearSoftmaxCPU); the precision of each step is the one the
onnxruntime 1.32 x86-64 wheel executes, read from its machine code (the row loop converts to double
before the product) and measured against it (tests/clients/test_qlinear_softmax_live.py):

A 256-entry float32 table of exponentials:
    shift    = max(0, logf(f32(FLT_MAX) / f32(D)) - 5) / x_scale   (D: the reduced length;
               the logarithm in float32, the rest in double)
    tab[k]   = f32(exp((i - 255 + shift) * x_scale)),  k = i (uint8) or uint8(i - 128) (int8)
    Y        = floor(f32(1 / y_scale)); where that float32 quotient overflows (a denormal
               y_scale), floor(1 / y_scale) in double
per row of D codes (the reduced axis last; x_zero_point is not read):
    uint8:  e[j] = tab[255 - max(x) + x[j]]
    int8:   e[j] = tab[uint8(127 - max(x) + x[j])]
    sum    = e[0] + e[1] + ... (float32, in order)
    q[j]   = clamp(rint_half_even(double(e[j]) * Y / double(sum)) + y_zp, qmin, qmax)
             (double arithmetic; a NaN, from y_scale 0, stores 0)
The zoo encoder's /layers/layers.1/Softmax row [0, 0, 7] is the case that fixed the precision:
f32(f32(e[23] * Y) / sum) is 6.5 (code 6, half to even); in double, as onnxruntime computes it,
6.50000047 (code 7).

softmax_rows is that row formula jitted (the table and Y computed once by the caller);
qlinear_softmax_rows is its NumPy twin, which builds Y itself.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel

F32 = np.float32
_FLT_MAX = float(np.finfo(np.float32).max)

def softmax_table(x_scale: float, reduce_len: int, signed: bool) -> np.ndarray:
    """QlinearBuildLookupTableUint32 (EXP_OUT_DTYPE = float): 256 float32 exponentials."""
    xs = float(F32(x_scale))
    log_big = float(np.log(F32(F32(_FLT_MAX) / F32(reduce_len))))     # logf of a float32 quotient
    shift = max(0.0, log_big - 5.0) / xs
    i = np.arange(256, dtype=np.float64)
    vals = np.exp((i - 255.0 + shift) * xs).astype(F32)
    tab = np.empty(256, F32)
    idx = ((np.arange(256) - 128) & 0xFF) if signed else np.arange(256)
    tab[idx] = vals
    return tab

def qlinear_softmax_rows(x: np.ndarray, table: np.ndarray, y_scale: float, y_zp: int) -> np.ndarray:
    """QlinearSoftmaxCPU on x (N, D) of uint8 or int8 codes (NumPy)."""
    out = np.empty(x.shape, x.dtype)
    softmax_rows_ref(x, table, big_y(y_scale), y_zp, out)
    return out

def big_y(y_scale: float) -> float:
    """Y = floor(f32(1 / y_scale)), or floor(1 / y_scale) in double where the float32 quotient
    overflows (measured against onnxruntime 1.32 on denormal scales)."""
    with np.errstate(divide="ignore", over="ignore"):
        y32 = np.floor(F32(F32(1.0) / F32(y_scale)))
        if np.isfinite(y32) or F32(y_scale) == 0:
            return float(y32)
        return float(np.floor(1.0 / np.float64(F32(y_scale))))

@kernel
def _softmax_rows_impl(x, table, y, y_zp, lo, hi, signed, out):
    r_, d_ = x.shape
    e = np.empty(d_, np.float32)
    for r in range(r_):
        mx = np.int64(x[r, 0])
        for j in range(1, d_):
            mx = max(mx, np.int64(x[r, j]))
        total = np.float32(0.0)
        for j in range(d_):
            if signed:
                v = table[(127 - mx + np.int64(x[r, j])) & 0xFF]
            else:
                v = table[255 - mx + np.int64(x[r, j])]
            e[j] = v
            total = np.float32(total + v)
        td = np.float64(total)
        for j in range(d_):
            q = np.rint(np.float64(e[j]) * y / td) + y_zp
            if q != q:
                out[r, j] = 0
            else:
                out[r, j] = lo if q < lo else (hi if q > hi else np.int64(q))

def softmax_rows(x: np.ndarray, table: np.ndarray, y: float, y_zp: int, out: np.ndarray) -> None:
    """out = onnxruntime's QLinearSoftmax of x (R, D) uint8/int8 codes (D >= 1), with table =
    softmax_table(...) and y = big_y(y_scale); out (R, D) of x's dtype. Raises ValueError."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype not in (np.uint8, np.int8) or x.shape[1] < 1:
        raise ValueError(f"softmax_rows: x must be a 2-D uint8/int8 array with rows, got {getattr(x, 'shape', x)}")
    if not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"softmax_rows: out must be {x.dtype} {x.shape}")
    if table.dtype != np.float32 or table.shape != (256,):
        raise ValueError("softmax_rows: table must be float32 (256,)")
    signed = x.dtype == np.int8
    lo, hi = (-128, 127) if signed else (0, 255)
    dst = out if out.flags.c_contiguous else np.empty(x.shape, x.dtype)
    _softmax_rows_impl(np.ascontiguousarray(x), table, float(y), float(y_zp), np.int64(lo), np.int64(hi),
                       signed, dst)
    if dst is not out:
        out[...] = dst

def softmax_rows_ref(x: np.ndarray, table: np.ndarray, y: float, y_zp: int, out: np.ndarray) -> None:
    """NumPy twin of softmax_rows."""
    signed = x.dtype == np.int8
    xi = x.astype(np.int64)
    xmax = xi.max(axis=1, keepdims=True)
    idx = ((127 - xmax + xi) & 0xFF) if signed else (255 - xmax + xi)
    e = table[idx]
    total = np.cumsum(e, axis=1, dtype=F32)[:, -1:].astype(np.float64)     # in order, as the C loop
    with np.errstate(over="ignore", invalid="ignore"):
        q = np.rint(e.astype(np.float64) * float(y) / total) + float(y_zp)
    lo, hi = (-128, 127) if signed else (0, 255)
    out[...] = np.where(np.isnan(q), 0, np.clip(q, lo, hi)).astype(x.dtype)

def qlinear_softmax_ref(x: np.ndarray, x_scale: float, y_scale: float, y_zp: int, axis: int,
                        opset: int) -> np.ndarray:
    """QLinearSoftmax of codes x: opset < 13 reduces over the flattened dims from `axis` on;
    opset >= 13 over `axis` alone (moved last, then back)."""
    axis = axis % x.ndim
    if opset < 13:
        d = int(np.prod(x.shape[axis:], dtype=np.int64))
        rows = x.reshape(-1, d)
        tab = softmax_table(x_scale, d, x.dtype == np.int8)
        return qlinear_softmax_rows(rows, tab, y_scale, y_zp).reshape(x.shape)
    moved = np.moveaxis(x, axis, -1)
    d = moved.shape[-1]
    tab = softmax_table(x_scale, d, x.dtype == np.int8)
    out = qlinear_softmax_rows(np.ascontiguousarray(moved).reshape(-1, d), tab, y_scale, y_zp)
    return np.moveaxis(out.reshape(moved.shape), -1, axis)
