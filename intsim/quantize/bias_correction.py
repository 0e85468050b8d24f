"""Empirical bias correction (white paper §4.2): remove the expected output shift that
weight quantization causes, measured on calibration data.

For output channel c of group g, with d_c = W_q[c] - W[c] (float64) and m_g = E[x] the mean
of the layer's input patches (float inputs of the calibration set, padding zeros included):

    b'[c] = b[c] - d_c . m_g

so that E[W_q x + b'] = E[W x + b] on the calibration data.
"""
from __future__ import annotations

import numpy as np


def bias_shift(d: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """d (C, K) weight error rows, mean (G, K) -> expected output shift per channel (C,)."""
    g = mean.shape[0]
    return np.einsum("gck,gk->gc", d.reshape(g, d.shape[0] // g, -1), mean).reshape(-1)


def corrected_bias(bias, d: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """float64 b - d.m (bias None counts as zeros)."""
    b = np.zeros(d.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64)
    return b - bias_shift(d, mean)
