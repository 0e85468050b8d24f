"""State of one import: constants, declared tensors, emitted IR nodes, opsets, and helpers
that read ONNX attributes and types."""
from __future__ import annotations

import numpy as np

from ..errors import InvalidModelError, QuantParamError, UnsupportedOpError
from ..ir import FLOAT32, FloatType, IntType, Node, QParams, Tensor
from ..onnx_core import proto
from ..onnx_values import elem_name, to_array

TensorProto = proto.TensorProto

ELEM_TYPES = {
    TensorProto.FLOAT: FLOAT32, TensorProto.FLOAT16: FloatType(16), TensorProto.DOUBLE: FloatType(64),
    TensorProto.INT8: IntType(8, True), TensorProto.UINT8: IntType(8, False),
    TensorProto.INT16: IntType(16, True), TensorProto.UINT16: IntType(16, False),
    TensorProto.INT32: IntType(32, True), TensorProto.UINT32: IntType(32, False),
    TensorProto.INT64: IntType(64, True), TensorProto.BOOL: IntType(1, False),
    TensorProto.INT4: IntType(4, True), TensorProto.UINT4: IntType(4, False),
    TensorProto.INT2: IntType(2, True), TensorProto.UINT2: IntType(2, False),
}
INT_ELEM = {t: e for e, t in ELEM_TYPES.items() if isinstance(t, IntType)}


def dtype_of_elem(elem: int, what: str):
    if elem not in ELEM_TYPES:
        raise UnsupportedOpError("tensor", what, 0, f"element type {elem_name(elem)} is not supported")
    return ELEM_TYPES[elem]


def to_numpy(t: proto.TensorProto) -> np.ndarray:
    """An initializer as a plain NumPy array; sub-byte ints come back as int8/uint8 values."""
    try:
        a = to_array(t)
    except Exception as e:  # noqa: BLE001
        raise InvalidModelError(f"initializer '{t.name}' cannot be read: {e}") from None
    if t.data_type in (TensorProto.INT4, TensorProto.INT2):
        a = a.astype(np.int8)
    elif t.data_type in (TensorProto.UINT4, TensorProto.UINT2):
        a = a.astype(np.uint8)
    expected = int(np.prod(t.dims)) if len(t.dims) else 1
    if a.size != expected:
        raise InvalidModelError(f"initializer '{t.name}' holds {a.size} values for shape {list(t.dims)}")
    return a


class ImportContext:
    def __init__(self, model: proto.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
        self.constants: dict = {}
        self.tensors: dict = {}
        self.nodes: list = []
        self.value_types: dict = {}
        self._names: set = set()
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(self.graph.output):
            if vi.type.HasField("tensor_type"):
                tt = vi.type.tensor_type
                shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim) \
                    if tt.HasField("shape") else None
                self.value_types[vi.name] = (tt.elem_type, shape)
        for init in self.graph.initializer:
            self.add_constant(init.name, to_numpy(init), init.data_type)
        # Initializers also listed as graph inputs (IR >= 4) may be overridden by a feed:
        # onnxruntime runs them with their stored values but does not constant-fold them
        # (graph_utils::IsConstantInitializer), so neither does the importer.
        listed = {vi.name for vi in self.graph.input}
        self.overridable = frozenset(n for n in self.constants if n in listed) if model.ir_version >= 4 \
            else frozenset()

    # --- opsets and names -------------------------------------------------------------------
    def opset(self, domain: str = "") -> int:
        return self.opsets.get("" if domain == "ai.onnx" else domain, 0)

    def origin(self, node: proto.NodeProto) -> str:
        dom = node.domain or ""
        return f"{node.op_type} (node '{node.name or node.output[0]}', opset {self.opset(dom)})"

    def unsupported(self, node: proto.NodeProto, why: str = "") -> UnsupportedOpError:
        return UnsupportedOpError(node.op_type if not node.domain else f"{node.domain}.{node.op_type}",
                                  node.name or (node.output[0] if node.output else "?"),
                                  self.opset(node.domain or ""), why)

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self._names or name in self.tensors or name in self.constants:
            i += 1
            name = f"{base}__{i}"
        self._names.add(name)
        return name

    # --- constants and tensors -------------------------------------------------------------
    def add_constant(self, name: str, value: np.ndarray, elem: int | None = None) -> None:
        self.constants[name] = value
        dt = ELEM_TYPES.get(elem) if elem is not None else _dtype_from_numpy(value.dtype)
        self.tensors[name] = Tensor(name, tuple(value.shape), dt or _dtype_from_numpy(value.dtype))

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.constants

    def is_foldable(self, name: str) -> bool:
        """A constant that a runtime's constant folding may compute with (not overridable)."""
        return self.is_const(name) and name not in self.overridable

    def const(self, name: str, node: proto.NodeProto | None = None, what: str = "input"):
        if name not in self.constants:
            if node is not None:
                raise self.unsupported(node, f"{what} '{name}' must be a constant initializer")
            raise InvalidModelError(f"tensor '{name}' must be a constant")
        return self.constants[name]

    def declare(self, name: str, dtype, shape=None, qparams: QParams | None = None) -> None:
        if shape is None and name in self.value_types:
            shape = self.value_types[name][1]
        self.tensors[name] = Tensor(name, tuple(shape) if shape is not None else None, dtype, qparams)

    def type_of(self, name: str):
        if name in self.tensors:
            return self.tensors[name].dtype
        if name in self.value_types:
            return dtype_of_elem(self.value_types[name][0], name)
        return None

    def emit(self, op: str, name: str, inputs, outputs, attrs=None, origin: str = "") -> Node:
        n = Node(op, name, tuple(inputs), tuple(outputs), attrs or {}, origin)
        self.nodes.append(n)
        return n

    # --- quantization parameters -----------------------------------------------------------
    def qparams(self, scale_name: str, zp_name: str, axis=None, block_size=0, tensor="?"):
        """QParams from constant scale/zero-point inputs, or None when either is dynamic."""
        if not self.is_const(scale_name) or (zp_name and not self.is_const(zp_name)):
            return None
        s = self.constants[scale_name]
        z = self.constants[zp_name] if zp_name else np.zeros(s.shape, np.int64)
        if s.ndim == 0 or s.size == 1 and block_size == 0:
            axis = None
        return QParams.make(s.astype(np.float32), z, axis, block_size, name=tensor)


def _dtype_from_numpy(dt: np.dtype):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return FloatType(dt.itemsize * 8)
    if dt.kind in "iu":
        return IntType(dt.itemsize * 8, dt.kind == "i")
    if dt.kind == "b":
        return IntType(1, False)
    return None


def check_zero_point(zp: np.ndarray, t: IntType, tensor: str) -> None:
    if zp.size and (zp.min() < t.qmin or zp.max() > t.qmax):
        raise QuantParamError(f"tensor '{tensor}': zero point {int(zp.min())}..{int(zp.max())} outside {t} range")
