"""Reading a node's parameter inputs: constants are read once at prepare time; parameters
fed at run time (as in the ONNX conformance graphs) are read from the environment."""
from __future__ import annotations

import numpy as np

from kernels.fixedpoint import requant_shift_ref

from ..errors import QuantParamError
from ..ir import pow2_exponent


class ParamReader:
    def __init__(self, node, ctx, indices):
        self.node, self.ctx = node, ctx
        names = [node.inputs[i] if i < len(node.inputs) else "" for i in indices]
        self.static = all((not n) or n in ctx.constants for n in names)

    def values(self, env) -> list:
        c = self.ctx.constants
        return [None if not n else (c[n] if n in c else env.get(n)) for n in self.node.inputs]


def scalar_zp(zp, tensor: str, node: str) -> int:
    if zp is None:
        return 0
    z = np.asarray(zp)
    if z.size != 1:
        raise QuantParamError(f"node '{node}': tensor '{tensor}' needs a per-tensor zero point, got shape {z.shape}")
    return int(z.reshape(-1)[0])


def per_channel(p, channels: int, tensor: str, node: str, dtype) -> np.ndarray:
    """A per-tensor or per-channel parameter as a contiguous (channels,) array."""
    if p is None:
        return np.zeros(channels, dtype)
    a = np.asarray(p).reshape(-1)
    if a.size == 1:
        return np.full(channels, a[0], dtype)
    if a.size != channels:
        raise QuantParamError(f"node '{node}': tensor '{tensor}' has {a.size} values for {channels} channels")
    return np.ascontiguousarray(a.astype(dtype))


def out_type_8bit(node, what: str):
    """The node's `out_type`, which must be 8 bits wide (QuantParamError naming `what`)."""
    t = node.attrs["out_type"]
    if t.bits != 8:
        raise QuantParamError(f"node '{node.name}': {what} is modelled for 8-bit codes, output is {t}")
    return t


def scalar_scale(v, tensor: str, node, what: str) -> float:
    """A per-tensor scale as a float (check_scale's checks); a per-channel one is a
    QuantParamError naming the node and `what` needs it per tensor."""
    s = check_scale(v, tensor, node.name).reshape(-1)
    if s.size != 1:
        raise QuantParamError(f"node '{node.name}': {what} needs a per-tensor scale, '{tensor}' has {s.size}")
    return float(s[0])


def check_scale(s, tensor: str, node: str) -> np.ndarray:
    a = np.asarray(s, dtype=np.float32)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise QuantParamError(f"node '{node}': scale '{tensor}' must be finite and > 0, got {a.reshape(-1)[:4].tolist()}")
    return a


def bias_onto_accumulator(rule, node, bias: np.ndarray, x_scale, w_scale, channels: int) -> np.ndarray:
    """A bias with its own power-of-two scale (node.attrs["bias_scale"], per tensor or per
    channel) on the accumulator grid x_scale*w_scale[c], by `rule` (targets.rules.BiasShift):
    with bias scale 2**-eb and accumulator scale 2**-ea[c] (both exact powers of two, else
    QuantParamError naming the node),

        bias_acc[c] = round(bias[c] * 2**(ea[c] - eb[c]))   (a left shift when ea >= eb, exact;
                                                             else a right shift in rule.rounding)

    computed by kernels.fixedpoint.requant_shift_ref (int64, at prepare)."""
    eb = pow2_exponent(per_channel(node.attrs["bias_scale"], channels, node.inputs[8], node.name, np.float64))
    acc = np.float64(np.asarray(x_scale, np.float32).reshape(-1)[0]) * \
        per_channel(np.asarray(w_scale, np.float32), channels, node.inputs[4], node.name, np.float64)
    ea = pow2_exponent(acc)
    if eb is None or ea is None:
        raise QuantParamError(f"node '{node.name}': bias '{node.inputs[8]}' has its own scale "
                              f"{np.asarray(node.attrs['bias_scale']).reshape(-1)[:4].tolist()}; moving it onto the "
                              f"accumulator (scale x_scale*w_scale) by a shift needs both to be powers of two")
    out = np.empty((1, channels, 1), np.int64)
    lim = np.iinfo(np.int64)
    requant_shift_ref(bias.astype(np.int64).reshape(1, channels, 1), eb - ea, rule.rounding, 0, lim.min, lim.max, out)
    return out.reshape(-1)
