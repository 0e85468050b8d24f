"""Values in and out of ONNX protobufs as onnx.helper / onnx.numpy_helper give them, for the
element types of quantized graphs, without importing the onnx package (intsim.onnx_core says
why). Anything else (bfloat16, float8, 4- and 2-bit, strings, complex, external data, a big-endian
host; graph- or type-valued attributes) is handed to onnx's own function, imported then.

    attribute_value(a)    onnx.helper.get_attribute_value (attributes(node): all of a node's, by name)
    to_array(t)           onnx.numpy_helper.to_array
    make_node(...)        onnx.helper.make_node
    np_dtype(elem), elem_of(dtype), elem_name(elem)   onnx.helper's element-type maps
"""
from __future__ import annotations

import numbers
import sys

import numpy as np

from .onnx_core import proto

_T = proto.TensorProto
_A = proto.AttributeProto

# element type -> NumPy dtype (onnx._mapping.TENSOR_TYPE_MAP), and the TensorProto field that
# holds the values when there is no raw_data, with that field's NumPy type
# (helper.tensor_dtype_to_field; int32_data unless listed)
NATIVE = {e: np.dtype(d) for e, d in (
    (_T.FLOAT, np.float32), (_T.DOUBLE, np.float64), (_T.FLOAT16, np.float16), (_T.BOOL, np.bool_),
    (_T.INT8, np.int8), (_T.UINT8, np.uint8), (_T.INT16, np.int16), (_T.UINT16, np.uint16),
    (_T.INT32, np.int32), (_T.UINT32, np.uint32), (_T.INT64, np.int64), (_T.UINT64, np.uint64))}
_FIELD = {_T.FLOAT: ("float_data", np.float32), _T.DOUBLE: ("double_data", np.float64),
          _T.INT64: ("int64_data", np.int64), _T.UINT32: ("uint64_data", np.uint64),
          _T.UINT64: ("uint64_data", np.uint64)}
_ELEM_OF = {dt: e for e, dt in NATIVE.items()}
_BIT_PATTERNS = {_T.FLOAT16: np.uint16, _T.INT16: np.uint16, _T.UINT16: np.uint16, _T.BOOL: np.uint8}


def elem_name(elem: int) -> str:
    """The element type's name (FLOAT, INT8...), or its number when ONNX defines none."""
    return _T.DataType.Name(elem) if elem in _T.DataType.values() else str(elem)


def np_dtype(elem: int) -> np.dtype:
    """onnx.helper.tensor_dtype_to_np_dtype(elem)."""
    if elem in NATIVE:
        return NATIVE[elem]
    from onnx import helper     # deferred: ml_dtypes' types (bfloat16, float8, int4...)
    return helper.tensor_dtype_to_np_dtype(elem)


def elem_of(dtype) -> int:
    """onnx.helper.np_dtype_to_tensor_dtype(dtype)."""
    dt = np.dtype(dtype)
    if dt in _ELEM_OF:
        return _ELEM_OF[dt]
    from onnx import helper     # deferred: ml_dtypes' types, strings
    return helper.np_dtype_to_tensor_dtype(dt)


_VALUE = {_A.FLOAT: "f", _A.INT: "i", _A.STRING: "s", _A.TENSOR: "t", _A.SPARSE_TENSOR: "sparse_tensor",
          _A.GRAPH: "g", _A.TYPE_PROTO: "tp"}
_VALUES = {_A.FLOATS: "floats", _A.INTS: "ints", _A.STRINGS: "strings", _A.TENSORS: "tensors",
           _A.SPARSE_TENSORS: "sparse_tensors", _A.GRAPHS: "graphs", _A.TYPE_PROTOS: "type_protos"}


def attribute_value(a):
    """onnx.helper.get_attribute_value(a): the field its type names (a list for the repeated
    ones; strings as bytes); None for UNDEFINED."""
    if a.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {a}")
    if a.type in _VALUE:
        return getattr(a, _VALUE[a.type])
    if a.type in _VALUES:
        return list(getattr(a, _VALUES[a.type]))
    if a.type == _A.UNDEFINED:
        return None
    raise ValueError(f"Unsupported ONNX attribute: {a}")


def attributes(node) -> dict:
    """A NodeProto's attributes: name -> attribute_value."""
    return {a.name: attribute_value(a) for a in node.attribute}


def to_array(t) -> np.ndarray:
    """onnx.numpy_helper.to_array(t) for the NATIVE element types stored in the file: raw_data
    read as little-endian values of the type; otherwise the typed field, converted as onnx
    does (16-bit and bool values are bit patterns in int32_data)."""
    elem = t.data_type
    if elem not in NATIVE or t.HasField("segment") or sys.byteorder != "little" or \
            t.data_location == _T.EXTERNAL:
        from onnx import numpy_helper   # deferred: the rarer forms, exactly as onnx reads them
        return numpy_helper.to_array(t)
    dtype, dims = NATIVE[elem], t.dims
    if t.HasField("raw_data"):
        return np.frombuffer(t.raw_data, dtype=dtype).reshape(dims)
    if elem in _BIT_PATTERNS:
        bits = np.array(t.int32_data, dtype=np.int32).view(np.uint32).astype(_BIT_PATTERNS[elem])
        return bits.reshape(dims).view(dtype) if elem != _T.BOOL else bits.view(dtype).reshape(dims)
    field, storage = _FIELD.get(elem, ("int32_data", np.int32))
    return np.asarray(getattr(t, field), dtype=storage).astype(dtype).reshape(dims)


def make_attribute(key: str, value):
    """onnx.helper.make_attribute(key, value) for numbers, strings, tensors and non-empty lists
    of numbers or strings (the only values intsim builds nodes with); onnx's own for the rest."""
    a = proto.AttributeProto()
    a.name = key
    if isinstance(value, numbers.Integral):
        a.i, a.type = int(value), _A.INT
    elif isinstance(value, numbers.Real):
        a.f, a.type = float(value), _A.FLOAT
    elif isinstance(value, (str, bytes)):
        a.s, a.type = _bytes(value), _A.STRING
    elif isinstance(value, _T):
        a.t.CopyFrom(value)
        a.type = _A.TENSOR
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, numbers.Real) for v in value):
        if all(isinstance(v, numbers.Integral) for v in value):
            a.ints.extend(value)
            a.type = _A.INTS
        else:
            a.floats.extend(value)
            a.type = _A.FLOATS
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, bytes)) for v in value):
        a.strings.extend(_bytes(v) for v in value)
        a.type = _A.STRINGS
    else:
        from onnx import helper     # deferred: graphs, sparse tensors, type protos, empty lists
        return helper.make_attribute(key, value)
    return a


def _bytes(v) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else v


def make_node(op_type: str, inputs, outputs, name: str | None = None, domain: str | None = None, **attrs):
    """onnx.helper.make_node: attributes sorted by name, None values left out."""
    node = proto.NodeProto()
    node.op_type = op_type
    node.input.extend(inputs)
    node.output.extend(outputs)
    if name:
        node.name = name
    if domain is not None:
        node.domain = domain
    node.attribute.extend(make_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
    return node


__all__ = ["NATIVE", "attribute_value", "attributes", "elem_name", "elem_of", "make_attribute", "make_node", "np_dtype",
           "to_array"]
