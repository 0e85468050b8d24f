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
"""
from __future__ import annotations

import math

import numpy as np

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
    """QlinearSoftmaxCPU on x (N, D) of uint8 or int8 codes."""
    signed = x.dtype == np.int8
    xi = x.astype(np.int64)
    xmax = xi.max(axis=1, keepdims=True)
    idx = ((127 - xmax + xi) & 0xFF) if signed else (255 - xmax + xi)
    e = table[idx]
    total = np.cumsum(e, axis=1, dtype=F32)[:, -1:]      # cumsum: in order, as the C loop
    big_y = F32(np.floor(F32(F32(1.0) / F32(y_scale))))
    q = np.rint((e * big_y).astype(F32) / total).astype(np.int64) + int(y_zp)
    lo, hi = (-128, 127) if signed else (0, 255)
    return np.clip(q, lo, hi).astype(x.dtype)


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
