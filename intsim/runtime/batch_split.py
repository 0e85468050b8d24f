"""Batch-parallel runs: the whole graph on slices of the batch, one slice per thread.

At small batches a layer's kernel is too short to be worth handing half of it to another thread.
When every node computes each sample (index along axis 0 of the graph inputs) on its own,
running the graph on contiguous slices of the batch and concatenating each output along axis 0
gives the same arrays, bit for bit; each slice runs in its own thread with single-threaded
kernels (`kernels.threads.serial_here`), and the nogil kernels let the slices run side by side.

`splittable(graph)` decides it per IR op, conservatively: an op or attribute not known to keep
samples apart makes the graph not splittable, and the reason names the first such node.
A tensor is either `const` (computed from constants only) or `batch` (axis 0 is the batch, and
row i depends only on sample i); the rules below say which inputs of an op may be `batch` and
what its attributes must be for its outputs to be `batch` again.
"""
from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional

from kernels.threads import serial_here

from ..limits import Limits, limited
from ..onnx_values import attributes
from ..ops import OPS

CONST, BATCH = "const", "batch"

# ONNX ops that work element by element with numpy broadcasting (after the `onnx` step's lowering)
_ELEMENTWISE = {
    "Identity", "Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Floor", "Ceil", "Round",
    "Sign", "Erf", "Cast", "CastLike", "Not", "Reciprocal", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Celu",
    "HardSwish", "Softplus", "Softsign", "Gelu", "Mish", "ThresholdedRelu", "IsNaN", "IsInf", "Clip",
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "PRelu", "BitShift"}
# ONNX ops that compute each image from that image alone (data input 0, constant parameters)
_PER_IMAGE = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool",
              "Conv", "ConvTranspose", "InstanceNormalization", "LRN", "DepthToSpace", "SpaceToDepth"}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}
_RANDOM = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


class _Info:
    """What the analysis knows about each tensor: its state (const/batch) and rank (declared,
    else inferred from the op: QOperator graphs often carry no shapes). `min_part` is the least
    number of samples a slice may hold (2 when an add/mul could otherwise see one value only)."""

    def __init__(self, graph):
        self.graph, self.state, self.ranks, self.min_part = graph, {n: CONST for n in graph.constants}, {}, 1

    def rank(self, name: str) -> Optional[int]:
        shape = self.shape(name)
        return len(shape) if shape is not None else self.ranks.get(name)

    def shape(self, name: str) -> Optional[tuple]:
        if name in self.graph.constants:
            return self.graph.constants[name].shape
        t = self.graph.tensors.get(name)
        return None if t is None or t.shape is None else tuple(t.shape)

    def const(self, name: str):
        return self.graph.constants.get(name)


class Analysis(NamedTuple):
    ok: bool
    why: str            # "" when ok, else the first node (or input/output) that prevents a split
    min_part: int       # the least number of samples per slice


def splittable(graph) -> tuple[bool, str]:
    """(True, "") when running `graph` on slices of the batch (axis 0 of every input) and
    concatenating each output along axis 0 gives the whole-batch outputs; else (False, why),
    `why` naming the first node (or input/output) that prevents it."""
    a = analyze(graph)
    return a.ok, a.why


def analyze(graph) -> Analysis:
    """splittable's answer, with the least slice size (see _Info.min_part)."""
    info = _Info(graph)
    for name in graph.inputs:
        rank = info.rank(name)
        if not rank:
            return Analysis(False, f"graph input '{name}' has {'no' if rank == 0 else 'an unknown'} rank: "
                                   "no batch axis", 1)
        info.state[name] = BATCH
    for node in graph.nodes:
        why = _node_reason(node, info)
        if why:
            op = node.attrs.get("op_type", node.op) if node.op == "onnx" else node.op
            return Analysis(False, f"{op} node '{node.name}': {why}", 1)
        rank = _out_rank(node, info)
        info.ranks.update({o: rank for o in node.outputs[:1] if o and rank is not None})
    for name in graph.outputs:
        if info.state.get(name) != BATCH:
            return Analysis(False, f"graph output '{name}' does not depend on the batch (it is a constant)", 1)
    return Analysis(True, "", info.min_part)


# ONNX ops whose output has the rank of their first input (IR ops: `OpRow.same_rank`)
_SAME_RANK_ONNX = {"Transpose", "Pad", "Slice", "Resize", "Upsample", "BatchNormalization", "LayerNormalization",
              "Softmax", "LogSoftmax", "Hardmax", "Split", "Dropout", "Gemm", "MatMul"}


def _out_rank(node, info) -> Optional[int]:
    """The rank of node's first output, inferred from its inputs' (None when unknown)."""
    op = node.attrs.get("op_type", node.op) if node.op == "onnx" else node.op
    first = info.rank(node.inputs[0]) if node.inputs and node.inputs[0] else None
    row = OPS.get(op)
    binary = row is not None and row.batch == "broadcast"
    if binary or op in _ELEMENTWISE:
        ranks = [info.rank(i) for i in (node.inputs[0], node.inputs[3]) if i] if binary else \
            [info.rank(i) for i in node.inputs if i]
        return None if None in ranks or not ranks else max(ranks)
    if row is not None and row.batch == "concat":
        return info.rank(node.inputs[2]) if len(node.inputs) > 2 else None
    if op == "Flatten":
        return 2
    if op == "Reshape":
        target = _const_ints(info, node.inputs[1] if len(node.inputs) > 1 else "")
        return None if target is None else len(target)
    if (row is not None and row.same_rank) or op in _SAME_RANK_ONNX or op in _PER_IMAGE:
        return first
    return None


def _node_reason(node, info: _Info) -> str:
    """Why `node` breaks sample independence ("" when it keeps it); records its outputs' state."""
    ins = [i for i in node.inputs if i]
    missing = [i for i in ins if i not in info.state]
    if missing:
        return f"input '{missing[0]}' is not produced before the node"
    random = node.op == "onnx" and node.attrs.get("op_type") in _RANDOM
    if random:
        return "random values differ from one slice to another"
    if all(info.state[i] == CONST for i in ins):
        info.state.update({o: CONST for o in node.outputs if o})
        return ""
    rule = _CHECKS.get(OPS[node.op].batch) if node.op in OPS else None
    why = rule(node, info) if rule else f"IR op '{node.op}' is not known to keep samples independent"
    if not why:
        info.state.update({o: BATCH for o in node.outputs if o})
    return why


# ------------------------------------------------------------------------------- shared checks
def _consts(node, info, indices) -> str:
    """The inputs at `indices` (parameters) must be constants."""
    for i in indices:
        name = node.inputs[i] if i < len(node.inputs) else ""
        if name and info.state[name] != CONST:
            return f"parameter '{name}' depends on the batch"
    return ""


def _data_first(node, info, data=(0,)) -> str:
    """Inputs `data` must be batch tensors, every other input a constant."""
    for i in data:
        if i >= len(node.inputs) or info.state.get(node.inputs[i]) != BATCH:
            return f"input '{node.inputs[i] if i < len(node.inputs) else '?'}' is not the batch"
    return _consts(node, info, [i for i in range(len(node.inputs)) if i not in data])


def _broadcast(node, info, names) -> str:
    """numpy broadcasting of `names` keeps axis 0 the batch: every batch operand has the output's
    rank, and a constant operand of that rank has a leading 1."""
    ranks = [info.rank(n) for n in names]
    if any(r is None for r in ranks):
        return "an operand has an unknown rank"
    out_rank = max(ranks)
    for n, r in zip(names, ranks):
        if info.state[n] == BATCH and r != out_rank:
            return f"operand '{n}' of rank {r} broadcasts against rank {out_rank}: its axis 0 is not the batch"
        if info.state[n] == CONST and r == out_rank and (info.shape(n) or (None,))[0] != 1:
            return f"constant operand '{n}' {info.shape(n)} has a leading dimension other than 1"
    return ""


def _axis(value, rank) -> Optional[int]:
    return None if rank is None else int(value) + rank if int(value) < 0 else int(value)


def _onnx_attrs(node) -> dict:
    return attributes(node.attrs["node"])


def _const_ints(info, name) -> Optional[list]:
    v = info.const(name) if name else None
    return None if v is None else [int(i) for i in v.reshape(-1)]


# ------------------------------------------------------------------------------- IR ops
def _data_first_only(node, info) -> str:
    """conv, lut and the pools: data input 0, every parameter a constant."""
    return _data_first(node, info)


def _qsoftmax(node, info) -> str:
    """softmax: as data_first, and the reduced axes must not include axis 0."""
    rank = info.rank(node.inputs[0])
    if rank is None or int(node.attrs["axis"]) % max(rank, 1) == 0:
        return "the softmax reduces over the batch axis (or its rank is unknown)"
    return _data_first(node, info)


def _matmul(node, info) -> str:
    why = _data_first(node, info)
    if why:
        return "A is a constant and B the activation" if info.state.get(node.inputs[3]) == BATCH else why
    if node.attrs.get("transA"):
        return "transA moves the batch axis"
    a_rank, b_shape = info.rank(node.inputs[0]), info.shape(node.inputs[3])
    if a_rank is None or a_rank < 2 or b_shape is None:
        return f"A '{node.inputs[0]}' has rank {a_rank}: axis 0 is not a row axis"
    if len(b_shape) > a_rank or (len(b_shape) == a_rank > 2 and b_shape[0] != 1):
        return f"B '{node.inputs[3]}' {b_shape} broadcasts over the batch axis"
    return ""


def _binary(node, info) -> str:
    """add/mul (a, sa, za, b, sb, zb, sy, zy). A batch operand with one value per sample (or an
    unknown count) would take the kernels' scalar path (another float order) on a one-sample
    slice: such graphs split into slices of at least 2 samples (the path is the same for any
    batch >= 2)."""
    why = _consts(node, info, (1, 2, 4, 5, 6, 7)) or _broadcast(node, info, [node.inputs[0], node.inputs[3]])
    if why:
        return why
    for name in (node.inputs[0], node.inputs[3]):
        shape = info.shape(name)
        if info.state[name] == BATCH and (shape is None or any(d is None for d in shape[1:])
                                          or _prod(shape[1:]) <= 1):
            info.min_part = 2
    return ""


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _concat(node, info) -> str:
    data = list(range(2, len(node.inputs), 3))
    why = _data_first(node, info, data)
    if why:
        return why + " (a constant part cannot be split)" if "not the batch" in why else why
    ranks = {info.rank(node.inputs[i]) for i in data}
    rank = ranks.pop() if len(ranks) == 1 else None
    axis = _axis(node.attrs["axis"], rank)
    if axis is None or axis == 0:
        return "concatenates along the batch axis 0" if axis == 0 else "inputs of unknown or different ranks"
    return ""


def _quant(node, info) -> str:
    """quantize/dequantize: per-tensor, or per-channel along an axis other than 0; QONNX's
    broadcast parameters need a leading 1 (or a lower rank)."""
    why = _data_first(node, info)
    if why:
        return why
    rank = info.rank(node.inputs[0])
    if node.attrs.get("order") == "qonnx":
        return _broadcast(node, info, [i for i in node.inputs if i])
    scale = info.const(node.inputs[1])
    if scale is None or scale.size == 1:
        return ""
    if node.attrs.get("block_size"):
        return "blocked quantization parameters cover the batch axis"
    if _axis(node.attrs.get("axis", 1), rank) in (0, None):
        return f"per-channel parameters along axis {node.attrs.get('axis')}, the batch axis"
    return ""


def _dynamic_quantize(node, info) -> str:
    return "its scale and zero point come from the min/max of the whole tensor (all samples)"


def _trunc(node, info) -> str:
    return _data_first(node, info) or _broadcast(node, info, [i for i in node.inputs if i])


def _onnx(node, info) -> str:
    op = node.attrs["op_type"]
    if op in _ELEMENTWISE:
        return _broadcast(node, info, [i for i in node.inputs if i])
    rule = _ONNX_RULES.get(op)
    if rule is not None:
        return rule(node, info, _onnx_attrs(node))
    if op in _PER_IMAGE:
        extra = [o for o in node.outputs[1:] if o]
        return _data_first(node, info) or (f"second output '{extra[0]}' indexes the whole batch" if extra else "")
    return f"ONNX op {op} is not known to keep samples independent"


# ------------------------------------------------------------------------------- ONNX ops
def _reshape(node, info, a) -> str:
    why = _data_first(node, info)
    if why:
        return why
    target, shape = _const_ints(info, node.inputs[1]), info.shape(node.inputs[0])
    if not target:
        return "unknown target shape"
    if target[0] == 0 and not a.get("allowzero", 0):
        return ""
    rest = target[1:]
    if target[0] == -1 and shape is not None and all(d is not None for d in shape[1:]) and \
            all(d > 0 for d in rest) and _prod(rest) == _prod(shape[1:]):
        return ""
    return f"target shape {target} does not keep axis 0 (the batch)"


def _flatten(node, info, a) -> str:
    axis = _axis(a.get("axis", 1), info.rank(node.inputs[0]))
    return _data_first(node, info) or ("flattens the batch axis into the others" if axis in (0, None) else "")


def _transpose(node, info, a) -> str:
    rank = info.rank(node.inputs[0])
    perm = list(a.get("perm", range((rank or 0) - 1, -1, -1)))
    return _data_first(node, info) or ("" if perm and perm[0] == 0 else f"perm {perm} moves the batch axis")


def _axes_of(node, info, a, opset_split) -> Optional[list]:
    if node.attrs["opset"] >= opset_split:
        return _const_ints(info, node.inputs[1] if len(node.inputs) > 1 else "")
    return list(a["axes"]) if "axes" in a else None


def _squeeze(node, info, a) -> str:
    axes, rank = _axes_of(node, info, a, 13), info.rank(node.inputs[0])
    why = _data_first(node, info)
    if why or axes is None or rank is None:
        return why or "squeezes every dimension of size 1, the batch too when a slice has one sample"
    return "squeezes the batch axis" if 0 in [_axis(x, rank) for x in axes] else ""


def _unsqueeze(node, info, a) -> str:
    axes, rank = _axes_of(node, info, a, 13), info.rank(node.inputs[0])
    why = _data_first(node, info)
    if why or axes is None or rank is None:
        return why or "unknown axes"
    return "inserts an axis before the batch" if 0 in [_axis(x, rank + len(axes)) for x in axes] else ""


def _reduce(node, info, a) -> str:
    opset_split = 13 if node.attrs["op_type"] == "ReduceSum" else 18
    axes, rank = _axes_of(node, info, a, opset_split), info.rank(node.inputs[0])
    why = _data_first(node, info)
    if why or not axes or rank is None:
        return why or "reduces over every axis, the batch axis included"
    return "reduces over the batch axis 0" if 0 in [_axis(x, rank) for x in axes] else ""


def _one_axis(default_old, default_new=None, split=13):
    """Ops with one `axis` attribute that must not be 0 (Softmax family, ArgMax, Split...)."""
    def rule(node, info, a) -> str:
        default = default_new if default_new is not None and node.attrs["opset"] >= split else default_old
        axis = _axis(a.get("axis", default), info.rank(node.inputs[0]))
        why = _data_first(node, info)
        return why or (f"works along axis {a.get('axis', default)}, the batch axis" if axis in (0, None) else "")
    return rule


def _checked_rank(node, info) -> tuple:
    """(why, rank): input 0 the batch, the others constants, and its rank known."""
    why, rank = _data_first(node, info), info.rank(node.inputs[0])
    return why or ("unknown rank" if rank is None else ""), rank


def _listed(node, info, a, new_opset, attr, index) -> Optional[list]:
    """Integers given as attribute `attr` before `new_opset`, as constant input `index` since."""
    if node.attrs["opset"] < new_opset:
        return list(a[attr]) if attr in a else None
    return _const_ints(info, node.inputs[index] if len(node.inputs) > index else "")


def _pad(node, info, a) -> str:
    why, rank = _checked_rank(node, info)
    pads = None if why else _listed(node, info, a, 11, "pads", 1)
    if why or pads is None:
        return why or "unknown pads"
    axes = (_listed(node, info, a, 11, "pads", 3) if node.attrs["opset"] >= 11 else None) or list(range(rank))
    n = len(axes)
    touched = [_axis(ax, rank) for i, ax in enumerate(axes) if pads[i] or pads[i + n]]
    return "pads the batch axis" if 0 in touched else ""


def _gather(node, info, a) -> str:
    data, idx = node.inputs[0], node.inputs[1]
    axis = _axis(a.get("axis", 0), info.rank(data))
    if info.state[data] == BATCH and info.state[idx] == CONST:
        return "gathers along the batch axis 0" if axis in (0, None) else ""
    if info.state[data] == CONST and info.state[idx] == BATCH:
        return "" if axis == 0 and info.rank(idx) else "the batch indices do not lead the output"
    return "both data and indices depend on the batch"


def _slice(node, info, a) -> str:
    why, rank = _checked_rank(node, info)
    starts = None if why else _listed(node, info, a, 10, "starts", 1)
    if why or starts is None:
        return why or "unknown starts"
    axes = _listed(node, info, a, 10, "axes", 3)
    axes = list(range(len(starts))) if axes is None else axes
    return "slices the batch axis 0" if 0 in [_axis(x, rank) for x in axes] else ""


def _resize(node, info, a) -> str:
    why = _data_first(node, info)
    if why:
        return why
    sizes = _const_ints(info, node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
    scales_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else \
        (node.inputs[1] if node.attrs["opset"] < 11 and len(node.inputs) > 1 else "")
    scales = info.const(scales_name) if scales_name else None
    if sizes is not None or scales is None or "axes" in a:
        return "output sizes (or axes) given: only scales with 1 on axis 0 keep the batch"
    mode = a.get("coordinate_transformation_mode", b"")
    if (mode.decode() if isinstance(mode, bytes) else mode) == "tf_crop_and_resize":
        return "tf_crop_and_resize uses a region of interest over every axis"
    return "" if scales.size and float(scales.reshape(-1)[0]) == 1.0 else "scales the batch axis"


def _batchnorm(node, info, a) -> str:
    if a.get("training_mode", 0) or len([o for o in node.outputs if o]) > 1:
        return "training mode computes statistics over the batch"
    return _data_first(node, info)


def _layernorm(node, info, a) -> str:
    axis = _axis(a.get("axis", -1), info.rank(node.inputs[0]))
    return _data_first(node, info) or ("normalizes over the batch axis" if axis in (0, None) else "")


def _gemm(node, info, a) -> str:
    why = _data_first(node, info)
    if why or a.get("transA", 0):
        return why or "transA moves the batch axis"
    return _broadcast(node, info, [node.inputs[2]]) if len(node.inputs) > 2 and node.inputs[2] else ""


def _float_matmul(node, info, a) -> str:
    why = _data_first(node, info)
    a_rank, b_shape = info.rank(node.inputs[0]), info.shape(node.inputs[1])
    if why or a_rank is None or a_rank < 2 or b_shape is None:
        return why or "A has rank < 2 (or unknown): axis 0 is not a row axis"
    if len(b_shape) > a_rank or (len(b_shape) == a_rank > 2 and b_shape[0] != 1):
        return f"B {b_shape} broadcasts over the batch axis"
    return ""


def _concat_onnx(node, info, a) -> str:
    if any(info.state[i] != BATCH for i in node.inputs if i):
        return "a constant part cannot be split"
    ranks = {info.rank(i) for i in node.inputs if i}
    axis = _axis(a.get("axis", 0), ranks.pop() if len(ranks) == 1 else None)
    return "concatenates along the batch axis 0" if axis in (0, None) else ""


def _shape_of(node, info, a) -> str:
    return "its value depends on the batch size"


def _dropout(node, info, a) -> str:
    return _data_first(node, info) if node.attrs["opset"] < 12 or len(node.inputs) < 3 or \
        not node.inputs[2] else "training mode input"


_ONNX_RULES = {
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Pad": _pad, "Gather": _gather, "Slice": _slice, "Resize": _resize,
    "Upsample": _resize, "BatchNormalization": _batchnorm, "LayerNormalization": _layernorm, "Gemm": _gemm,
    "MatMul": _float_matmul, "Concat": _concat_onnx, "Shape": _shape_of, "Size": _shape_of,
    "Dropout": _dropout, "Softmax": _one_axis(1, -1), "LogSoftmax": _one_axis(1, -1),
    "Hardmax": _one_axis(1, -1), "ArgMax": _one_axis(0), "ArgMin": _one_axis(0),
    "Split": _one_axis(0), **{op: _reduce for op in _REDUCE},
}

# the check of each batch-split rule kind (`OpRow.batch`)
_CHECKS: dict[str, Callable] = {
    "data_first": _data_first_only, "softmax": _qsoftmax, "matmul": _matmul, "broadcast": _binary, "concat": _concat,
    "quant": _quant, "whole_tensor": _dynamic_quantize, "trunc": _trunc, "onnx": _onnx,
}


# ------------------------------------------------------------------------------- running
def enabled() -> bool:
    """False when the environment variable INTSIM_BATCH_SPLIT is 0."""
    return os.environ.get("INTSIM_BATCH_SPLIT", "").strip() != "0"


# A slice costs the graph's whole per-step Python time again (about 15 us a step) and shares the
# GIL with the other slices; and two threads of pure nogil work scale only about 1.3x on the
# 2-core host. Measured there (batch 8, 2 threads, split vs whole): digits_cnn (64 input values a
# sample) 1.0 vs 0.37 ms; MobileNetV2-style (27,648) u8 2-10% slower, s8 5-30% faster;
# ResNet-18-style (150,528) within +-7%. So without an explicit thread count a run splits only
# when every slice gets at least this many input values (the ResNet-18-style batches).
MIN_SLICE_ELEMENTS = 1 << 17


def auto_parts(threads: int, n: int, elements: int, min_part: int) -> int:
    """The slices a run of batch n (elements input values in all) uses by default: at most
    `threads`, each of >= min_part samples and >= MIN_SLICE_ELEMENTS input values."""
    return max(1, min(threads, n // min_part, elements // MIN_SLICE_ELEMENTS))


def bounds(n: int, parts: int) -> list:
    """`parts` contiguous (start, stop) ranges covering range(n), sizes as equal as possible
    (the first n % parts one larger), all >= 1 (parts <= n)."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (i < extra)
        out.append((start, stop))
        start = stop
    return out


def part_limits(limits: Limits, size: int, n: int) -> Optional[Limits]:
    """The limits for a slice of `size` of `n` samples: each scaled by size/n (floored), so a
    slice tensor (size/n of the whole-batch one) passes exactly when the whole-batch tensor would,
    and the slices' live totals stay within the whole-batch budget. None when a scaled limit < 1."""
    elements, nbytes = limits.max_elements * size // n, limits.max_bytes * size // n
    return Limits(elements, nbytes) if elements >= 1 and nbytes >= 1 else None


_pool = {"executor": None, "size": 0}
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The module's own persistent pool (not the kernels' one), grown to `workers` threads."""
    with _pool_lock:
        if _pool["executor"] is None or _pool["size"] < workers:
            _pool["executor"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="intsim-batch")
            _pool["size"] = workers
        return _pool["executor"]


def run_parts(fn: Callable, envs: list, limits: list) -> list:
    """fn(i, env) for every env i, under limits[i] and with single-threaded kernels; the calling
    thread runs the first. The others are claimed in order by len(envs) - 1 pool threads and, once
    done with its own, the caller, each taking the next unclaimed part until none is left: a pool
    thread that has not started by then (woken late on a busy host: 50-300 us, or a time slice)
    costs no wait, the caller runs its part too, and waits only for parts another thread is
    running. Returns the results in order; waits for every part, then raises the first part's
    exception (in slice order) if any failed."""
    n = len(envs)
    if n == 0:
        return []
    results, errors = [None] * n, [None] * n
    claim, left, lock, finished = itertools.count(1), [n], threading.Lock(), threading.Event()

    def work(i=None):
        while True:
            if i is None:
                i = next(claim)     # (one C call: atomic under the GIL)
            if i >= n:
                return
            try:
                with limited(limits[i]), serial_here():
                    results[i] = fn(i, envs[i])
            except BaseException as e:      # noqa: BLE001 - re-raised below, after the other parts end
                errors[i] = e
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    finished.set()
            i = None

    pool = _executor(n - 1) if n > 1 else None
    for _ in range(n - 1):
        pool.submit(work)
    work(0)
    finished.wait()
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results
