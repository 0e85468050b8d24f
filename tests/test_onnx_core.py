"""intsim.onnx_core / intsim.onnx_values: models read, checked and shape-inferred without
`import onnx` are what onnx's own functions give; values (arrays, attributes, nodes) equal
onnx.numpy_helper's and onnx.helper's; a bad file is refused naming it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from intsim.onnx_core import proto
from intsim.onnx_values import NATIVE, attribute_value, attributes, make_node, to_array

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted(str(p) for p in ROOT.glob("models/**/*.onnx") if "cache" not in p.parts) + \
    sorted(str(p) for p in ROOT.glob("tests/**/*.onnx"))

# In a fresh interpreter: every model through intsim's loader with onnx not imported; then onnx
# imported, and each model through onnx's public functions (load, the same topological sort,
# checker, shape inference) must equal it; every tensor's array and every attribute's value too.
CHILD = r"""
import json, sys
import numpy as np
from intsim.errors import InvalidModelError
from intsim.loader import load_model, sort_nodes
from intsim.onnx_core import proto
from intsim.onnx_values import attribute_value, to_array
paths, bad = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ours = [load_model(p) for p in paths]
refused = []
for p in bad:
    try:
        load_model(p)
        refused.append(None)
    except InvalidModelError as e:
        refused.append(str(e))
clean = [m for m in ("onnx", "ml_dtypes", "onnx.helper") if m in sys.modules]
import onnx
from onnx import helper, numpy_helper
same_class = onnx.ModelProto is proto.ModelProto and onnx.onnx_ml_pb2.ModelProto is proto.ModelProto and \
    onnx.checker.ValidationError is onnx.onnx_cpp2py_export.checker.ValidationError
diff = []
for p, m in zip(paths, ours):
    ref = onnx.load(p)
    ref = sort_nodes(ref)
    onnx.checker.check_model(ref)
    ref = onnx.shape_inference.infer_shapes(ref, strict_mode=False)
    if m != ref or m.SerializeToString() != ref.SerializeToString():
        diff.append(p + ": model")
    tensors = list(m.graph.initializer) + [a.t for n in m.graph.node for a in n.attribute if a.HasField("t")]
    for t in tensors:
        a, b = to_array(t), numpy_helper.to_array(t)
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            diff.append(p + ": tensor " + t.name)
    for n in m.graph.node:
        for at in n.attribute:
            if repr(attribute_value(at)) != repr(helper.get_attribute_value(at)):
                diff.append(p + ": attribute " + n.name + "." + at.name)
print(json.dumps({"clean": clean, "same_class": same_class, "diff": diff, "refused": refused}))
"""


def _bad_files(tmp_path: Path) -> list:
    good = (ROOT / "models" / "digits_cnn.qdq_s8_pt.onnx").read_bytes()
    files = {"truncated.onnx": good[:len(good) // 2], "cut_header.onnx": good[:7], "empty.onnx": b"",
             "garbage.onnx": bytes(range(256)) * 8, "text.onnx": b"ir_version: 8\ngraph { }\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [str(tmp_path / n) for n in files]


def test_models_read_without_onnx_equal_onnx_load(tmp_path):
    assert len(MODELS) > 50
    bad = _bad_files(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(MODELS), json.dumps(bad)], capture_output=True,
                       text=True, timeout=900, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["clean"] == []           # the loader imported neither onnx nor ml_dtypes
    assert got["same_class"]            # onnx, imported later, hands out the same classes and modules
    assert got["diff"] == []
    for path, msg in zip(bad, got["refused"]):
        assert msg is not None and Path(path).name in msg, (path, msg)


def test_external_data_read_as_onnx_does(tmp_path):
    """A model with its weights in a side file: loaded (onnx's external-data reader, imported
    then) to the model onnx.load gives."""
    from intsim.loader import load_model
    m = onnx.load(str(ROOT / "models" / "digits_cnn.qdq_s8_pt.onnx"))
    onnx.save(m, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="w.bin", size_threshold=0)
    assert any(t.data_location == TensorProto.EXTERNAL for t in onnx.load(str(tmp_path / "ext.onnx"),
                                                                           load_external_data=False).graph.initializer)
    ours = load_model(str(tmp_path / "ext.onnx"))
    ref = onnx.shape_inference.infer_shapes(onnx.load(str(tmp_path / "ext.onnx")), strict_mode=False)
    assert ours == ref


EDGES = {np.dtype(np.float32): [0.0, -0.0, 1.5, -3.25e38, np.inf, -np.inf, 1e-45],
         np.dtype(np.float64): [0.0, -0.0, 1e308, -1e-320, np.inf],
         np.dtype(np.float16): [0.0, -0.0, 65504.0, -6e-8, np.inf]}


@pytest.mark.parametrize("elem", sorted(NATIVE))
@given(data=st.data())
def test_to_array_equals_numpy_helper(elem, data):
    """Raw and typed storage of every NATIVE element type, edge values included: same dtype,
    shape and bytes as onnx.numpy_helper.to_array."""
    dtype = NATIVE[elem]
    shape = data.draw(st.lists(st.integers(0, 3), min_size=0, max_size=3))
    n = int(np.prod(shape)) if shape else 1
    if dtype.kind == "b":
        values = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = data.draw(st.lists(st.sampled_from([info.min, info.max, 0, -1 if info.min else 1])
                                    | st.integers(int(info.min), int(info.max)), min_size=n, max_size=n))
    else:
        values = data.draw(st.lists(st.sampled_from(EDGES[dtype]) | st.floats(-1e4, 1e4, width=dtype.itemsize * 8),
                                    min_size=n, max_size=n))
    a = np.array(values, dtype=dtype).reshape(shape)
    for t in (numpy_helper.from_array(a, "x"), helper.make_tensor("x", elem, shape, a.reshape(-1).tolist())):
        got, want = to_array(t), numpy_helper.to_array(t)
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


def test_to_array_of_other_types_is_onnx_own():
    for elem, values in ((TensorProto.INT4, [-8, 7, 0]), (TensorProto.UINT4, [15, 0, 3]), (TensorProto.BFLOAT16, [1.0]),
                         (TensorProto.FLOAT8E4M3FN, [448.0, -2.0])):
        t = helper.make_tensor("x", elem, [len(values)], values)
        got, want = to_array(t), numpy_helper.to_array(t)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


ATTRS = {"i": 3, "neg": np.int64(-7), "b": True, "f": 0.1, "f32": np.float32(0.1), "s": "nearest", "by": b"x\xff",
         "ints": [1, -2, np.int64(3)], "floats": [0.5, 2], "strs": ["a", b"b"], "tup": (1, 2),
         "t": numpy_helper.from_array(np.arange(3, dtype=np.int8), "w"), "none": None}


def test_make_node_equals_onnx_helper():
    ours = make_node("Resize", ["x", "", "s"], ["y"], name="r", domain="", **ATTRS)
    ref = helper.make_node("Resize", ["x", "", "s"], ["y"], name="r", domain="", **ATTRS)
    assert ours.SerializeToString() == ref.SerializeToString()
    assert repr(attributes(ours)) == repr({a.name: helper.get_attribute_value(a) for a in ref.attribute})
    assert make_node("Add", ["a", "b"], ["c"]) == helper.make_node("Add", ["a", "b"], ["c"])
    g = helper.make_graph([], "g", [], [])      # a graph value: onnx's own make_attribute
    assert make_node("If", ["c"], ["y"], then_branch=g) == helper.make_node("If", ["c"], ["y"], then_branch=g)
    with pytest.raises(ValueError):             # as onnx: an empty list has no type
        make_node("Pad", ["x"], ["y"], pads=[])


def test_attribute_value_of_reference_attribute_refused():
    a = proto.AttributeProto(name="alpha", ref_attr_name="beta", type=proto.AttributeProto.FLOAT)
    with pytest.raises(ValueError):
        attribute_value(a)
    with pytest.raises(ValueError):
        helper.get_attribute_value(a)
