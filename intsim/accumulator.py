"""The accumulator model: the one named point where an accumulator's width is applied.

Kernels sum products exactly (int64); `finish` then applies the model of the hardware:

- exact:    the sum must fit `bits` signed bits, else `AccumulatorOverflow` names the node;
- wrap:     two's complement at `bits` (equal to wrapping after every add, since it is modular);
- saturate and per-tile models need the kernel's K order, so they run inside the narrow
  kernels of kernels/overflow.py (chosen by `narrow_model`), and `finish` leaves their
  result as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from kernels.overflow import NarrowAcc

from .errors import AccumulatorOverflow, IntsimError

MODES = ("exact", "wrap", "saturate", "x86-u8s8-pairs")


@dataclass(frozen=True)
class Accumulator:
    bits: int = 32
    overflow: str = "exact"
    tile: Optional[int] = None

    def __post_init__(self):
        if not 2 <= int(self.bits) <= 64:
            raise IntsimError(f"accumulator width {self.bits} is outside 2..64 bits")
        if self.overflow not in MODES:
            raise IntsimError(f"unknown accumulator overflow mode '{self.overflow}' (known: {', '.join(MODES)})")
        if self.tile is not None and int(self.tile) < 1:
            raise IntsimError(f"accumulator tile {self.tile} must be >= 1")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1


def wrap(acc: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap of int64 values to `bits` bits."""
    if bits >= 64:
        return acc
    mask = np.int64((1 << bits) - 1)
    half = np.int64(1 << (bits - 1))
    return ((acc + half) & mask) - half


def narrow_model(model: Accumulator):
    """The kernels.overflow.NarrowAcc that simulates `model` in the kernel's K order, or None
    when the plain exact kernels (then `finish`) or the x86 pair model apply: saturate, wrap
    and any tiled model run there (wrap too, so that its events are counted; the result is
    the same as wrapping once at the end). Widths above 63 bits are held at 63."""
    if model.overflow == "x86-u8s8-pairs" or (model.overflow == "exact" and not model.tile):
        return None
    mode = "wrap" if model.overflow == "wrap" else "saturate"
    return NarrowAcc(min(int(model.bits), 63), mode, int(model.tile or 0))


def finish(acc: np.ndarray, model: Accumulator, node: str) -> np.ndarray:
    """Apply the `exact` / `wrap` model to an int64 accumulator array, in place when possible.
    With a tile, the partial sums were held at `bits` inside the kernel and the outer sum is
    wide: nothing is left to apply."""
    if model.tile:
        return acc
    if model.overflow == "wrap":
        return wrap(acc, model.bits)
    if model.overflow == "exact" and acc.size:
        lo, hi = int(acc.min()), int(acc.max())
        if lo < model.lo or hi > model.hi:
            raise AccumulatorOverflow(
                f"node '{node}': accumulator range [{lo}, {hi}] leaves int{model.bits} "
                f"(use --acc-overflow wrap or saturate to simulate it)")
    return acc
