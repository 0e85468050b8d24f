"""The installed `onnx` package's protobuf classes (ModelProto, NodeProto, TensorProto...) and its
C++ checker, shape inference and operator schemas, without `import onnx`.

`import onnx` runs onnx/__init__.py, which imports onnx.helper and with it ml_dtypes: 0.5-0.7 s
of CPU on this host, a third of a warm `intsim run` (issue 19: < 1.5 s). What loading a model
needs lives in two files of the package that import nothing of it: `onnx_ml_pb2.py` (the
generated protobuf module: google.protobuf only) and the compiled `onnx_cpp2py_export`
extension (checker, shape inference, defs). Both are loaded here from the installed package's
folder under their own module names and registered in sys.modules, so a later `import onnx`
(a float island, the reference evaluator, quantize...) finds and reuses them: `onnx.ModelProto`
is then `proto.ModelProto`, the very class this module hands out, and a model read here is
the object `onnx.load` would build from the same bytes.

When `onnx` is already imported, or the files are not where this expects them (another
release's layout), the package itself is imported instead: slower, never different.

    proto.ModelProto, proto.TensorProto.FLOAT ...    the generated classes and enums
    check_model(model)          onnx.checker.check_model (same C++ call, same arguments)
    infer_shapes(model)         onnx.shape_inference.infer_shapes(model, strict_mode=False)
    get_schema(op, version, domain), opset_version()   onnx.defs' C++ functions
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys

_PROTO = "onnx.onnx_ml_pb2"
_CPP = "onnx.onnx_cpp2py_export"
MAXIMUM_PROTOBUF = 2 << 30      # onnx.checker.MAXIMUM_PROTOBUF: the C++ checker's bytes limit


def _load(name: str, path: str, extension: bool):
    loader = importlib.machinery.ExtensionFileLoader(name, path) if extension else \
        importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _pieces():
    """(the generated protobuf module, the C++ extension) of the installed onnx."""
    if "onnx" not in sys.modules and not (_PROTO in sys.modules and _CPP in sys.modules):
        try:
            spec = importlib.util.find_spec("onnx")
            folder = list(spec.submodule_search_locations)[0]
            cpp = sys.modules.get(_CPP) or _load(
                _CPP, next(f"{folder}/{s}" for s in _extension_files(folder)), extension=True)
            if not cpp.ONNX_ML:     # onnx_pb.py picks onnx_pb2 then: leave that build to the package
                raise ImportError("onnx built without ONNX_ML")
            pb = sys.modules.get(_PROTO) or _load(_PROTO, f"{folder}/onnx_ml_pb2.py", extension=False)
            if not any(isinstance(f, _BindOnImport) for f in sys.meta_path):
                sys.meta_path.insert(0, _BindOnImport())
            return pb, cpp
        except (ImportError, OSError, StopIteration, AttributeError, TypeError):
            pass        # an unexpected layout: the package itself below
    import onnx  # noqa: F401 - fallback: the whole package (it registers both modules)
    return sys.modules[_PROTO], sys.modules[_CPP]


def _extension_files(folder: str):
    import os
    return [f for f in sorted(os.listdir(folder)) if f.startswith("onnx_cpp2py_export.")
            and any(f.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)]


class _BindOnImport:
    """A finder for the `onnx` package alone (then it steps aside): the package, when something
    imports it later, gets its two modules loaded here as attributes (`onnx.onnx_cpp2py_export`,
    `onnx.onnx_ml_pb2`), as a normal import of them would have set; its loader is otherwise the
    one the other finders give."""

    def find_spec(self, name, path=None, target=None):
        if name != "onnx":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _BindingLoader(spec.loader)
        return spec


class _BindingLoader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.onnx_cpp2py_export, module.onnx_ml_pb2 = sys.modules[_CPP], sys.modules[_PROTO]
        self._loader.exec_module(module)

    def __getattr__(self, name):    # resources, get_data...: the package's own loader
        return getattr(self._loader, name)


proto, _cpp = _pieces()


def check_model(model) -> None:
    """onnx.checker.check_model(model) on a ModelProto: the C++ checker, default options."""
    data = model.SerializeToString()
    if len(data) > MAXIMUM_PROTOBUF:
        raise ValueError("This protobuf of onnx model is too large (>2GiB). Call check_model with model path instead.")
    _cpp.checker.check_model(data, False, False, False)


def infer_shapes(model):
    """onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
    data_prop=False): the C++ inference, its result parsed into a new ModelProto."""
    out = proto.ModelProto()
    out.ParseFromString(_cpp.shape_inference.infer_shapes(model.SerializeToString(), False, False, False))
    return out


def get_schema(op_type: str, version: int, domain: str = ""):
    """onnx.defs.get_schema: the op's schema at `version` (raises when there is none)."""
    return _cpp.defs.get_schema(op_type, version, domain)


def opset_version() -> int:
    """onnx.defs.onnx_opset_version(): the newest opset of the ONNX domain this onnx defines."""
    return _cpp.defs.schema_version_map()[""][1]


__all__ = ["MAXIMUM_PROTOBUF", "check_model", "get_schema", "infer_shapes", "opset_version", "proto"]
