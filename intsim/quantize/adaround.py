"""AdaRound (Nagel et al. 2020): learn, layer by layer, whether each weight rounds up or down.

For weight rows w (C, K) with fixed scales s (C,), w_floor = floor(w/s) and the rectified
sigmoid h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1), zeta = 1.1, gamma = -0.1:

    w_soft = s * clamp(w_floor + h(V), qmin, qmax)
    L = sum_c d_c H d_c^T / L_nearest + lam * mean(1 - |2 h(V) - 1|**beta),   d = w_soft - w

H = E[x x^T] of the layer's float input patches (calibration data), L_nearest the error of
round-to-nearest. V starts where h(V) = frac(w/s); beta anneals from 20 to 2 after a warm-up
without the regularizer; Adam on V. The result rounds up where h(V) >= 0.5. If that hard
rounding reconstructs the layer worse than round-to-nearest, nearest is kept (reported).
Gradients are written out by hand (NumPy, float64).
"""
from __future__ import annotations

import sys

import numpy as np

from ..ir import IntType
from .lsq import Adam
from .ranges import output_error

ZETA, GAMMA = 1.1, -0.1


def rect_sigmoid(v: np.ndarray) -> tuple:
    """(h(V), dh/dV)."""
    sig = 1.0 / (1.0 + np.exp(-v))
    raw = sig * (ZETA - GAMMA) + GAMMA
    h = np.clip(raw, 0.0, 1.0)
    return h, np.where((raw > 0.0) & (raw < 1.0), (ZETA - GAMMA) * sig * (1.0 - sig), 0.0)


def init_v(frac: np.ndarray) -> np.ndarray:
    """V with h(V) = frac (frac in [0, 1))."""
    p = np.clip((frac - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6)
    return np.log(p / (1.0 - p))


def _rec_error(q: np.ndarray, s: np.ndarray, wr: np.ndarray, hess: np.ndarray) -> float:
    return float(output_error(q * s[:, None] - wr, hess).sum())


def adaround_rows(wr: np.ndarray, scale: np.ndarray, t: IntType, hess: np.ndarray, steps: int = 1000,
                  lr: float = 0.02, lam: float = 0.01, warmup: float = 0.2) -> tuple:
    """Integer rows (C, K) int64 and a dict of {"nearest", "adaround", "kept"} errors."""
    wr = np.asarray(wr, dtype=np.float64)
    s = np.broadcast_to(np.asarray(scale, np.float32).astype(np.float64).reshape(-1), (wr.shape[0],))
    v_over_s = wr / s[:, None]
    nearest = np.clip(np.rint(v_over_s), t.qmin, t.qmax)
    e_near = _rec_error(nearest, s, wr, hess)
    if e_near <= 0.0 or steps <= 0:
        return nearest.astype(np.int64), {"nearest": e_near, "adaround": e_near, "kept": "nearest"}
    floor = np.floor(v_over_s)
    v = init_v(v_over_s - floor)
    opt = Adam(lr)
    g = hess.shape[0]
    for k in range(steps):
        h, dh = rect_sigmoid(v)
        raw = floor + h
        d = np.clip(raw, t.qmin, t.qmax) * s[:, None] - wr
        dg = d.reshape(g, d.shape[0] // g, -1)
        grad = 2.0 * np.einsum("gck,gkl->gcl", dg, hess).reshape(d.shape) / e_near
        grad *= s[:, None] * ((raw >= t.qmin) & (raw <= t.qmax))
        frac_done = (k / steps - warmup) / (1.0 - warmup)
        if frac_done >= 0.0:
            beta = 20.0 + (2.0 - 20.0) * frac_done
            u = 2.0 * h - 1.0
            grad += lam / h.size * (-beta * np.abs(u) ** (beta - 1.0) * np.sign(u) * 2.0)
        v = opt.step(v, grad * dh)
    q = np.clip(floor + (rect_sigmoid(v)[0] >= 0.5), t.qmin, t.qmax)
    e_ada = _rec_error(q, s, wr, hess)
    if e_ada > e_near:
        return nearest.astype(np.int64), {"nearest": e_near, "adaround": e_ada, "kept": "nearest"}
    return q.astype(np.int64), {"nearest": e_near, "adaround": e_ada, "kept": "adaround"}


def progress(i: int, n: int, label: str, stream=None, width: int = 24) -> None:
    """One-line text progress bar on stderr: [#####.....] i/n label."""
    stream = stream or sys.stderr
    done = int(width * i / max(n, 1))
    stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {label[:40]:<40}")
    if i >= n:
        stream.write("\n")
    stream.flush()
