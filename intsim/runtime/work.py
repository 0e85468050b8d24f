"""Which steps run on one thread: a conv or matmul whose single-thread time is estimated below
SERIAL_US runs with serial kernels (kernels.threads.call_serial), whatever the thread count.

A 2-thread Numba parallel region ends at a barrier both threads must reach. On an idle 2-core
host the hand-off costs ~10-25 us a region; on a busy one a descheduled team thread makes the
caller wait for a time slice (measured on the shared host, 1 vs 2 threads, the same prepared
QLinearConv/QLinearMatMul through Program.run: dw7 (960x7x7 depthwise) 0.05 vs 0.26 ms,
784x32x192 GEMM 0.04 vs 0.29 ms). Splitting saves at most half the step's time, so a step of
t us gains only when t/2 exceeds that hand-off: below SERIAL_US the step runs serially.

The estimate is made once per step at prepare from the IR's declared shapes (the batch
dimension excepted), as multiply-adds per sample over a sustained single-thread rate:

    us(n) = n * prod(out.shape[1:]) * K / RATE,   K = C/group*KH*KW (conv) or B's rows (matmul),
    RATE = DENSE_MACS_PER_US (group 1, or narrow groups that kernels.grouped_nhwc runs as dense
           tiles: RegNetX's 25 x 16 channels at 7x7, 2.8 M MACs, 17 us on one thread) or
           DEPTHWISE_MACS_PER_US (other grouped convs: no GEMM blocking)

`n` is the run's batch (axis 0 of the step's first input). Steps whose output shape is not
declared, and every other op (their kernels keep their own thresholds), keep the thread count.
INTSIM_SERIAL_US sets the threshold (0: never serial), read when a Program is prepared.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from kernels import grouped_nhwc

from ..errors import IntsimError

# sustained single-thread rates of the fused VNNI lanes on the 2-core host (kernel-level suites:
# ~350 GOP/s on one thread for dense GEMMs, depthwise 25-55 GOP/s on two)
DENSE_MACS_PER_US = 150_000.0
DEPTHWISE_MACS_PER_US = 15_000.0


SERIAL_US = 40.0


def serial_us() -> float:
    """The threshold in force: INTSIM_SERIAL_US when set (0: never serial), else SERIAL_US."""
    raw = os.environ.get("INTSIM_SERIAL_US", "").strip()
    if not raw:
        return SERIAL_US
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise IntsimError(f"environment variable INTSIM_SERIAL_US={raw!r} must be a number of microseconds >= 0")
    return value


def _prod(dims) -> Optional[int]:
    n = 1
    for d in dims:
        if not isinstance(d, (int, np.integer)) or d <= 0:
            return None
        n *= int(d)
    return n


def _storage(t):
    """The NumPy storage dtype of IR tensor t, None when unknown."""
    try:
        return np.dtype(t.dtype.storage)
    except Exception:  # noqa: BLE001 - no tensor, a float tensor, an odd width: not known
        return None


def us_per_sample(node, graph) -> Optional[float]:
    """Estimated single-thread microseconds of one sample of a conv or matmul step (see the
    module doc); None for other ops or when a shape is not known."""
    if node.op not in ("conv", "matmul") or len(node.inputs) < 4:
        return None
    w = graph.constants.get(node.inputs[3])
    out = graph.tensors.get(node.outputs[0]) if node.outputs else None
    if w is None or w.ndim < 2 or out is None or not out.shape or len(out.shape) < 2:
        return None
    per_sample = _prod(out.shape[1:])
    if per_sample is None:
        return None
    if node.op == "conv":
        group = int(node.attrs.get("group", 1))
        x_dtype = _storage(graph.tensors.get(node.inputs[0]))
        # narrow groups run as dense tiles (kernels.grouped_nhwc), other grouped convs without GEMM blocking
        dense = group == 1 or (x_dtype is not None and grouped_nhwc.fits(w.shape, group, x_dtype))
        k, rate = _prod(w.shape[1:]), DENSE_MACS_PER_US if dense else DEPTHWISE_MACS_PER_US
    else:
        k, rate = int(w.shape[-1] if node.attrs.get("transB") else w.shape[-2]), DENSE_MACS_PER_US
    return None if k is None else per_sample * k / rate


def serial_steps(steps: list, graph) -> list:
    """For each (node, fn) step, chosen once at prepare: its per-sample estimate as a share of
    the threshold (us_per_sample / serial_us()) when the step could ever run serially, else
    None (the step keeps the thread count)."""
    threshold = serial_us()
    if threshold <= 0:
        return [None] * len(steps)
    shares = []
    for node, _ in steps:
        us = us_per_sample(node, graph)
        shares.append(None if us is None else us / threshold)
    return shares


def runs_serial(share: Optional[float], env: dict, node) -> bool:
    """Whether this run of the step (batch n = axis 0 of its first input in env) runs serially:
    n * share < 1, share from serial_steps."""
    if share is None:
        return False
    x = env.get(node.inputs[0])
    n = x.shape[0] if isinstance(x, np.ndarray) and x.ndim else 1
    return n * share < 1


__all__ = ["SERIAL_US", "serial_us", "us_per_sample", "serial_steps", "runs_serial"]
