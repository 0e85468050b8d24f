"""Reading a node's parameter inputs: constants are read once at prepare time; parameters
fed at run time (as in the ONNX conformance graphs) are read from the environment."""
from __future__ import annotations

import numpy as np

from ..errors import QuantParamError


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
