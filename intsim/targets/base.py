"""The target seam: how a deployment target turns an accumulator back into a narrow integer.

A `Target` is chosen by name (`intsim.load(..., target="ort")`). At prepare time the executor
asks it for a `Requantizer` per compute node; at run time only `Requantizer.apply` runs.

    acc (int32/int64, laid out (outer, C, inner))  --apply-->  out (narrow ints, same layout)

`Requantizer.params` holds the integer/float parameters the target derived (multiplier,
shift, zero point, clamp), for reports and golden-vector dumps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Requant


@dataclass
class Requantizer:
    target: str
    params: dict = field(default_factory=dict)

    def apply(self, acc: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Target:
    """Base class. Subclasses implement `requantizer`; elementwise ops default to ORT's."""

    name = "base"
    # how float inputs are quantized (QuantizeLinear on a float tensor): ONNX rounds half to
    # even; TFLite's float Quantize rounds half away from zero
    quantize_rounding = "rne"

    def requantizer(self, rq: Requant, channels: int, node: str) -> Requantizer:
        raise NotImplementedError

    def accumulation(self, a_dtype: np.dtype, b_dtype: np.dtype) -> str:
        """The accumulation model this target's hardware uses for a (a_dtype x b_dtype)
        GEMM/conv: "exact" (int32 sums) unless the target says otherwise."""
        return "exact"


_REGISTRY: dict = {}


def register(cls):
    _REGISTRY[cls.name] = cls
    return cls


def get_target(name_or_target) -> Target:
    from ..errors import IntsimError
    if isinstance(name_or_target, Target):
        return name_or_target
    name = str(name_or_target)
    if name.endswith(".toml"):
        from .user import load_target_file
        return load_target_file(name)
    if name not in _REGISTRY:
        raise IntsimError(f"unknown target '{name}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]()


def known_targets() -> list:
    return sorted(_REGISTRY)
