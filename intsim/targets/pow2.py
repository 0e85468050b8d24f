"""Targets `pow2`, `pow2-floor`, `pow2-rhu`, `pow2-rne`, `pow2-rhaz`: shift-only requantization.

Prepare: real[c] = double(a_scale) * double(b_scale[c]) / double(out_scale) must be exactly
2**-n[c] (an integer n, checked with `intsim.ir.pow2_exponent`); otherwise QuantParamError
names the output tensor and the multiplier, unless the target was made with `snap=True`:
then n[c] = -rint(log2(real[c])) and a warning lists every snapped channel.

Run (exact int64, kernels.fixedpoint.requant_shift):

    out = clamp(((acc + r) >> n[c]) + out_zp, lo, hi),   n < 0: acc << -n (exact)

r by rounding: floor r = 0; rhu r = 2**(n-1); rne and rhaz break the tie to even / away from
zero. `pow2` uses rhu: one adder and an arithmetic shift, the usual accelerator datapath.
"""
from __future__ import annotations

import warnings

from types import MappingProxyType

import numpy as np

from kernels.fixedpoint import requant_shift, requant_shift_ref

from ..errors import QuantParamError
from ..ir import Requant, pow2_exponent
from .base import Requantizer, Target
from .rules import AccRequant, BiasShift, DivideRound, QuantizeRound
from .tflite import check_real, real_multiplier

N_MIN, N_MAX = -31, 62


class ShiftRequantizer(Requantizer):
    kernel, twin = staticmethod(requant_shift), staticmethod(requant_shift_ref)
    arg_names = ("right_shift", "rounding", "zero_point", "lo", "hi")


def pow2_shifts(rq: Requant, real: np.ndarray, snap: bool, target: str) -> np.ndarray:
    """n (int64, (C,)) with real == 2**-n, or snapped to the nearest power of two in log2."""
    exact = pow2_exponent(real)
    if exact is not None:
        n = exact
    elif not snap:
        bad = [float(r) for r in real if pow2_exponent(np.array([r])) is None][:3]
        raise QuantParamError(f"tensor '{rq.out_name}': requant multiplier {bad} is not a power of two, "
                              f"as target {target} requires (create it with snap=True to round it)")
    else:
        n = -np.rint(np.log2(real)).astype(np.int64)
        moved = [(c, float(real[c]), int(n[c])) for c in range(real.size) if real[c] != 2.0 ** -int(n[c])]
        warnings.warn(f"target {target}: tensor '{rq.out_name}': snapped multipliers to powers of two "
                      f"(channel, multiplier, n): {moved[:8]}" + (" ..." if len(moved) > 8 else ""),
                      stacklevel=3)
    if np.any(n < N_MIN) or np.any(n > N_MAX):
        raise QuantParamError(f"tensor '{rq.out_name}': shift {n.min()}..{n.max()} outside {N_MIN}..{N_MAX}")
    return n


class Pow2Target(Target):
    """Every integer op is an exact int64 accumulator and one shift in the target's rounding
    (rules.AccRequant): adds align their inputs by shifts (the scale ratio must be a power of
    two), and adds and muls fold the output zero point into the sum before the shift; average
    pools divide the window sum by its count exactly and round the quotient in the target's
    rounding (rules.DivideRound: an exact divider; sx/sy must be a power of two).
    QuantizeLinear of float input rounds half to even, as ONNX. Lookup-table activations are
    refused by name. Built-ins: `pow2` (= `pow2-rhu`), `pow2-floor`, `pow2-rhu`, `pow2-rne`,
    `pow2-rhaz` (targets.registry). QDQ graphs fuse under the "integer" policy (a Relu/Clip
    before the Q is the clamp, 16-bit activations fuse) and a bias with its own power-of-two
    scale is shifted onto the accumulator (rules.BiasShift, in the target's rounding)."""

    qdq_fusion = "integer"

    def __init__(self, snap: bool = False, name: str = "pow2", rounding: str = "rhu"):
        self.snap, self.name, self.rounding = bool(snap), name, rounding

    @property
    def rules(self):
        return MappingProxyType({op: AccRequant() for op in ("conv", "matmul", "concat")}
                                | {"add": AccRequant(fold_zp=True), "mul": AccRequant(fold_zp=True)}
                                | {"avgpool": DivideRound(self.rounding), "global_avgpool": DivideRound(self.rounding),
                                   "quantize": QuantizeRound("rne")})

    def bias_rule(self, node):
        return BiasShift(self.rounding)

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        real = real_multiplier(rq, channels)
        check_real(rq, real)
        n = pow2_shifts(rq, real, self.snap, self.name)
        return ShiftRequantizer(self.name, {
            "real_multiplier": real, "right_shift": n, "rounding": self.rounding,
            "zero_point": int(rq.out_zp), "lo": int(rq.lo), "hi": int(rq.hi)})
