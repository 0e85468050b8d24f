"""Channels-last activations between layers, behind ordinary NCHW arrays.

A conv whose output feeds only layers that can read channels-last data writes it as a
C-contiguous (N, H, W, C) array `xh` and stores the NCHW *view* xh.transpose(0, 3, 1, 2) in the
run's environment. Every step still sees an (N, C, H, W) array with the right values (NumPy
follows the strides; a step that needs NCHW memory makes it contiguous), while a step that
can work channels-last takes `nhwc_of(x)` and skips both layout moves (onnxruntime keeps
whole models channels-last the same way). Elementwise and table steps (lut, mul, the island
tables) keep their input's layout (`map_kept`), and the squeeze-excite mul and global average
pool read channels-last images as they are, so a whole MBConv block (conv, activation,
squeeze-excite, conv) stays channels-last between its first and last conv.
"""
from __future__ import annotations

import numpy as np

from .ops import reads_nhwc


def reads_channels_last(node) -> bool:
    """The node reads a channels-last input without a layout move (`OpRow.nhwc_reader`)."""
    return reads_nhwc(node)


def nhwc_of(x) -> np.ndarray | None:
    """The C-contiguous (N, H, W, C) array holding the 4-D x (x == nhwc_of(x).transpose(0, 3, 1, 2)),
    or None when x's memory is not laid out channels-last."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        return None
    xh = x.transpose(0, 2, 3, 1)
    return xh if xh.flags.c_contiguous else None


def nchw_view(xh: np.ndarray) -> np.ndarray:
    """The (N, C, H, W) view of a channels-last (N, H, W, C) array."""
    return xh.transpose(0, 3, 1, 2)


def held_nhwc(x) -> np.ndarray | None:
    """nhwc_of for 2-D images, and for 1-D signals (N, C, W) held channels-last (a C-contiguous
    (N, W, C) array) that array read as the (N, 1, W, C) image of one row (a 1-D conv or pool
    runs as a 2-D one with H = 1); None when x's memory is not laid out channels-last."""
    if isinstance(x, np.ndarray) and x.ndim == 3:
        xh = x.transpose(0, 2, 1)
        return xh.reshape(xh.shape[0], 1, xh.shape[1], xh.shape[2]) if xh.flags.c_contiguous else None
    return nhwc_of(x)


def planes_view(xh: np.ndarray, ndim: int) -> np.ndarray:
    """The channels-first view (N, C, H, W), or for ndim 3 (N, C, W), of the (N, H, W, C) array xh
    (H = 1 for ndim 3): the inverse of held_nhwc."""
    if ndim == 3:
        return xh.reshape(xh.shape[0], xh.shape[2], xh.shape[3]).transpose(0, 2, 1)
    return nchw_view(xh)


def map_kept(x: np.ndarray, dtype, fn) -> np.ndarray:
    """y with y[i] = f(x[i]) in x's layout: fn(src, out) on the C-contiguous channels-last array
    of x when x is held channels-last (y is then the NCHW view of out), else on x made
    C-contiguous (y = out)."""
    xh = None if x.flags.c_contiguous else nhwc_of(x)
    if xh is None:
        x = np.ascontiguousarray(x)
        out = np.empty(x.shape, dtype)
        fn(x, out)
        return out
    outh = np.empty(xh.shape, dtype)
    fn(xh, outh)
    return nchw_view(outh)


def channels_last_tensors(graph, readers_named=frozenset()) -> frozenset:
    """Tensors that may be stored channels-last: every consumer reads them channels-last
    (reads_channels_last, or its name is in `readers_named`: the dequantize of a float island
    that runs as a table, intsim.runtime.island_tables) and they are not graph outputs. A channel
    concat (axis 1) reads its inputs channels-last when its own output is stored so (SqueezeNet's
    fire modules: the expand convs, their concat and the next squeeze conv or MaxPool stay
    channels-last, one copy of channel slices instead of a transpose on each side); found by
    repeating until no concat joins (concats feeding concats)."""
    outs = set(graph.outputs)
    concat_nhwc: set = set()
    while True:
        readers: dict = {}
        for node in graph.nodes:
            ok = reads_channels_last(node) or node.name in readers_named or id(node) in concat_nhwc
            for t in node.inputs:
                if t:
                    readers.setdefault(t, []).append(ok)
        last = frozenset(t for t, ok in readers.items() if t not in outs and all(ok))
        more = {id(n) for n in graph.nodes if is_channel_concat(n, graph) and n.outputs[0] in last}
        if more <= concat_nhwc:
            return last
        concat_nhwc |= more


def is_channel_concat(node, graph) -> bool:
    """A concat of 4-D tensors along their channels (axis 1, or -3)."""
    if node.op != "concat" or not node.outputs:
        return False
    ranks = {len(t.shape) for t in (graph.tensors.get(n) for n in [node.outputs[0]] + list(node.inputs[2::3]))
             if t is not None and t.shape is not None}       # the output's, else its inputs' (QLinearConcat)
    # unknown ranks (QOperator graphs past the first QLinearConcat) allowed for axis 1: storing
    # channels-last is a permission, and every step checks the arrays it gets (nhwc_of)
    return (ranks <= {4} and node.attrs.get("axis") == 1) or (ranks == {4} and node.attrs.get("axis") == -3)
