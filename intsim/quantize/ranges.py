"""Range setting: the scale of each weight tensor (or channel) and of each activation.

Weights are symmetric (zero point 0), signed `bits`-bit, full range [-2**(b-1), 2**(b-1)-1]:

    q = clamp(rint_RNE(w / s), qmin, qmax)          (w float32 -> float64, s float32 -> float64)
    MSQE = mean((q * s - w)**2)                     (float64, over the tensor or one channel)

Methods (`method`):
- "minmax": s covers max|w| with qmax (pow2: the finest power of two that does).
- "msqe": the candidate minimizing MSQE. pow2: exponents e0-1 .. e0+3 around the min-max
  exponent e0; affine: clipping ratios 1.00, 0.99, ..., 0.20 of max|w|. The min-max scale is a
  candidate and wins ties, so MSQE(msqe) <= MSQE(minmax) always.
- "percentile:P": s covers the P-th percentile of |w| (per row).
- "mse-output": the msqe candidates, scored by the layer's output error on calibration data,
  err_c = d_c H d_c^T with d = q*s - w and H = E[x x^T] of the layer's input patches.
Rows are output channels (granularity "channel", `axis` given) or the whole tensor.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import QuantParamError
from ..ir import IntType
from . import pow2

AFFINE_RATIOS = np.round(np.linspace(1.0, 0.2, 81), 4)
POW2_OFFSETS = (0, -1, 1, 2, 3)   # e0 first: it wins ties
METHODS = ("minmax", "msqe", "percentile", "mse-output")


def parse_method(text: str) -> tuple:
    """'minmax' | 'msqe' | 'mse-output' | 'percentile:P' -> (name, P or None)."""
    name, _, arg = text.partition(":")
    if name not in METHODS:
        raise QuantParamError(f"unknown range method {text!r}; known: minmax, msqe, percentile:P, mse-output")
    if name == "percentile":
        try:
            p = float(arg)
        except ValueError:
            raise QuantParamError(f"percentile needs a number, e.g. percentile:99.99, got {text!r}") from None
        if not 50.0 < p <= 100.0:
            raise QuantParamError(f"percentile must be in (50, 100], got {p}")
        return name, p
    if arg:
        raise QuantParamError(f"range method {name!r} takes no argument, got {text!r}")
    return name, None


def weight_type(bits: int) -> IntType:
    if not 2 <= bits <= 8:
        raise QuantParamError(f"weight bits must be in 2..8, got {bits}")
    return IntType(bits, True)


def rows(w: np.ndarray, axis: Optional[int]) -> np.ndarray:
    """w as float64 (R, n): one row per channel along `axis`, or one row when axis is None."""
    w = np.asarray(w, dtype=np.float64)
    return w.reshape(1, -1) if axis is None else np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def quantize_rows(r: np.ndarray, scale: np.ndarray, t: IntType) -> np.ndarray:
    """clamp(rint(r / s), qmin, qmax) row by row; int64."""
    s = np.asarray(scale, dtype=np.float32).astype(np.float64).reshape(-1, 1)
    return np.clip(np.rint(r / s), t.qmin, t.qmax).astype(np.int64)


def quantize_weight(w: np.ndarray, scale: np.ndarray, axis: Optional[int], t: IntType) -> np.ndarray:
    """The integer weight, same shape as w, int64."""
    q = quantize_rows(rows(w, axis), scale, t)
    if axis is None:
        return q.reshape(w.shape)
    moved = np.moveaxis(np.empty(w.shape), axis, 0).shape
    return np.moveaxis(q.reshape(moved), 0, axis)


def row_msqe(r: np.ndarray, scale: np.ndarray, t: IntType) -> np.ndarray:
    """Per-row mean squared quantization error, float64."""
    s = np.asarray(scale, dtype=np.float32).astype(np.float64).reshape(-1, 1)
    return np.mean((quantize_rows(r, scale, t) * s - r) ** 2, axis=1)


def weight_msqe(w, scale, axis, t: IntType) -> float:
    """MSQE of the whole tensor under `scale` (per tensor or per channel)."""
    r = rows(w, axis)
    return float(np.mean(row_msqe(r, np.broadcast_to(np.asarray(scale, np.float32).reshape(-1), (r.shape[0],)), t)))


def _minmax_scale(absmax: np.ndarray, t: IntType, kind: str) -> np.ndarray:
    if kind == "pow2":
        return pow2.pow2_scale(pow2.minmax_exponent(absmax, t.qmax))
    s = (absmax / t.qmax).astype(np.float32)
    return np.where(s > 0, s, np.float32(1.0)).astype(np.float32)


def _candidates(absmax: np.ndarray, t: IntType, kind: str) -> np.ndarray:
    """(n_candidates, R) float32 scales; candidate 0 is the min-max scale."""
    if kind == "pow2":
        e0 = pow2.minmax_exponent(absmax, t.qmax)
        # candidates past float32's powers of two (a subnormal range) repeat the last one there
        return np.stack([pow2.pow2_scale(np.clip(e0 + k, pow2.MIN_EXP, pow2.MAX_EXP)) for k in POW2_OFFSETS])
    return np.stack([_minmax_scale(absmax * a, t, kind) for a in AFFINE_RATIOS])


def _pick(scores: np.ndarray, cands: np.ndarray, per_row: bool) -> np.ndarray:
    """scores (n_cand, R): per-row argmin, or argmin of the row sum (first wins ties)."""
    if per_row:
        return cands[np.argmin(scores, axis=0), np.arange(cands.shape[1])]
    return cands[int(np.argmin(scores.sum(axis=1)))]


def output_error(d: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """err_c = d_c H_g d_c^T for each output channel c (d: (C, K), hess: (G, K, K))."""
    g = hess.shape[0]
    dg = d.reshape(g, d.shape[0] // g, -1)
    return np.einsum("gck,gkl,gcl->gc", dg, hess, dg).reshape(-1)


def choose_weight_scale(w: np.ndarray, bits: int, kind: str = "affine", axis: Optional[int] = None,
                        method: str = "minmax", hess: Optional[np.ndarray] = None,
                        out_axis: int = 0) -> np.ndarray:
    """The float32 scale (shape () per tensor, (C,) per channel along `axis`) of weight w.

    kind: "affine" (any float32) or "pow2" (exact 2**-e). `hess` (G, K, K) is required by
    "mse-output"; `out_axis` is the output-channel axis used to form its per-channel error."""
    t = weight_type(bits)
    if kind not in ("affine", "pow2"):
        raise QuantParamError(f"scale kind must be 'affine' or 'pow2', got {kind!r}")
    name, p = parse_method(method)
    r = rows(w, axis)
    absmax = np.abs(r).max(axis=1) if r.size else np.zeros(r.shape[0])
    if name == "minmax":
        s = _minmax_scale(absmax, t, kind)
    elif name == "percentile":
        s = _minmax_scale(np.percentile(np.abs(r), p, axis=1), t, kind)
    else:
        cands = _candidates(absmax, t, kind)
        if name == "msqe":
            scores = np.stack([row_msqe(r, c, t) for c in cands])
        else:
            scores = _output_scores(w, cands, t, axis, hess, out_axis)
        s = _pick(scores, cands, axis is not None)
    return s.reshape(()) if axis is None else s.astype(np.float32)


def _output_scores(w, cands, t, axis, hess, out_axis) -> np.ndarray:
    if hess is None:
        raise QuantParamError("range method 'mse-output' needs calibration statistics of the layer input")
    wo = rows(w, out_axis)
    out = []
    for c in cands:
        scale = np.broadcast_to(c, (wo.shape[0],)) if axis is None else c
        d = quantize_rows(wo, scale, t) * np.asarray(scale, np.float64).reshape(-1, 1) - wo
        out.append(output_error(d, hess) if axis is not None else np.array([output_error(d, hess).sum()]))
    return np.stack(out)


# -- activations ------------------------------------------------------------------------------
def act_type(bits: int) -> IntType:
    if bits not in (8, 16):
        raise QuantParamError(f"activation bits must be 8 or 16, got {bits}")
    return IntType(bits, True)


def act_params(lo: float, hi: float, t: IntType, kind: str, symmetric: bool) -> tuple:
    """(scale float32, zero point int) covering [min(lo,0), max(hi,0)].

    Non-negative ranges (after ReLU) use zp = qmin and s = hi/(qmax-qmin), in every mode.
    Otherwise symmetric: zp = 0, s = max(|lo|,|hi|)/qmax; affine: s = (hi-lo)/(qmax-qmin),
    zp = clamp(rint(qmin - lo/s)). pow2 rounds s up to the next power of two."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if lo >= 0.0:
        span, zp_of = hi / (t.qmax - t.qmin), (lambda s: t.qmin)
    elif symmetric:
        span, zp_of = max(-lo, hi) / t.qmax, (lambda s: 0)
    else:
        span = (hi - lo) / (t.qmax - t.qmin)
        zp_of = (lambda s: int(np.clip(np.rint(t.qmin - lo / float(s)), t.qmin, t.qmax)))
    if span <= 0.0:
        return np.float32(1.0), int(zp_of(1.0))
    s = pow2.pow2_scale(pow2.ceil_exponent(span)) if kind == "pow2" else np.float32(span)
    if kind != "pow2" and float(s) < span:  # float32 rounding must not clip the range
        s = np.nextafter(np.float32(span), np.float32(np.inf))
    return np.float32(s), int(zp_of(s))


def fake_quant(x: np.ndarray, scale, zp: int, t: IntType) -> np.ndarray:
    """ONNX QuantizeLinear then DequantizeLinear: (clamp(rint(x/s)+zp) - zp) * s (float32 division)."""
    q = np.clip(np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zp, t.qmin, t.qmax)
    return (q - zp) * np.float64(scale)


def choose_act_params(values: np.ndarray, bits: int, kind: str = "affine", symmetric: bool = False,
                      method: str = "minmax") -> tuple:
    """(scale, zp) of an activation from calibration samples. "msqe" and "mse-output" both
    shrink the min-max range by the ratios above (pow2: by powers of two) and keep the
    candidate with the least squared error on the samples."""
    t = act_type(bits)
    name, p = parse_method(method)
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size == 0:
        raise QuantParamError("no calibration values for an activation")
    if name == "percentile":
        return act_params(np.percentile(v, 100.0 - p), np.percentile(v, p), t, kind, symmetric)
    lo, hi = float(v.min()), float(v.max())
    if name == "minmax":
        return act_params(lo, hi, t, kind, symmetric)
    ratios = [2.0 ** -k for k in range(4)] if kind == "pow2" else AFFINE_RATIOS
    best, best_err = None, np.inf
    for a in ratios:
        s, z = act_params(lo * a, hi * a, t, kind, symmetric)
        err = float(np.mean((fake_quant(v, s, z, t) - v) ** 2))
        if err < best_err:
            best, best_err = (s, z), err
    return best
