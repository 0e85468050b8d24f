"""Learned step size (LSQ, Esser et al. 2020) for weight scales, layer by layer, in NumPy.

The parameter is t = log2(scale), one per tensor or per output channel. Forward pass:

    s = 2**round(t)   (pow2: rounded in the forward pass, straight-through backward)
    s = 2**t          (affine)
    v = w / s,  q = clamp(rint(v), qmin, qmax),  w_q = q * s

Loss: the layer's output reconstruction error on calibration data, normalized by its value
at the initial scale, L = sum_c d_c H d_c^T / L0 with d = w_q - w and H = E[x x^T] of the
input patches (so no activations are stored). Gradients (LSQ's straight-through rule):

    dw_q/ds = q - v  where qmin <= v <= qmax, else q;     ds/dt = s * ln 2

and t follows Adam. Every step records t, s and L, so convergence, or oscillation of
round(t) between two exponents, can be plotted (`Trajectory`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import IntType
from .ranges import output_error


class Adam:
    """Adam (Kingma & Ba) on one float64 array."""

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = self.v = None
        self.k = 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        if self.m is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.k += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        mh = self.m / (1 - self.b1 ** self.k)
        vh = self.v / (1 - self.b2 ** self.k)
        return x - self.lr * mh / (np.sqrt(vh) + self.eps)


@dataclass
class Trajectory:
    """Per step (steps+1 rows): log2 scale t (continuous), the scale used, normalized loss."""

    log2_scale: list = field(default_factory=list)
    scale: list = field(default_factory=list)
    loss: list = field(default_factory=list)

    def as_arrays(self) -> dict:
        return {k: np.asarray(v) for k, v in
                (("log2_scale", self.log2_scale), ("scale", self.scale), ("loss", self.loss))}


def _scale(t: np.ndarray, kind: str) -> np.ndarray:
    return np.exp2(np.rint(t)) if kind == "pow2" else np.exp2(t)


def lsq_loss_grad(wr: np.ndarray, s: np.ndarray, t: IntType, hess: np.ndarray) -> tuple:
    """(per-channel error (C,), dL/ds per row (C,)) for rows wr (C, K) and scales s (C,)."""
    v = wr / s[:, None]
    q = np.clip(np.rint(v), t.qmin, t.qmax)
    d = q * s[:, None] - wr
    g = hess.shape[0]
    dg = d.reshape(g, d.shape[0] // g, -1)
    grad_wq = 2.0 * np.einsum("gck,gkl->gcl", dg, hess).reshape(d.shape)
    inside = (v >= t.qmin) & (v <= t.qmax)
    dwq_ds = np.where(inside, q - v, q)
    return output_error(d, hess), (grad_wq * dwq_ds).sum(axis=1)


def learn_scale(wr: np.ndarray, init_scale: np.ndarray, t: IntType, hess: np.ndarray,
                kind: str = "pow2", per_channel: bool = False, steps: int = 200,
                lr: float = 0.02) -> tuple:
    """Learn the scale of weight rows wr (C, K) (output channels). init_scale: (C,) or ().
    Returns (float32 scale, () or (C,); Trajectory). pow2 scales are exact powers of two."""
    wr = np.asarray(wr, dtype=np.float64)
    c = wr.shape[0]
    t_param = np.log2(np.broadcast_to(np.asarray(init_scale, np.float64).reshape(-1), (c if per_channel else 1,))).copy()
    if kind == "pow2":
        t_param = np.rint(t_param)
    opt, traj = Adam(lr), Trajectory()
    norm = None
    for step in range(steps + 1):
        s = np.broadcast_to(_scale(t_param, kind), (c,))
        err, gs = lsq_loss_grad(wr, s, t, hess)
        if norm is None:
            norm = max(float(err.sum()), 1e-30)
        traj.log2_scale.append(t_param.copy())
        traj.scale.append(_scale(t_param, kind).copy())
        traj.loss.append(float(err.sum()) / norm)
        if step == steps:
            break
        grad_t = (gs * s * np.log(2.0)) / norm
        t_param = opt.step(t_param, grad_t if per_channel else np.array([grad_t.sum()]))
    final = _scale(t_param, kind)
    final = np.exp2(np.rint(t_param)).astype(np.float32) if kind == "pow2" else final.astype(np.float32)
    return (final if per_channel else final.reshape(())), traj
