"""onnxruntime's com.microsoft QLinearSoftmax (CPU, contrib_ops/cpu/quantization/
qlinear_softmax.cc), bit for bit, in NumPy.

A 256-entry float32 table of exponentials, built in double:
    shift    = max(0, log(f32(FLT_MAX / D)) - 5) / x_scale          (D: the reduced length)
    tab[k]   = f32(exp((i - 255 + shift) * x_scale)),  k = i (uint8) or uint8(i - 128) (int8)
per row of D codes (the reduced axis last; x_zero_point is not read):
    uint8:  e[j] = tab[255 - max(x) + x[j]]
    int8:   e[j] = tab[uint8(127 - max(x) + x[j])]
    sum    = e[0] + e[1] + ... (float32, in order)
    Y      = floor(f32(1 / y_scale))                                  (float32)
    q[j]   = int(rint_half_even(f32(f32(e[j] * Y) / sum))) + y_zp
    y      = clamp(q, qmin, qmax)       (onnxruntime 1.32 saturates int8 at 127, measured; an
                                          older source cast int8(q) with wrap-around)

softmax_rows is that row formula jitted (the table and Y computed once by the caller);
qlinear_softmax_rows is its NumPy twin, which builds Y itself.
"""
from __future__ import annotations

import math

import numpy as np

from .jit import kernel

F32 = np.float32
_FLT_MAX = float(np.finfo(np.float32).max)


def softmax_table(x_scale: float, reduce_len: int, signed: bool) -> np.ndarray:
    """QlinearBuildLookupTableUint32 (EXP_OUT_DTYPE = float): 256 float32 exponentials."""
    xs = float(F32(x_scale))
    shift = max(0.0, math.log(float(F32(_FLT_MAX / float(F32(reduce_len))))) - 5.0) / xs
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


def big_y(y_scale: float) -> np.float32:
    """Y = floor(f32(1 / y_scale)), float32."""
    return F32(np.floor(F32(F32(1.0) / F32(y_scale))))


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
        for j in range(d_):
            q = np.int64(np.rint(np.float32(np.float32(e[j] * y) / total))) + y_zp
            out[r, j] = min(max(q, lo), hi)


def softmax_rows(x: np.ndarray, table: np.ndarray, y: np.float32, y_zp: int, out: np.ndarray) -> None:
    """out = QlinearSoftmaxCPU of x (R, D) uint8/int8 codes (D >= 1), with table =
    softmax_table(...) and y = big_y(y_scale); out (R, D) of x's dtype. A Y whose quotients
    could leave int64 (y_scale below ~2**-62) runs the NumPy twin. Raises ValueError."""
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype not in (np.uint8, np.int8) or x.shape[1] < 1:
        raise ValueError(f"softmax_rows: x must be a 2-D uint8/int8 array with rows, got {getattr(x, 'shape', x)}")
    if not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"softmax_rows: out must be {x.dtype} {x.shape}")
    if table.dtype != np.float32 or table.shape != (256,):
        raise ValueError("softmax_rows: table must be float32 (256,)")
    signed = x.dtype == np.int8
    lo, hi = (-128, 127) if signed else (0, 255)
    y = F32(y)
    if not (np.isfinite(y) and abs(float(y)) < 2.0**62):
        softmax_rows_ref(x, table, y, y_zp, out)
        return
    dst = out if out.flags.c_contiguous else np.empty(x.shape, x.dtype)
    _softmax_rows_impl(np.ascontiguousarray(x), table, y, np.int64(y_zp), np.int64(lo), np.int64(hi), signed, dst)
    if dst is not out:
        out[...] = dst


def softmax_rows_ref(x: np.ndarray, table: np.ndarray, y: np.float32, y_zp: int, out: np.ndarray) -> None:
    """NumPy twin of softmax_rows."""
    signed = x.dtype == np.int8
    xi = x.astype(np.int64)
    xmax = xi.max(axis=1, keepdims=True)
    idx = ((127 - xmax + xi) & 0xFF) if signed else (255 - xmax + xi)
    e = table[idx]
    total = np.cumsum(e, axis=1, dtype=F32)[:, -1:]      # cumsum: in order, as the C loop
    q = np.rint((e * F32(y)).astype(F32) / total).astype(np.int64) + int(y_zp)
    lo, hi = (-128, 127) if signed else (0, 255)
    out[...] = np.clip(q, lo, hi).astype(x.dtype)


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
