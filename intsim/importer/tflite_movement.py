"""TFLite data-movement builtins -> `onnx` movement nodes (codes move, never change: input and
output quantization must be equal, as TFLite's kernels require).

    TRANSPOSE       Transpose with the constant permutation (transpose.cc)
    STRIDED_SLICE   Slice (constant begin / end / strides; begin_mask and end_mask as open
                    ends; shrink_axis_mask as a Reshape to the stored output shape;
                    a shrunk axis keeps the element at its start, begin_mask honoured as
                    strided_slice_logic.h StartForAxis does), no ellipsis / new-axis / offset
    SLICE           Slice (constant begin and size, size -1: to the end; slice.cc)

Each lowering takes the reader (importer.tflite_model), the op's key (name, index, output),
the flatbuffer operator and its input / output tensor names.
"""
from __future__ import annotations

import numpy as np

_OPEN_HI, _OPEN_LO = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def _same_quant(r, key, x, y) -> None:
    qx, qy = r.tensors[x].qparams, r.tensors[y].qparams
    if (qx is None) != (qy is None) or (qx is not None and not qx.same_as(qy)):
        raise r.refuse(key, "input and output quantization differ")


def _const(r, key, name, what) -> np.ndarray:
    if name not in r.constants:
        raise r.refuse(key, f"{what} '{name}' is not constant")
    return np.asarray(r.constants[name], np.int64).reshape(-1)


def lower_transpose(r, key, op, ins, outs) -> None:
    x, y = ins[0], outs[0]
    _same_quant(r, key, x, y)
    perm = _const(r, key, ins[1], "permutation")
    rank = len(r.tensors[x].shape)
    if sorted(int(p) % max(rank, 1) for p in perm) != list(range(rank)):
        raise r.refuse(key, f"permutation {perm.tolist()} is not one of rank {rank}")
    r.onnx_node("Transpose", [x], y, f"{key[0]} (operator {key[1]})", perm=[int(p) % rank for p in perm])


def _slice(r, key, x, y, starts, ends, steps, reshape: bool) -> None:
    origin = f"{key[0]} (operator {key[1]})"
    rank = len(r.tensors[x].shape)
    args = [r.const(f"{y}::{k}", np.asarray(v, np.int64)) for k, v in
            (("starts", starts), ("ends", ends), ("axes", np.arange(rank)), ("steps", steps))]
    if not reshape:
        r.onnx_node("Slice", [x, *args], y, origin)
        return
    kept = [len(range(*slice(int(s), int(e), int(t)).indices(d))) for s, e, t, d in
            zip(starts, ends, steps, r.tensors[x].shape)]
    mid = r.derived(f"{y}::slice", y, kept)
    r.onnx_node("Slice", [x, *args], mid, origin)
    r.reshape(mid, y, list(r.tensors[y].shape), origin)


def lower_strided_slice(r, key, op, ins, outs) -> None:
    x, y = ins[0], outs[0]
    _same_quant(r, key, x, y)
    o = r.options(op, r.tfl.StridedSliceOptions)
    if o is not None and (o.EllipsisMask() or o.NewAxisMask() or o.Offset()):
        raise r.refuse(key, "ellipsis_mask, new_axis_mask and offset are not supported")
    begin, end, strides = (_const(r, key, n, w) for n, w in zip(ins[1:4], ("begin", "end", "strides")))
    rank = len(r.tensors[x].shape)
    if not len(begin) == len(end) == len(strides) == rank or not strides.all():
        raise r.refuse(key, f"begin / end / strides {begin.tolist()} / {end.tolist()} / {strides.tolist()} "
                            f"do not fit rank {rank}")
    bm, em, sm = (o.BeginMask(), o.EndMask(), o.ShrinkAxisMask()) if o is not None else (0, 0, 0)
    if any(sm >> a & 1 and strides[a] < 0 for a in range(rank)):
        raise r.refuse(key, "shrink_axis_mask on an axis of negative stride (TFLite's loop writes no element)")
    starts, ends = begin.copy(), end.copy()
    for a in range(rank):
        if bm >> a & 1:
            starts[a] = _OPEN_HI if strides[a] < 0 else 0
        if em >> a & 1:
            ends[a] = _OPEN_LO if strides[a] < 0 else _OPEN_HI
        if sm >> a & 1:     # one element at the start (begin_mask honoured, as StartForAxis does)
            first = 0 if bm >> a & 1 else int(begin[a])
            starts[a], ends[a], strides[a] = first, first + 1 if first != -1 else _OPEN_HI, 1
    _slice(r, key, x, y, starts, ends, strides, reshape=bool(sm))


def lower_slice(r, key, op, ins, outs) -> None:
    x, y = ins[0], outs[0]
    _same_quant(r, key, x, y)
    begin, size = _const(r, key, ins[1], "begin"), _const(r, key, ins[2], "size")
    ends = np.where(size == -1, _OPEN_HI, begin + size)
    _slice(r, key, x, y, begin, ends, np.ones_like(begin), reshape=False)


LOWERINGS = {"TRANSPOSE": lower_transpose, "STRIDED_SLICE": lower_strided_slice, "SLICE": lower_slice}
