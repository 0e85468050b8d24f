"""maxpool (integers, exact), avgpool and global_avgpool (onnxruntime arithmetic).

global_avgpool (QLinearGlobalAveragePool, MLAS):
    s = sum_hw x (int32);  m = f32(sx / f32(sy * f32(HW)))
    y = clamp(rint_RNE(f32(s - zx*HW) * m) + zy, qmin, qmax)
avgpool (QLinearAveragePool): the window's values are dequantized sx * f32(x - zx), summed in
    float32 in row-major tap order, divided by the count (the taps inside the image, or the
    kernel size with count_include_pad), and quantized as clamp(rint_RNE(f32(avg / sy) + zy)):
    onnxruntime adds the zero point in float before rounding.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from . import step
from .params import ParamReader, check_scale, scalar_zp

F32 = np.float32


def pool_geometry(spatial, kernel, strides, pads, dilations, ceil_mode, auto_pad):
    """Per spatial axis: (pad_begin, pad_end, out_size), ONNX rules incl. ceil_mode/auto_pad."""
    n = len(spatial)
    strides = list(strides) or [1] * n
    dilations = list(dilations) or [1] * n
    pads = list(pads) or [0] * (2 * n)
    out = []
    for i in range(n):
        k = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-spatial[i] // strides[i])
            total = max(0, (o - 1) * strides[i] + k - spatial[i])
            small = total // 2
            b, e = (small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small)
        elif auto_pad == "VALID":
            b, e = 0, 0
            o = (spatial[i] - k) // strides[i] + 1
        else:
            b, e = pads[i], pads[i + n]
            num = spatial[i] + b + e - k
            o = (-(-num // strides[i]) if ceil_mode else num // strides[i]) + 1
            if ceil_mode and (o - 1) * strides[i] >= spatial[i] + b:
                o -= 1
        if o < 1:
            raise ShapeError(f"pooling window {kernel} does not fit input {tuple(spatial)}")
        out.append((b, e, o))
    return out, strides, dilations


def _windows(x, geo, strides, dilations, kernel, fill):
    """Yield the strided views of x (N, C, *spatial) for each kernel tap, over a padded copy."""
    nsp = x.ndim - 2
    pad_width = [(0, 0), (0, 0)]
    for i in range(nsp):
        b, e, o = geo[i]
        need = (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        pad_width.append((b, max(e, need - x.shape[2 + i] - b)))
    xp = np.pad(x, pad_width, constant_values=fill)
    for tap in np.ndindex(*kernel):
        sl = [slice(None), slice(None)]
        for i in range(nsp):
            start = tap[i] * dilations[i]
            sl.append(slice(start, start + (geo[i][2] - 1) * strides[i] + 1, strides[i]))
        yield xp[tuple(sl)]


def maxpool_fn(node, ctx, a, get):
    kernel = list(a["kernel_shape"])
    ap = a.get("auto_pad", b"NOTSET")
    ap = ap.decode() if isinstance(ap, bytes) else ap
    if int(a.get("storage_order", 0)):
        raise ShapeError(f"node '{node.name}': MaxPool storage_order=1 is not supported")

    def run(env):
        x = get(env, 0)
        geo, st, di = pool_geometry(x.shape[2:], kernel, a.get("strides", ()), a.get("pads", ()),
                                    a.get("dilations", ()), int(a.get("ceil_mode", 0)), ap)
        fill = np.iinfo(x.dtype).min
        out = None
        for w in _windows(x, geo, st, di, kernel, fill):
            out = w.copy() if out is None else np.maximum(out, w)
        return [out]
    return run


def _scales(node, vals, n):
    x, sx, zx, sy, zy = vals[:5]
    return (x, float(check_scale(sx, node.inputs[1], n).reshape(-1)[0]), scalar_zp(zx, node.inputs[2], n),
            float(check_scale(sy, node.inputs[3], n).reshape(-1)[0]), scalar_zp(zy, node.inputs[4], n))


@step("global_avgpool")
def prepare_global_avgpool(node, ctx):
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    t = node.attrs["out_type"]

    def run(env, tap):
        x, sx, zx, sy, zy = _scales(node, reader.values(env), node.name)
        if node.attrs.get("channels_last"):
            x = np.moveaxis(x, -1, 1)
        hw = int(np.prod(x.shape[2:]))
        s = x.reshape(x.shape[0], x.shape[1], hw).astype(np.int64).sum(axis=2) - zx * hw
        m = F32(F32(sx) / F32(F32(sy) * F32(hw)))
        v = np.clip(s.astype(F32) * m, F32(t.qmin - zy), F32(t.qmax - zy))
        y = (np.rint(v).astype(np.int64) + zy).astype(t.storage)
        y = y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))
        env[node.outputs[0]] = np.moveaxis(y, 1, -1) if node.attrs.get("channels_last") else y
    return run


@step("avgpool")
def prepare_avgpool(node, ctx):
    reader = ParamReader(node, ctx, (1, 2, 3, 4))
    t = node.attrs["out_type"]
    a = node.attrs

    def run(env, tap):
        x, sx, zx, sy, zy = _scales(node, reader.values(env), node.name)
        if a.get("channels_last"):
            x = np.moveaxis(x, -1, 1)
        kernel = list(a["kernel_shape"])
        if len(kernel) != x.ndim - 2:
            raise ShapeError(f"node '{node.name}': kernel {kernel} does not fit input {x.shape}")
        geo, st, di = pool_geometry(x.shape[2:], kernel, a["strides"], a["pads"], (), a["ceil_mode"],
                                    a["auto_pad"])
        xf = (x.astype(np.int64) - zx).astype(F32) * F32(sx)
        ones = np.ones((1, 1) + x.shape[2:], F32)
        total = np.zeros((x.shape[0], x.shape[1]) + tuple(g[2] for g in geo), F32)
        inside = _count_windows(ones, geo, st, di, kernel, a["count_include_pad"], x.shape[2:])
        for w in _windows(xf, geo, st, di, kernel, F32(0)):
            total = (total + w).astype(F32)
        count = inside
        avg = (total / count).astype(F32)
        y = np.clip(np.rint((avg / F32(sy)).astype(F32) + F32(zy)), t.qmin, t.qmax).astype(t.storage)
        env[node.outputs[0]] = np.moveaxis(y, 1, -1) if a.get("channels_last") else y
    return run


def _count_windows(ones, geo, st, di, kernel, include_pad, spatial):
    """Divisor per output position: taps inside the image (or inside image+pads)."""
    if include_pad:
        return F32(np.prod(kernel))
    c = None
    for w in _windows(ones, geo, st, di, kernel, F32(0)):
        c = w.copy() if c is None else c + w
    return c


