"""The code pass of ONNX DynamicQuantizeLinear (uint8) as onnxruntime computes it, float32
throughout (the scale and zero point come first, from the tensor's range: intsim.steps.quant):

    y[i] = uint8(min(max(rint_half_even(f32(x[i] / scale)) + f32(zp), 0), 255))

dynamic_quantize_codes returns the count of elements whose value is NaN (x NaN, or inf / inf):
the caller then takes its NumPy path, whose cast of a NaN is the platform's.
"""
from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def _codes_impl(x, scale, zp, out):
    nans = 0
    for i in range(x.size):
        t = np.float32(np.rint(np.float32(x[i] / scale)) + zp)
        ok = t == t
        nans += not ok
        t = t if ok else np.float32(0.0)
        t = t if t > np.float32(0.0) else np.float32(0.0)
        t = t if t < np.float32(255.0) else np.float32(255.0)
        out[i] = np.uint8(t)
    return nans


def dynamic_quantize_codes(x: np.ndarray, scale: np.float32, zp: np.float32, out: np.ndarray) -> int:
    """out = the module doc's y for float32 x (C-contiguous, any shape), into uint8 out of x's
    shape; returns the NaN count (those elements' codes are not onnxruntime's). Raises ValueError."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError("dynamic_quantize_codes: x must be a C-contiguous float32 array")
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != x.shape or not out.flags.c_contiguous:
        raise ValueError(f"dynamic_quantize_codes: out must be a C-contiguous uint8 array of shape {x.shape}")
    return int(_codes_impl(x.reshape(-1), np.float32(scale), np.float32(zp), out.reshape(-1)))


def dynamic_quantize_codes_ref(x: np.ndarray, scale: np.float32, zp: np.float32, out: np.ndarray) -> int:
    """NumPy twin of dynamic_quantize_codes."""
    t = np.divide(x, np.float32(scale), out=np.empty(x.shape, np.float32))
    np.rint(t, out=t)
    t += np.float32(zp)
    nans = int(np.isnan(t).sum())
    np.minimum(np.maximum(t, np.float32(0), out=t), np.float32(255), out=t)
    out[...] = t.astype(np.uint8)
    return nans
