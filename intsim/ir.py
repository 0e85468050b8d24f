"""The integer IR: typed tensors with explicit quantization, and nodes with named stages.

A `Graph` is immutable; passes build new graphs. Tensors carry an `IntType` (2..32 bits,
signed or not) or `FLOAT32` (a float island), and, where quantized, `QParams`:

    real = scale * (q - zero_point)          (per tensor, or per channel along `axis`)

A power-of-two scale is stored as an exact integer exponent (`scale == 2**-exponent`),
never only as a float that happens to be one.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional

import numpy as np

from .errors import QuantParamError


@dataclass(frozen=True)
class IntType:
    """An integer type of `bits` bits, two's complement when `signed`."""

    bits: int
    signed: bool

    def __post_init__(self):
        if not 1 <= self.bits <= 64:
            raise QuantParamError(f"integer width {self.bits} is outside 1..64 bits")

    @functools.cached_property      # frozen: computed once, kept in the instance dict
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @functools.cached_property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @functools.cached_property
    def storage(self) -> np.dtype:
        """The narrowest NumPy dtype that holds every value of this type."""
        for width in (8, 16, 32, 64):
            if self.bits <= width and not (not self.signed and self.bits == 64 and width == 64):
                return np.dtype(f"{'' if self.signed else 'u'}int{width}")
        raise QuantParamError(f"no storage for {self}")

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"


@dataclass(frozen=True)
class FloatType:
    bits: int = 32

    def __str__(self) -> str:
        return f"float{self.bits}"

    @property
    def storage(self) -> np.dtype:
        return np.dtype(f"float{self.bits}")


FLOAT32 = FloatType(32)
INT32 = IntType(32, True)
INT8 = IntType(8, True)
UINT8 = IntType(8, False)

DType = Any  # IntType | FloatType


def pow2_exponent(scale: np.ndarray) -> Optional[np.ndarray]:
    """Return integer e with scale == 2**-e exactly (elementwise), or None if any is not."""
    s = np.asarray(scale, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        return None
    mant, exp = np.frexp(s)
    if not np.all(mant == 0.5):
        return None
    return (1 - exp).astype(np.int64)


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization of one tensor.

    scale: float32 array, shape () per tensor or (C,) per channel along `axis`
           (or the blocked shape when `block_size` > 0).
    zero_point: int64 array of the same shape.
    kind: "pow2" when every scale is an exact power of two (then `exponent` holds e with
          scale = 2**-e), else "affine".
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: Optional[int] = None
    block_size: int = 0
    kind: str = "affine"
    exponent: Optional[np.ndarray] = None

    @staticmethod
    def make(scale, zero_point, axis=None, block_size=0, name="?") -> "QParams":
        s = np.asarray(scale, dtype=np.float32)
        z = np.asarray(zero_point if zero_point is not None else np.zeros_like(s, np.int64))
        if not np.issubdtype(z.dtype, np.integer):
            raise QuantParamError(f"tensor '{name}': zero point must be an integer array, got {z.dtype}")
        z = z.astype(np.int64)
        if z.shape != s.shape:
            if z.size == 1 and s.size >= 1:
                z = np.broadcast_to(z.reshape(()), s.shape).copy()
            else:
                raise QuantParamError(
                    f"tensor '{name}': zero point shape {z.shape} does not match scale shape {s.shape}")
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            bad = s[~(np.isfinite(s) & (s > 0))].ravel()[:3]
            raise QuantParamError(f"tensor '{name}': scale must be finite and > 0, got {bad.tolist()}")
        if s.ndim > 1 and block_size == 0:
            raise QuantParamError(f"tensor '{name}': scale of rank {s.ndim} needs a block_size")
        if s.ndim == 0:
            axis = None
        e = pow2_exponent(s)
        return QParams(s, z, axis, int(block_size), "pow2" if e is not None else "affine", e)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.block_size == 0

    def channel_scale(self, channels: int) -> np.ndarray:
        """Scale broadcast to `channels` entries (float32)."""
        return np.broadcast_to(self.scale.reshape(-1), (channels,)) if self.scale.size == 1 \
            else self.scale.reshape(-1)

    def channel_zero_point(self, channels: int) -> np.ndarray:
        return np.broadcast_to(self.zero_point.reshape(-1), (channels,)) if self.zero_point.size == 1 \
            else self.zero_point.reshape(-1)

    def same_as(self, other: Optional["QParams"]) -> bool:
        return (other is not None and self.axis == other.axis and self.block_size == other.block_size
                and self.scale.shape == other.scale.shape
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))

    def describe(self) -> str:
        if self.scale.size == 1:
            return f"scale={float(self.scale.reshape(-1)[0]):.9g} zp={int(self.zero_point.reshape(-1)[0])}"
        return f"per-channel axis={self.axis} ({self.scale.size} scales)"


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple  # ints, or None for unknown dims
    dtype: DType
    qparams: Optional[QParams] = None

    def with_(self, **kw) -> "Tensor":
        return dataclasses.replace(self, **kw)


def _frozen(d: Optional[Mapping]) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Node:
    """One IR operation.

    op: an IR op name (see `intsim.steps` for the executable ops).
    origin: "OpType (opset N)" of the ONNX node(s) it came from, for messages.
    attrs: op-specific, immutable. Compute ops (conv, gemm) keep their stages apart:
        attrs["requant"]: a `Requant` (None for ConvInteger/MatMulInteger: int32 out).
    """

    op: str
    name: str
    inputs: tuple
    outputs: tuple
    attrs: Mapping = field(default_factory=lambda: _frozen({}))
    origin: str = ""

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not isinstance(self.attrs, MappingProxyType):
            object.__setattr__(self, "attrs", _frozen(self.attrs))


@dataclass(frozen=True, eq=False)
class Requant:
    """The requantize + clamp + output-zero-point stages of a compute node.

    real_multiplier[c] = in_scale_a * in_scale_b[c] / (out_scale * divisor)  (kept as the
    float32 factors and the integer divisor, e.g. a pool's window count, so that each target
    can form it in its own operation order).
    The result is clamp(round(acc * M) + out_zp, lo, hi); lo/hi include fused activations.
    """

    a_scale: np.ndarray     # float32, () or (C,)
    b_scale: np.ndarray     # float32, () or (C,)
    out_scale: np.ndarray   # float32, ()
    out_zp: int
    lo: int
    hi: int
    out_type: IntType
    out_name: str = ""
    divisor: int = 1


@dataclass(frozen=True)
class Graph:
    tensors: Mapping[str, Tensor]
    nodes: tuple
    inputs: tuple
    outputs: tuple
    constants: Mapping[str, np.ndarray]
    name: str = "graph"
    opset: int = 0
    # constants that are initializers also listed as graph inputs (IR >= 4): a feed may
    # override them, so runtimes (and the importer) do not constant-fold what reads them
    overridable: frozenset = frozenset()

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producers(self) -> dict:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict:
        out: dict = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def replace(self, **kw) -> "Graph":
        return dataclasses.replace(self, **kw)
