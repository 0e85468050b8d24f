"""TFLite SOFTMAX of int8 codes to int8 (output scale 1/256, zero point -128) and of uint8 to
uint8 (zero point 0), as the
interpreter's optimized kernel computes it on x86-64 (activations.cc SoftmaxPrepare:
optimized_ops::PopulateSoftmaxLookupTable, then optimized_ops::Softmax<int8_t, int8_t>;
measured equal on the XNNPACK path too; the reference path computes in fixed point instead,
kernels.tflite_softmax_fixed), over the last axis:

    table[255 - v] = expf(f32(f32(-sx * beta) * v))          v = 0..255, float32
    per row:  m = max(x);  e[j] = table[255 - m + x[j]] = expf(-sx*beta*(m - x[j]))
              sum = e[0] + e[1] + ...                        (float32, in order)
              inv = f32(1 / f32(sum * sy))
              p = f32(e[j] * inv)
              int8:  y[j] = clamp(std::round(p) + zy, -128, 127)     (half away from zero)
              uint8: y[j] = clamp(int(f32(p + 0.5f)) + zy, 0, 255)   (QuantizeSoftmaxOutput<uint8_t>
                     off aarch64: a float32 add, then truncation)
"""
from __future__ import annotations

import numpy as np

from .jit import kernel
from .tflite_act import expf

F32 = np.float32


def softmax_table(sx, beta) -> np.ndarray:
    """PopulateSoftmaxLookupTable: 256 float32 exponentials."""
    scale = F32(-F32(sx) * F32(beta))
    tab = np.empty(256, F32)
    for v in range(256):
        tab[255 - v] = expf(F32(scale * F32(v)))
    return tab


@kernel
def _softmax_rows_impl(x, table, sy, zy, lo, hi, add_half, out):
    for r in range(x.shape[0]):
        m = np.int64(x[r, 0])
        for j in range(1, x.shape[1]):
            if np.int64(x[r, j]) > m:
                m = np.int64(x[r, j])
        total = np.float32(0.0)
        for j in range(x.shape[1]):
            total = np.float32(total + table[255 - m + np.int64(x[r, j])])
        inv = np.float32(np.float32(1.0) / np.float32(total * sy))
        for j in range(x.shape[1]):
            p32 = np.float32(table[255 - m + np.int64(x[r, j])] * inv)
            if add_half:
                q = np.int64(np.float32(p32 + np.float32(0.5)))
            else:
                p = np.float64(p32)
                q = np.int64(np.floor(abs(p) + 0.5))
                if p < 0:
                    q = -q
            q += zy
            out[r, j] = min(max(q, lo), hi)


def softmax_rows(x, table, sy, zy, out) -> None:
    """x, out (R, D) int8 or uint8: softmax of each row (module doc)."""
    info = np.iinfo(out.dtype)
    _softmax_rows_impl(np.ascontiguousarray(x), table, F32(sy), np.int64(zy), np.int64(info.min),
                       np.int64(info.max), info.min == 0, out)


def softmax_rows_ref(x, table, sy, zy, out) -> None:
    """NumPy twin of softmax_rows (float32 sum in order: cumsum)."""
    xi = np.asarray(x, np.int64)
    e = table[255 - xi.max(axis=1, keepdims=True) + xi]
    total = np.cumsum(e, axis=1, dtype=F32)[:, -1:]
    inv = (F32(1.0) / (total * F32(sy)).astype(F32)).astype(F32)
    p = (e * inv).astype(F32)
    info = np.iinfo(out.dtype)
    if info.min == 0:
        q = np.trunc((p + F32(0.5)).astype(F32)).astype(np.int64) + int(zy)
    else:
        p = p.astype(np.float64)
        q = np.copysign(np.floor(np.abs(p) + 0.5), p).astype(np.int64) + int(zy)
    out[...] = np.clip(q, info.min, info.max).astype(out.dtype)
