"""onnxruntime 1.32's float32 SkipLayerNormalization and SkipSimplifiedLayerNormalization
(com.microsoft), bit for bit on x86-64.

onnxruntime's CPU kernel (ComputeJob in onnxruntime/contrib_ops/cpu/skip_layer_norm.cc) runs
one row of n = hidden_size elements at a time, in float32, element by element in order (a
scalar loop: no vector reduction, no FMA contraction in its build), with Welford's running mean:

    k = (r*n) mod skip.size                       (skip rows repeat: skip of (S, n) or (1, S, n))
    for h = 0 .. n-1:
        v_h = x[r*n+h] + skip[k+h]; v_h += bias[h] (when there is a bias)
        sum[r*n+h] = v_h                           (the optional 4th output)
        LayerNorm:  d = v_h - mean; mean += d / f32(h+1); M2 += d * (v_h - mean)
        simplified: sq += v_h * v_h
    sd = sqrt(M2 / f32(n) + eps)      (simplified: sqrt(sq / f32(n) + eps))
    y = (v_h - mean) / sd * gamma[h] (+ beta[h])   (simplified: v_h / sd * gamma[h])
    mean output = mean (simplified: 0), inv_std_var output = 1 / sd

every operation one float32 rounding (mean, M2, sq start at 0), IEEE division (x/0 = inf or
NaN, as C). `ort_skip_layernorm` is the Numba kernel, `ort_skip_layernorm_ref` its NumPy twin
(the same float32 operations, vectorized across rows); both are compared with onnxruntime
itself in tests/kernels/test_ort_skip_layernorm.py. Optional inputs and outputs are passed as
empty arrays (one machine-code specialization).
"""
from __future__ import annotations

import numpy as np

from .jit import kernel, kernel_array

F32 = np.float32
_NONE = np.empty(0, np.float32)


@kernel(error_model="numpy")
def _skip_ln_impl(x, skip, gamma, beta, bias, n, eps, simplified, y, mean_out, inv_out, total):
    rows = x.size // n
    ks = skip.size
    has_bias, has_beta, has_total = bias.size > 0, beta.size > 0, total.size > 0
    for r in range(rows):
        o = r * n
        k = o % ks
        mean = np.float32(0.0)
        m2 = np.float32(0.0)
        for h in range(n):
            v = x[o + h] + skip[k + h]
            if has_bias:
                v = v + bias[h]
            if has_total:
                total[o + h] = v
            y[o + h] = v
            if simplified:
                m2 = m2 + v * v
            else:
                d = v - mean
                mean = mean + d / np.float32(h + 1)
                m2 = m2 + d * (v - mean)
        sd = np.sqrt(m2 / np.float32(n) + eps)
        if mean_out.size:
            mean_out[r] = np.float32(0.0) if simplified else mean
        if inv_out.size:
            inv_out[r] = np.float32(1.0) / sd
        for h in range(n):
            if simplified:
                y[o + h] = y[o + h] / sd * gamma[h]
            elif has_beta:
                y[o + h] = (y[o + h] - mean) / sd * gamma[h] + beta[h]
            else:
                y[o + h] = (y[o + h] - mean) / sd * gamma[h]


def _flat(a, what, size=None, out=False):
    if a is None:
        return _NONE
    if not isinstance(a, np.ndarray) or a.dtype != F32 or not a.flags.c_contiguous or \
            (out and not a.flags.writeable):
        raise ValueError(f"ort_skip_layernorm: {what} must be a C-contiguous{' writable' if out else ''} "
                         "float32 array")
    if size is not None and a.size != size:
        raise ValueError(f"ort_skip_layernorm: {what} has {a.size} elements, not {size}")
    return kernel_array(a.reshape(-1))     # a read-only constant: copied, not a second specialization


def _args(x, skip, gamma, beta, bias, n, eps, simplified, y, mean, inv_std, total):
    """The kernel's argument tuple, every array checked (float32, C-contiguous, sizes)."""
    if n < 1 or not isinstance(x, np.ndarray) or x.size % n:
        raise ValueError(f"ort_skip_layernorm: x is not whole rows of {n}")
    rows = x.size // n
    xs = _flat(x, "x", x.size)
    sk = _flat(skip, "skip")
    if sk.size == 0 or sk.size % n or x.size % sk.size:
        raise ValueError(f"ort_skip_layernorm: skip of {sk.size} elements does not repeat over x of {x.size}")
    if beta is not None and simplified:
        raise ValueError("ort_skip_layernorm: the simplified form has no beta")
    return (xs, sk, _flat(gamma, "gamma", n), _flat(beta, "beta", n), _flat(bias, "bias", n), n,
            F32(eps), bool(simplified), _flat(y, "y", x.size, True), _flat(mean, "mean", rows, True),
            _flat(inv_std, "inv_std", rows, True), _flat(total, "total", x.size, True))


def ort_skip_layernorm(x, skip, gamma, beta, bias, n, eps, simplified, y, mean=None, inv_std=None,
                       total=None) -> None:
    """y (and mean, inv_std, total when given) = onnxruntime's SkipLayerNormalization of x read
    as rows of n (module doc); beta, bias None when absent; simplified: SkipSimplified..."""
    _skip_ln_impl(*_args(x, skip, gamma, beta, bias, n, eps, simplified, y, mean, inv_std, total))


def bind_ort_skip_layernorm(x, skip, gamma, beta, bias, n, eps, simplified, y, mean=None, inv_std=None,
                            total=None):
    """call() doing ort_skip_layernorm on these very arrays, checked now."""
    args = _args(x, skip, gamma, beta, bias, n, eps, simplified, y, mean, inv_std, total)
    return lambda: _skip_ln_impl(*args)


def ort_skip_layernorm_ref(x, skip, gamma, beta, bias, n, eps, simplified, y, mean=None, inv_std=None,
                           total=None) -> None:
    """NumPy twin of ort_skip_layernorm: the same float32 operations, a row per lane."""
    xs, sk, g, b, c, n, eps, simplified, ys, ms, iv, tot = _args(
        x, skip, gamma, beta, bias, n, eps, simplified, y, mean, inv_std, total)
    rows = xs.size // n
    xr = xs.reshape(rows, n)
    sr = np.tile(sk.reshape(-1, n), (rows * n // sk.size, 1))
    with np.errstate(all="ignore"):     # IEEE overflow, x/0 and inf - inf, as in C
        v = xr + sr
        if c.size:
            v = v + c
        acc = np.zeros(rows, F32)
        avg = np.zeros(rows, F32)
        for h in range(n):
            if simplified:
                acc = acc + v[:, h] * v[:, h]
            else:
                d = v[:, h] - avg
                avg = avg + d / F32(h + 1)
                acc = acc + d * (v[:, h] - avg)
        sd = np.sqrt(acc / F32(n) + eps)
        if simplified:
            out = v / sd[:, None] * g
        else:
            out = (v - avg[:, None]) / sd[:, None] * g
            if b.size:
                out = out + b
        ys.reshape(rows, n)[...] = out
        if ms.size:
            ms[...] = 0 if simplified else avg
        if iv.size:
            iv[...] = F32(1) / sd
    if tot.size:
        tot.reshape(rows, n)[...] = v
