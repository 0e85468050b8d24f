"""INT4 / UINT4 packing as ONNX stores it (TensorProto.INT4 = 22, UINT4 = 21).

Two values per byte, the flat (C-order) element 2i in the low nibble of byte i and element
2i+1 in the high nibble; an odd count leaves the last high nibble 0. Signed values are 4-bit
two's complement in [-8, 7], unsigned in [0, 15]:

    packed[i] = (v[2i] & 0xF) | ((v[2i+1] & 0xF) << 4)
    unpack:  u = (packed[i // 2] >> (4 * (i % 2))) & 0xF;  signed: v = u - 16 if u >= 8 else u

Pure NumPy (no jitted kernel); `pack_int4_ref` / `unpack_int4_ref` are plain-Python twins.
"""
from __future__ import annotations

import numpy as np


def _range(signed: bool):
    return (-8, 7) if signed else (0, 15)


def pack_int4(values, signed: bool) -> np.ndarray:
    """Flatten `values` (any integer array) and pack it: uint8 array of ceil(n / 2) bytes.
    Raises ValueError for a non-integer array or a value outside the 4-bit range."""
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise ValueError(f"pack_int4: values must be integers, got dtype {v.dtype}")
    lo, hi = _range(signed)
    v = v.reshape(-1).astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"pack_int4: values outside [{lo}, {hi}] ({'INT4' if signed else 'UINT4'})")
    nib = (v & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed, count: int, signed: bool) -> np.ndarray:
    """The first `count` 4-bit values of `packed` (uint8, exactly ceil(count / 2) bytes), as a
    flat int8 (signed) or uint8 (unsigned) array. Raises ValueError on a size mismatch."""
    p = np.asarray(packed)
    count = int(count)
    if p.dtype != np.uint8:
        raise ValueError(f"unpack_int4: packed must be uint8, got {p.dtype}")
    if count < 0 or p.size != (count + 1) // 2:
        raise ValueError(f"unpack_int4: {count} values need {(count + 1) // 2} bytes, got {p.size}")
    p = p.reshape(-1)
    nib = np.empty(2 * p.size, np.uint8)
    nib[0::2] = p & 0xF
    nib[1::2] = p >> 4
    nib = nib[:count]
    if not signed:
        return nib
    return (nib.astype(np.int8) ^ np.int8(8)) - np.int8(8)


def pack_int4_ref(values, signed: bool) -> np.ndarray:
    """Plain-Python twin of pack_int4 (no validation)."""
    flat = [int(x) for x in np.asarray(values).reshape(-1)]
    if len(flat) % 2:
        flat.append(0)
    return np.array([(lo % 16) + 16 * (hi % 16) for lo, hi in zip(flat[0::2], flat[1::2])], np.uint8)


def unpack_int4_ref(packed, count: int, signed: bool) -> np.ndarray:
    """Plain-Python twin of unpack_int4 (no validation)."""
    out = []
    for i in range(int(count)):
        byte = int(np.asarray(packed).reshape(-1)[i // 2])
        u = byte % 16 if i % 2 == 0 else byte // 16
        out.append(u - 16 if signed and u >= 8 else u)
    return np.array(out, np.int8 if signed else np.uint8)
