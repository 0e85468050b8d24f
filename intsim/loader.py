"""Read an ONNX file safely: size limits, external data confined to the model's folder,
topological order (nodes listed out of order are sorted, as onnxruntime accepts them), the
ONNX checker, and shape inference. Every failure is an `InvalidModelError`."""
from __future__ import annotations

import heapq
import os
from pathlib import Path

from . import onnx_core
from .errors import InvalidModelError, ResourceLimitError
from .limits import check_bytes, check_tensor_proto, current, tensor_proto_bytes
from .onnx_core import proto

MAX_MODEL_BYTES = 2 << 30


def _uses_external_data(t) -> bool:
    """onnx.external_data_helper.uses_external_data."""
    return t.HasField("data_location") and t.data_location == proto.TensorProto.EXTERNAL


def _all_tensors(model):
    """Every TensorProto of the model that onnx.external_data_helper walks: the initializers of
    the graph and its subgraphs, and the tensor attributes of their nodes and of the model's
    functions (and their subgraphs)."""
    graphs = list(_graphs(model.graph))
    for g in graphs:
        yield from g.initializer
    for g in graphs + [sub for f in model.functions for sub in _graphs(f)]:
        for n in g.node:
            for a in n.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors


def _check_external_data(model: proto.ModelProto, folder: Path) -> None:
    root = folder.resolve()
    for tensor in _all_tensors(model):
        if not _uses_external_data(tensor):
            continue
        info = {e.key: e.value for e in tensor.external_data}
        loc = info.get("location", "")
        target = (root / loc).resolve()
        if os.path.isabs(loc) or root not in target.parents:
            raise InvalidModelError(f"tensor '{tensor.name}': external data '{loc}' lies outside the model's folder")
        if not target.is_file():
            raise InvalidModelError(f"tensor '{tensor.name}': external data file '{loc}' is missing")


def _check_strings(model: proto.ModelProto) -> None:
    """Every name the importer reads must be valid UTF-8: protobuf hands a corrupt string field
    back as `bytes` (or raises when it is read), and copying it into a new node then fails."""
    try:
        names = [o.domain for o in model.opset_import]
        for g in _graphs(model.graph):
            names += [g.name] + [v.name for v in list(g.input) + list(g.output) + list(g.value_info)]
            names += [t.name for t in list(g.initializer) + [s.values for s in g.sparse_initializer]]
            for n in g.node:
                names += [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
                for a in n.attribute:   # string attributes (auto_pad, mode...) are decoded later
                    _ = [v.decode("utf-8") for v in ([a.s] if a.type == proto.AttributeProto.STRING else
                                                     a.strings if a.type == proto.AttributeProto.STRINGS else [])]
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidModelError(f"the model holds a name that is not valid UTF-8 (corrupt file): {e}") from None
    bad = next((v for v in names if not isinstance(v, str)), None)
    if bad is not None:
        raise InvalidModelError(f"the model holds a name that is not valid UTF-8 (corrupt file): {bad[:40]!r}")


def _graphs(g: proto.GraphProto):
    yield g
    for n in g.node:
        for a in n.attribute:
            if a.type == proto.AttributeProto.GRAPH:
                yield from _graphs(a.g)
            elif a.type == proto.AttributeProto.GRAPHS:
                for sub in a.graphs:
                    yield from _graphs(sub)


def _check_sizes(model: proto.ModelProto) -> None:
    """Every initializer and Constant tensor (subgraphs included) within the limits and with
    raw data of the right length; all of them together within the byte limit. Runs before
    anything is decoded or loaded from external files."""
    total = 0
    for t in _all_tensors(model):
        total += check_tensor_proto(t, f"tensor '{t.name}'")
    check_bytes(total, "all initializers together")


def _check_opsets(model: proto.ModelProto) -> None:
    """The ONNX domain's opset must be one this onnx release defines (1..latest)."""
    latest = onnx_core.opset_version()
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not 1 <= o.version <= latest:
            raise InvalidModelError(f"opset {o.version} of the ONNX domain is outside 1..{latest}")


def _refuse_external(model: proto.ModelProto) -> None:
    """Without a model path there is no folder to confine external data to."""
    for t in _all_tensors(model):
        if _uses_external_data(t):
            raise InvalidModelError(f"tensor '{t.name}' has external data: load the model from its path")


def _check_external_lengths(model: proto.ModelProto, folder: Path) -> None:
    for t in _all_tensors(model):
        if not _uses_external_data(t):
            continue
        info = {e.key: e.value for e in t.external_data}
        try:
            offset, length = int(info.get("offset", 0) or 0), info.get("length")
            length = None if length in (None, "") else int(length)
        except ValueError:
            raise InvalidModelError(f"tensor '{t.name}': external data offset/length are not integers") from None
        need = tensor_proto_bytes(t, f"tensor '{t.name}'")
        size = (folder.resolve() / info.get("location", "")).stat().st_size
        if offset < 0 or (length is not None and (length < 0 or (need is not None and length != need))):
            raise InvalidModelError(f"tensor '{t.name}': external data length {length} (offset {offset}) does not "
                                    f"fit shape {list(t.dims)} ({need} bytes)")
        if need is not None and offset + need > size:
            raise InvalidModelError(f"tensor '{t.name}': external file '{info.get('location')}' holds {size} bytes, "
                                    f"needs {offset + need}")


def load_model(source, max_bytes: int | None = None) -> proto.ModelProto:
    """Load and check a model from a path, bytes or a ModelProto."""
    if isinstance(source, proto.ModelProto):
        model = source
        _check_strings(model)
        _check_sizes(model)
        _refuse_external(model)
    else:
        if isinstance(source, (bytes, bytearray)):
            data, folder = bytes(source), Path(".")
        else:
            path = Path(source)
            if not path.is_file():
                raise InvalidModelError(f"model file '{path}' does not exist")
            max_bytes = current().max_bytes if max_bytes is None else max_bytes
            if path.stat().st_size > max_bytes:
                raise ResourceLimitError(f"model file '{path}' is larger than {max_bytes} bytes")
            data, folder = path.read_bytes(), path.parent
        model = _parse(data, str(source)[:200] if not isinstance(source, (bytes, bytearray)) else "<bytes>")
        _check_strings(model)
        _check_sizes(model)
        if isinstance(source, (bytes, bytearray)):
            _refuse_external(model)
        _check_external_data(model, folder)
        _check_external_lengths(model, folder)
        if any(_uses_external_data(t)
               for t in _all_tensors(model)):
            from onnx import external_data_helper   # deferred: the package is heavy; few models need it
            try:
                external_data_helper.load_external_data_for_model(model, str(folder))
            except Exception as e:  # noqa: BLE001 - any failure here is a bad file
                raise InvalidModelError(f"cannot read external data: {e}") from None
    _check_opsets(model)
    model = sort_nodes(model)
    try:
        onnx_core.check_model(model)
    except Exception as e:  # noqa: BLE001
        raise InvalidModelError(f"model fails the ONNX checker: {_one_line(e)}") from None
    try:
        model = onnx_core.infer_shapes(model)
    except Exception as e:  # noqa: BLE001
        raise InvalidModelError(f"shape inference failed: {_one_line(e)}") from None
    return model


def sort_nodes(model: proto.ModelProto) -> proto.ModelProto:
    """The model with its top-level nodes in topological order (a copy when they were not: the
    caller's ModelProto is left alone). Ties keep the file's order. Tools list nodes out of order
    (AMD Quark XINT8 appends one at the end); onnxruntime sorts them, the ONNX checker refuses
    them. A cycle is refused, naming a node on it. Inputs nothing produces are left to the checker."""
    nodes = list(model.graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waits = [{producer[x] for x in n.input if x in producer} for n in nodes]
    if all(all(p < i for p in w) for i, w in enumerate(waits)):
        return model
    readers: dict = {}
    for i, w in enumerate(waits):
        for p in w:
            readers.setdefault(p, []).append(i)
    left = [len(w) for w in waits]
    ready = [i for i, k in enumerate(left) if k == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers.get(i, ()):
            left[r] -= 1
            if left[r] == 0:
                heapq.heappush(ready, r)
    if len(order) < len(nodes):
        i, seen = next(i for i, k in enumerate(left) if k > 0), set()
        while i not in seen:        # walk back along unfinished inputs until a node repeats
            seen.add(i)
            i = min(p for p in waits[i] if left[p] > 0)
        stuck = nodes[i]
        raise InvalidModelError(f"the graph has a cycle through node '{stuck.name or stuck.output[0]}' "
                                f"({stuck.op_type})")
    out = proto.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes[i] for i in order)
    return out


def _parse(data: bytes, label: str) -> proto.ModelProto:
    model = proto.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
        raise InvalidModelError(f"'{label}' is not a valid ONNX file (truncated or corrupt): {_first_line(e)}") from None
    if not model.HasField("graph") or model.ir_version == 0:
        raise InvalidModelError(f"'{label}' is not a valid ONNX file (no graph or IR version)")
    return model


def _one_line(e: Exception) -> str:
    """The whole message on one line (the checker puts the node's name on a later line)."""
    s = " ".join(str(e).split())
    return (s[:400] + " ...") if len(s) > 400 else (s or type(e).__name__)


def _first_line(e: Exception) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
