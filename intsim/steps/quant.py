"""quantize (float -> int), dequantize (int -> float), dynamic_quantize: ONNX semantics,
float32 arithmetic, round half to even, saturation."""
from __future__ import annotations

import numpy as np

from ..errors import QuantParamError, ShapeError
from ..numerics import dequantize_linear, quantize_linear
from . import step
from .params import ParamReader, check_scale


def _check_params(node, x_shape, s, z, axis, block):
    if np.asarray(s).size == 1:
        return
    if axis is None or not 0 <= axis < len(x_shape):
        raise ShapeError(f"node '{node.name}': axis {axis} does not fit input shape {x_shape}")
    want = -(-x_shape[axis] // block) if block else x_shape[axis]
    got = np.asarray(s).shape[axis] if block else np.asarray(s).size
    if got != want:
        raise QuantParamError(f"node '{node.name}': scale '{node.inputs[1]}' has {got} values along axis {axis}, "
                              f"expected {want}")
    if z is not None and np.asarray(z).shape != np.asarray(s).shape and np.asarray(z).size != 1:
        raise QuantParamError(f"node '{node.name}': zero point '{node.inputs[2]}' shape {np.asarray(z).shape} "
                              f"differs from scale shape {np.asarray(s).shape}")


@step("quantize")
def prepare_quantize(node, ctx):
    reader = ParamReader(node, ctx, (1, 2))
    t = node.attrs["out_type"]
    axis, block = node.attrs["axis"], node.attrs["block_size"]

    def run(env, tap):
        x, s, z = reader.values(env)[:3]
        s = check_scale(s, node.inputs[1], node.name)
        z = np.zeros(s.shape, np.int64) if z is None else np.asarray(z).astype(np.int64)
        _check_params(node, x.shape, s, z, axis, block)
        env[node.outputs[0]] = quantize_linear(np.asarray(x), s, z, axis, block, t.qmin, t.qmax, t.storage)

    return run


@step("dequantize")
def prepare_dequantize(node, ctx):
    reader = ParamReader(node, ctx, (1, 2))
    axis, block = node.attrs["axis"], node.attrs["block_size"]
    out_dtype = node.attrs["out_dtype"].storage

    def run(env, tap):
        q, s, z = reader.values(env)[:3]
        s = np.asarray(s)
        check_scale(s, node.inputs[1], node.name)
        z = np.zeros(s.shape, np.int64) if z is None else np.asarray(z).astype(np.int64)
        _check_params(node, q.shape, s, z, axis, block)
        env[node.outputs[0]] = dequantize_linear(np.asarray(q), s, z, axis, block, out_dtype)

    return run


def dynamic_quantize(x: np.ndarray):
    """ONNX DynamicQuantizeLinear (uint8): scale = (max(0, max x) - min(0, min x)) / 255,
    zp = saturate(rint(0 - min/scale)), y = saturate(rint(x / scale) + zp); float32 throughout."""
    x = x.astype(np.float32)
    lo = np.float32(min(0.0, float(x.min()) if x.size else 0.0))
    hi = np.float32(max(0.0, float(x.max()) if x.size else 0.0))
    scale = np.float32((hi - lo) / np.float32(255.0))
    if scale == 0:
        return np.zeros(x.shape, np.uint8), np.float32(0), np.uint8(0)
    zp = np.uint8(np.clip(np.rint(np.float32(0) - lo / scale), 0, 255))
    y = np.clip(np.rint(x / scale) + np.float32(zp), 0, 255).astype(np.uint8)
    return y, scale, zp


@step("dynamic_quantize")
def prepare_dynamic_quantize(node, ctx):
    def run(env, tap):
        y, s, z = dynamic_quantize(env[node.inputs[0]])
        env[node.outputs[0]], env[node.outputs[1]], env[node.outputs[2]] = y, np.array(s, np.float32), np.array(z, np.uint8)
    return run
