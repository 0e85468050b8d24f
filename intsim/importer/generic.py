"""Standard ONNX ops that are not quantization ops: kept as `onnx` IR nodes.

On integer tensors the data-movement ops among them (Reshape, Transpose, MaxPool...) move
integers unchanged and keep the input's quantization; on float tensors any op the ONNX
reference evaluator implements runs as a visible float island. The QDQ pass later turns
`DequantizeLinear -> op -> QuantizeLinear` patterns into integer nodes.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import InvalidModelError
from ..ir import IntType
from ..onnx_core import get_schema
from ..onnx_values import attributes, make_node
from ..ops import ONNX_COMPUTE, ONNX_MOVEMENT
from .context import INT_ELEM, ImportContext, dtype_of_elem

# Ops whose output is not a value of the input (shape arithmetic etc.).
SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "Range", "Cast", "NonZero", "ArgMax", "ArgMin"}


# Ops folded at import when every input is a constant (an initializer a feed cannot override):
# cheap, exact, and what onnxruntime's constant folding does before its QDQ fusion (Brevitas
# QCDQ: int8 weight -> Clip -> DQ; qonnx's QuantToQCDQ: float weight -> QuantizeLinear -> Clip -> DQ).
FOLD_ON_CONSTANTS = frozenset({"Clip", "Cast", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
                               "Flatten", "QuantizeLinear"})


def fold_constant(ctx: ImportContext, node) -> bool:
    """Compute `node` on its constant inputs now (True), or leave it to run (False). Values as
    the ONNX reference evaluator computes them (QuantizeLinear: saturate(rint_RNE(x / scale) + zp),
    the division in float32, as onnxruntime's kernel folds it)."""
    ins = [i for i in node.input if i]
    if node.op_type not in FOLD_ON_CONSTANTS or len(node.output) != 1 or not ins or \
            not all(ctx.is_foldable(i) for i in ins):
        return False
    from onnx.reference import ReferenceEvaluator   # deferred: heavy, and only a graph with such a node needs it
    try:
        (value,) = ReferenceEvaluator(node).run(None, {i: ctx.constants[i] for i in ins})
    except Exception:  # noqa: BLE001 - not foldable here: the node runs (and reports) as usual
        return False
    value = np.asarray(value)
    if node.op_type == "Cast":
        elem = int(attributes(node)["to"])
    elif node.op_type == "QuantizeLinear":
        if value.dtype not in (np.int8, np.uint8, np.int16, np.uint16):
            return False    # sub-byte and float8 codes: left to the quantize step
        elem = None         # the codes' own dtype
    else:   # the input's element type (sub-byte ints are stored in int8/uint8 arrays)
        elem = INT_ELEM.get(ctx.tensors[node.input[0]].dtype)
    ctx.add_constant(node.output[0], value, elem)
    return True


# Ops of quantized CNNs (data movement, intsim.ops.ONNX_MOVEMENT and ONNX_COMPUTE, the float ops a
# QDQ graph wraps) that the reference evaluator runs at every opset version from the one given
# that has a schema: for these a schema lookup answers supported_by_reference without importing
# onnx.reference (0.1-0.3 s of `intsim run`; an all-integer graph never runs the evaluator).
# Reshape-1..4, Split-1, Gemm-1..5, Clip-1..5 and BatchNormalization-1..5 have schemas but no
# evaluator kernel. tests/test_startup.py checks the implication against the evaluator at every
# version up to the installed onnx's.
SCHEMA_IMPLIES_REFERENCE = {op: 1 for op in ONNX_MOVEMENT | ONNX_COMPUTE | {
    "Add", "Sub", "Mul", "Relu", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Softmax",
    "GlobalAveragePool", "AveragePool"}} | {"Reshape": 5, "Split": 2, "Gemm": 6, "Clip": 6, "BatchNormalization": 6}


def supported_by_reference(domain: str, op_type: str, version: int) -> bool:
    """The ONNX reference evaluator runs the op: a Python kernel of its own, or the op's
    function body (HardSwish, Mish, MeanVarianceNormalization; context-dependent for Gelu,
    GroupNormalization...), which `load_op` alone does not report. A movement op of
    SCHEMA_IMPLIES_REFERENCE with a schema at `version` is answered from the schema."""
    if not domain and version >= SCHEMA_IMPLIES_REFERENCE.get(op_type, version + 1):
        try:
            get_schema(op_type, version, "")
            return True
        except Exception:  # noqa: BLE001 - no schema at this version: ask the evaluator
            pass
    from onnx.reference.ops import load_op   # deferred: heavy (intsim run of an all-integer graph never needs it)
    try:
        load_op(domain or "", op_type, version)
        return True
    except Exception:  # noqa: BLE001 - onnx raises several kinds for "unknown op"
        return defined_by_function(domain, op_type, version)


def defined_by_function(domain: str, op_type: str, version: int, context_dependent: bool = False) -> bool:
    """The op at `version` is defined by an ONNX function (context-dependent only, if asked)."""
    try:
        schema = get_schema(op_type, version, domain or "")
    except Exception:  # noqa: BLE001 - no schema
        return False
    return schema.has_context_dependent_function if context_dependent else \
        (schema.has_function or schema.has_context_dependent_function)


def _check_batchnorm(ctx: ImportContext, node) -> None:
    """Constant BatchNormalization parameters must have one value per channel of the input
    (the BatchNorm-folding pass relies on it)."""
    x = ctx.tensors.get(node.input[0]) if node.input else None
    channels = x.shape[1] if x is not None and x.shape is not None and len(x.shape) > 1 else None
    sizes = {ctx.constants[n].size for n in node.input[1:5] if ctx.is_const(n)}
    if channels:
        sizes.add(channels)
    if len(sizes) > 1:
        raise InvalidModelError(f"{ctx.origin(node)}: scale/bias/mean/var sizes {sorted(sizes)} do not match "
                                f"the {channels} channels of '{node.input[0]}'")


def _tf_half_pixel_for_nn(ctx: ImportContext, node, version: int):
    """Resize with coordinate_transformation_mode tf_half_pixel_for_nn (opset 11 only; tf2onnx
    still writes it at opset 13+, which onnxruntime accepts with a deprecation warning and the
    reference evaluator refuses): x_in = floor((x_out + 0.5) / scale) with nearest_mode floor
    (onnxruntime upsamplebase.h), the same index as half_pixel ((x_out + 0.5) / scale - 0.5)
    with round_prefer_ceil (floor(v + 0.5)). Rewritten so, with a warning."""
    a = attributes(node)
    mode = a.get("coordinate_transformation_mode", b"half_pixel")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if node.op_type != "Resize" or mode != "tf_half_pixel_for_nn" or version < 13:
        return node
    nearest = a.get("nearest_mode", b"round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if a.get("mode", b"nearest") not in (b"nearest", "nearest") or nearest != "floor":
        raise InvalidModelError(f"{ctx.origin(node)}: coordinate_transformation_mode tf_half_pixel_for_nn (opset 11 "
                                f"only) with mode {a.get('mode')!r} and nearest_mode {nearest!r} is not supported")
    warnings.warn(f"{ctx.origin(node)}: coordinate_transformation_mode 'tf_half_pixel_for_nn' is not in opset "
                  f"{version} (tf2onnx writes it): run as half_pixel with nearest_mode round_prefer_ceil, the same "
                  f"indices", stacklevel=4)
    keep = {k: v for k, v in a.items() if k not in ("coordinate_transformation_mode", "nearest_mode")}
    return make_node("Resize", list(node.input), list(node.output), name=node.name, **keep,
                     coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")


def _resize_sizes_as_onnxruntime(ctx: ImportContext, node, version: int) -> tuple:
    """(node, opset) for Resize with constant `scales` (1 on the batch axis) on an input of
    known shape, where onnxruntime's output size (float32 product scale * in, truncated:
    upsamplebase.h ComputeOutputShape) differs from the reference evaluator's (the product in
    double, floor): tf2onnx's scale 9/5 = 1.79999995f gives 9 rows in onnxruntime, 8 in
    double. The sizes onnxruntime computes are written as `sizes` over the axes after the
    batch (Resize-18 `axes`, so that the batch stays free), with a warning. Others unchanged."""
    if node.op_type != "Resize" or len(node.input) != 3 or not ctx.is_const(node.input[2]):
        return node, version
    x = ctx.tensors.get(node.input[0])
    scales = np.asarray(ctx.constants[node.input[2]], np.float32).reshape(-1)
    if x is None or x.shape is None or None in x.shape[1:] or len(x.shape) != scales.size or scales[0] != 1:
        return node, version
    ort = [int(np.float32(d) * s) for d, s in zip(x.shape[1:], scales[1:])]
    ref = [int(np.floor(float(d) * float(s))) for d, s in zip(x.shape[1:], scales[1:])]
    if ort == ref:
        return node, version
    sizes = ctx.fresh(f"{node.name or node.output[0]}::sizes")
    ctx.add_constant(sizes, np.asarray(ort, np.int64))
    warnings.warn(f"{ctx.origin(node)}: scales {[float(v) for v in scales]} on {list(x.shape)} give {ort} after "
                  f"the batch in onnxruntime (float32 product), {ref} in double: run with those sizes, as "
                  f"onnxruntime", stacklevel=4)
    return make_node("Resize", [node.input[0], node.input[1], "", sizes], list(node.output), name=node.name,
                     axes=list(range(1, len(x.shape))), **attributes(node)), max(version, 18)


def lower_generic(ctx: ImportContext, node) -> None:
    version = ctx.opset(node.domain or "")
    node, version = _resize_sizes_as_onnxruntime(ctx, _tf_half_pixel_for_nn(ctx, node, version), version)
    if node.domain not in ("", "ai.onnx") or not supported_by_reference("", node.op_type, version):
        raise ctx.unsupported(node)
    if fold_constant(ctx, node):
        return
    if node.op_type == "BatchNormalization":
        _check_batchnorm(ctx, node)
    first = node.input[0] if node.input else ""
    in_t = ctx.tensors.get(first)
    for i, out in enumerate(node.output):
        if not out:
            continue
        if out in ctx.value_types:
            dt = dtype_of_elem(ctx.value_types[out][0], out)
        elif in_t is not None and node.op_type in ONNX_MOVEMENT:
            dt = in_t.dtype
        else:
            dt = None
        qp = None
        if node.op_type in ONNX_MOVEMENT and in_t is not None and isinstance(in_t.dtype, IntType) and i == 0:
            qp = in_t.qparams
        ctx.declare(out, dt, qparams=qp)
    ctx.emit("onnx", node.name or node.output[0], list(node.input), list(node.output),
             {"node": node, "opset": version, "op_type": node.op_type}, ctx.origin(node))
