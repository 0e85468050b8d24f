"""Read an ONNX file safely: size limits, external data confined to the model's folder,
the ONNX checker, and shape inference. Every failure is an `InvalidModelError`."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import external_data_helper

from .errors import InvalidModelError, ResourceLimitError

MAX_MODEL_BYTES = 2 << 30


def _check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    root = folder.resolve()
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        target = (root / loc).resolve()
        if os.path.isabs(loc) or root not in target.parents:
            raise InvalidModelError(f"tensor '{tensor.name}': external data '{loc}' lies outside the model's folder")
        if not target.is_file():
            raise InvalidModelError(f"tensor '{tensor.name}': external data file '{loc}' is missing")


def load_model(source, max_bytes: int = MAX_MODEL_BYTES) -> onnx.ModelProto:
    """Load and check a model from a path, bytes or a ModelProto."""
    if isinstance(source, onnx.ModelProto):
        model, folder = source, Path(".")
    else:
        if isinstance(source, (bytes, bytearray)):
            data, folder = bytes(source), Path(".")
        else:
            path = Path(source)
            if not path.is_file():
                raise InvalidModelError(f"model file '{path}' does not exist")
            if path.stat().st_size > max_bytes:
                raise ResourceLimitError(f"model file '{path}' is larger than {max_bytes} bytes")
            data, folder = path.read_bytes(), path.parent
        model = _parse(data, str(source)[:200] if not isinstance(source, (bytes, bytearray)) else "<bytes>")
        _check_external_data(model, folder)
        if any(external_data_helper.uses_external_data(t)
               for t in external_data_helper._get_all_tensors(model)):
            try:
                external_data_helper.load_external_data_for_model(model, str(folder))
            except Exception as e:  # noqa: BLE001 - any failure here is a bad file
                raise InvalidModelError(f"cannot read external data: {e}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise InvalidModelError(f"model fails the ONNX checker: {_first_line(e)}") from None
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as e:  # noqa: BLE001
        raise InvalidModelError(f"shape inference failed: {_first_line(e)}") from None
    return model


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise InvalidModelError(f"'{label}' is not a valid ONNX file (truncated or corrupt): {_first_line(e)}") from None
    if not model.HasField("graph") or model.ir_version == 0:
        raise InvalidModelError(f"'{label}' is not a valid ONNX file (no graph or IR version)")
    return model


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
