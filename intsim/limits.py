"""Resource limits, checked before anything is allocated.

Two numbers bound what a (possibly hostile) model may make intsim allocate:

- ``max_elements``: elements in any one tensor or intermediate buffer (default 2**28);
- ``max_bytes``:    bytes of any one tensor, of all initializers together, of a model file,
                    and of all tensors alive at once during a run (default 4 GiB).

Defaults come from the environment variables ``INTSIM_MAX_ELEMENTS`` / ``INTSIM_MAX_BYTES``
(read each time, so a test can set them), and can be overridden for a block of code:

    with intsim.limits.limited(max_elements=1 << 20):
        prog = intsim.load("model.onnx")        # limits apply to load and, captured, to run

Every check raises `ResourceLimitError` naming the tensor (and node) that is too large.
Shapes are multiplied with Python ints, so a declared dim of 2**40 cannot overflow.
"""
from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from .errors import InvalidModelError, ResourceLimitError, ShapeError
from .onnx_core import proto
from .onnx_values import elem_name, np_dtype

DEFAULT_MAX_ELEMENTS = 1 << 28
DEFAULT_MAX_BYTES = 4 << 30


@dataclass(frozen=True)
class Limits:
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self):
        if int(self.max_elements) < 1 or int(self.max_bytes) < 1:
            raise ResourceLimitError(f"limits must be >= 1, got {self}")

    @staticmethod
    def from_env() -> "Limits":
        return Limits(_env_int("INTSIM_MAX_ELEMENTS", DEFAULT_MAX_ELEMENTS),
                      _env_int("INTSIM_MAX_BYTES", DEFAULT_MAX_BYTES))


def _env_int(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 0)
    except ValueError:
        raise ResourceLimitError(f"environment variable {var}={raw!r} is not an integer") from None
    if value < 1:
        raise ResourceLimitError(f"environment variable {var}={raw!r} must be >= 1")
    return value


_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("intsim_limits", default=None)


def current() -> Limits:
    """The limits in force: the innermost `limited(...)` block, else the environment."""
    active = _ACTIVE.get()
    return active if active is not None else Limits.from_env()


class limited:
    """`with limited(limits, **kw) as lim:` uses `limits` (or the current ones with fields replaced
    by `kw`) inside the block. (A class, not a generator context manager: Program.run enters
    one per run, and this costs a third as much.)"""

    __slots__ = ("new", "token")

    def __init__(self, limits: Optional[Limits] = None, **kw):
        base = limits if limits is not None else current()
        self.new = base if not kw and type(base) is Limits else \
            Limits(kw.get("max_elements", base.max_elements), kw.get("max_bytes", base.max_bytes))
        self.token = None

    def __enter__(self) -> Limits:
        self.token = _ACTIVE.set(self.new)
        return self.new

    def __exit__(self, *exc) -> None:
        _ACTIVE.reset(self.token)


def element_count(shape: Iterable, what: str) -> int:
    """Exact product of `shape` (Python ints); a negative or non-integer dim is a ShapeError."""
    n = 1
    for d in shape:
        try:
            d = int(d)
        except (TypeError, ValueError, OverflowError):
            raise ShapeError(f"{what}: dimension {d!r} is not an integer") from None
        if d < 0:
            raise ShapeError(f"{what}: negative dimension {d} in shape {list(shape)}")
        n *= d
    return n


def check_shape(shape: Iterable, itemsize: int, what: str, limits: Optional[Limits] = None) -> int:
    """Refuse a tensor of `shape` (itemsize bytes per element) above the limits; return its size."""
    lim = limits or current()
    shape = list(shape)
    n = element_count(shape, what)
    if n > lim.max_elements:
        raise ResourceLimitError(f"{what}: shape {shape} has {n} elements, above the limit of "
                                 f"{lim.max_elements} (INTSIM_MAX_ELEMENTS)")
    check_bytes(n * max(int(itemsize), 1), what, lim)
    return n


def check_bytes(nbytes: int, what: str, limits: Optional[Limits] = None) -> None:
    lim = limits or current()
    if nbytes > lim.max_bytes:
        raise ResourceLimitError(f"{what}: {nbytes} bytes, above the limit of {lim.max_bytes} (INTSIM_MAX_BYTES)")


# ------------------------------------------------------------------ float islands and data movement
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Where", "Equal", "Less", "LessOrEqual", "Greater",
                "GreaterOrEqual", "And", "Or", "Xor", "Max", "Min", "Sum", "Mean", "PRelu", "BitShift"}


def _ints(v) -> list:
    a = np.asarray(v)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a, nan=0.0, posinf=float(1 << 62), neginf=0.0)
    return [int(x) for x in a.reshape(-1)]


def _broadcast_count(shapes) -> int:
    rank = max((len(s) for s in shapes), default=0)
    n = 1
    for axis in range(rank):
        n *= max([abs(int(s[len(s) - rank + axis])) for s in shapes if len(s) - rank + axis >= 0] + [1])
    return n


def _resize_count(x, args, attrs) -> Optional[int]:
    scales = args[2] if len(args) > 2 and args[2] is not None and np.size(args[2]) else None
    sizes = args[3] if len(args) > 3 and args[3] is not None and np.size(args[3]) else None
    if len(args) == 2 and args[1] is not None:          # Resize-10 / Upsample-9: (X, scales)
        scales = args[1]
    if scales is None and "scales" in attrs:            # Upsample-7
        scales = attrs["scales"]
    if sizes is not None:
        return _broadcast_count([[abs(d) for d in _ints(sizes)]])
    if scales is not None:
        s = np.nan_to_num(np.asarray(scales, np.float64).reshape(-1), nan=1.0, posinf=1e30, neginf=0.0)
        return int(np.prod([max(1.0, float(d) * abs(float(f))) for d, f in zip(x.shape, s)] or [1.0]))
    return None


# ONNX ops whose output size comes from input values (estimate_elements bounds them before running)
SIZED_BY_VALUES = ("ConstantOfShape", "Expand", "Tile", "Resize", "Upsample", "Range", "OneHot", "Pad")


def estimate_elements(op_type: str, args: list, attrs: dict) -> Optional[int]:
    """An upper bound of the largest output's element count of ONNX op `op_type` on inputs
    `args` (arrays or None), computed from shapes and shape inputs only; None if unknown.
    Used to refuse an op before running it (Expand/Tile/ConstantOfShape/Resize to huge
    shapes, broadcasts, pads)."""
    x = args[0] if args and args[0] is not None else None
    shape = np.shape(x) if x is not None else ()
    if op_type == "ConstantOfShape" and x is not None:
        return _broadcast_count([[abs(d) for d in _ints(x)]])
    if op_type == "Expand" and len(args) > 1 and args[1] is not None:
        return _broadcast_count([shape, _ints(args[1])])
    if op_type == "Tile" and len(args) > 1 and args[1] is not None:
        reps = _ints(args[1])
        return int(np.prod([abs(d) * abs(r) for d, r in zip(shape, reps)] or [1], dtype=object))
    if op_type in ("Resize", "Upsample") and x is not None:
        return _resize_count(x, args, attrs)
    if op_type == "Range" and len(args) >= 3 and all(a is not None for a in args[:3]):
        start, limit, delta = (float(np.asarray(a).reshape(-1)[0]) for a in args[:3])
        if delta == 0 or not all(map(np.isfinite, (start, limit, delta))):
            return None
        return max(0, int(np.ceil((limit - start) / delta)))
    if op_type == "OneHot" and len(args) > 1 and args[1] is not None:
        return int(np.size(x)) * max(1, abs(_ints(args[1])[0]) if np.size(args[1]) else 1)
    if (op_type == "Pad" and len(args) > 1 and args[1] is not None) or "pads" in attrs:
        pads = _ints(args[1]) if op_type == "Pad" and len(args) > 1 and args[1] is not None else list(attrs["pads"])
        grow = [0] * len(shape)
        half = len(pads) // 2
        for i in range(min(half, len(shape))):
            ax = i if op_type == "Pad" else len(shape) - half + i
            if 0 <= ax < len(shape):
                grow[ax] = max(0, pads[i]) + max(0, pads[i + half])
        padded = [d + g for d, g in zip(shape, grow)]
        if op_type == "Pad" or len(padded) < 2:
            return int(np.prod(padded, dtype=object)) if padded else 1
        w = args[1] if len(args) > 1 and args[1] is not None and np.ndim(args[1]) else None
        channels = np.shape(w)[0] if w is not None else padded[1]     # conv: M; pools: C
        return int(np.prod([padded[0], channels] + padded[2:], dtype=object))
    if op_type in _ELEMENTWISE:
        return _broadcast_count([np.shape(a) for a in args if a is not None])
    return None


def check_op(op_type: str, args: list, attrs: dict, what: str) -> None:
    """Refuse an op whose output (estimated by `estimate_elements`) would exceed the limits."""
    n = estimate_elements(op_type, args, attrs)
    if n is not None:
        check_shape([n], 8, what)


# ------------------------------------------------------------------------- initializers
_SUB_BYTE = {"INT4": 2, "UINT4": 2, "FLOAT4E2M1": 2, "INT2": 4, "UINT2": 4}


def tensor_proto_bytes(t, what: str) -> Optional[int]:
    """Bytes that the raw data of TensorProto `t` must hold for its dims and element type
    (sub-byte types packed), or None for strings/unknown types. Dims are checked first."""
    name = elem_name(t.data_type) if t.data_type in proto.TensorProto.DataType.values() else None
    if name is None or name in ("UNDEFINED", "STRING"):
        return None
    n = element_count(t.dims, what)
    if name in _SUB_BYTE:
        check_shape(t.dims, 1, what)
        return -(-n // _SUB_BYTE[name])
    itemsize = np_dtype(t.data_type).itemsize
    check_shape(t.dims, itemsize, what)
    return n * itemsize


def check_tensor_proto(t, what: str) -> int:
    """Refuse an initializer whose dims exceed the limits or whose raw data has the wrong
    length, before anything is decoded. Returns its size in bytes (0 if unknown)."""
    need = tensor_proto_bytes(t, what)
    if need is None:
        return 0
    if t.data_location != proto.TensorProto.EXTERNAL and t.HasField("raw_data") and len(t.raw_data) != need:
        raise InvalidModelError(f"{what}: raw data holds {len(t.raw_data)} bytes, shape {list(t.dims)} of "
                                f"{elem_name(t.data_type)} needs {need}")
    return need
