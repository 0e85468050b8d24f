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
empty arrays (one machine-code specialization). The kernel runs LANES rows side by side (their
sums transposed into a block, one column a row): each row's chain of operations is exactly the
one above, and independent rows fill the divider's pipeline (the running mean's division is
the loop's latency).
"""
from __future__ import annotations

import numpy as np

from .jit import kernel, kernel_array

F32 = np.float32
_NONE = np.empty(0, np.float32)


LANES = 16      # rows computed side by side (their running means are independent chains)


@kernel(error_model="numpy")
def _skip_ln_impl(x, skip, gamma, beta, bias, n, eps, simplified, y, mean_out, inv_out, total):
    rows = x.size // n
    ks = skip.size
    has_bias, has_beta = bias.size > 0, beta.size > 0
    v = np.empty((n, LANES), np.float32)        # a block of rows' sums, row j in column j
    mean = np.empty(LANES, np.float32)
    m2 = np.empty(LANES, np.float32)
    for r0 in range(0, rows, LANES):
        cnt = min(LANES, rows - r0)
        for j in range(cnt):
            o = (r0 + j) * n
            k = o % ks
            for h in range(n):
                s = x[o + h] + skip[k + h]
                if has_bias:
                    s = s + bias[h]
                v[h, j] = s
        for j in range(cnt):
            mean[j] = np.float32(0.0)
            m2[j] = np.float32(0.0)
        for h in range(n):      # the same float32 steps per row as onnxruntime's loop, LANES rows at once
            if simplified:
                for j in range(cnt):
                    m2[j] = m2[j] + v[h, j] * v[h, j]
            else:
                c = np.float32(h + 1)
                for j in range(cnt):
                    d = v[h, j] - mean[j]
                    mean[j] = mean[j] + d / c
                    m2[j] = m2[j] + d * (v[h, j] - mean[j])
        for j in range(cnt):
            r = r0 + j
            o = r * n
            mu = mean[j]
            sd = np.sqrt(m2[j] / np.float32(n) + eps)
            if mean_out.size:
                mean_out[r] = np.float32(0.0) if simplified else mu
            if inv_out.size:
                inv_out[r] = np.float32(1.0) / sd
            if total.size:
                for h in range(n):
                    total[o + h] = v[h, j]
            for h in range(n):
                if simplified:
                    y[o + h] = v[h, j] / sd * gamma[h]
                elif has_beta:
                    y[o + h] = (v[h, j] - mu) / sd * gamma[h] + beta[h]
                else:
                    y[o + h] = (v[h, j] - mu) / sd * gamma[h]


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
    """call(x=None, skip=None) doing ort_skip_layernorm on these very arrays, checked now; an x or
    skip given to call is read instead of the bound one from then on (checked: float32,
    C-contiguous, the bound one's size)."""
    args = list(_args(x, skip, gamma, beta, bias, n, eps, simplified, y, mean, inv_std, total))

    def call(x=None, skip=None):
        if x is not None:
            args[0] = _flat(x, "x", args[0].size)
        if skip is not None:
            args[1] = _flat(skip, "skip", args[1].size)
        _skip_ln_impl(*args)
    return call


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
