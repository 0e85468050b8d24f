"""What `intsim run` imports (benchmarks/startup.py times it): a model without float islands
runs without onnxruntime, the onnx package (ml_dtypes), the ONNX reference evaluator, dask, or
the test/schema libraries; and the schema shortcut that keeps the evaluator out of import answers as the evaluator would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from intsim.importer.generic import SCHEMA_IMPLIES_REFERENCE, defined_by_function

ROOT = Path(__file__).resolve().parent.parent
# onnx (the package: it imports ml_dtypes, 0.5-0.7 s) too: intsim.onnx_core reads, checks and
# shape-infers with the package's protobuf module and C++ extension alone
HEAVY = ("onnxruntime", "onnx", "ml_dtypes", "onnx.reference", "distributed", "dask", "hypothesis", "jsonschema")

PROBE = """
import json, sys
from intsim.cli import main
code = main(["run", sys.argv[1], "--input", sys.argv[2], "--output", sys.argv[3]])
print(json.dumps({"code": code, "loaded": [m for m in sys.argv[4].split(",") if m in sys.modules]}))
"""


@pytest.mark.parametrize("model", ["mobilenetv2_s.qdq_s8_pt", "mobilenetv2_s.qop_u8", "digits_cnn.qdq_u8_pc"])
def test_run_of_an_integer_model_imports_no_heavy_module(model, tmp_path):
    path = ROOT / "models" / f"{model}.onnx"
    inp = onnx.load(str(path)).graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    np.savez(tmp_path / "x.npz", **{inp.name: np.random.default_rng(0).random(shape).astype(np.float32)})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    r = subprocess.run([sys.executable, "-c", PROBE, str(path), str(tmp_path / "x.npz"), str(tmp_path / "y.npz"),
                        ",".join(HEAVY)], capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {"code": 0, "loaded": []}
    assert (tmp_path / "y.npz").exists()


def test_schema_shortcut_implies_the_reference_evaluator():
    """For every op of SCHEMA_IMPLIES_REFERENCE and every opset version from its entry up to the
    installed onnx's: a schema at that version means the evaluator runs the op (load_op, or a
    function body), i.e. supported_by_reference answers as its slow path would."""
    from onnx.reference.ops import load_op
    wrong = []
    for op, first in SCHEMA_IMPLIES_REFERENCE.items():
        for version in range(first, onnx.defs.onnx_opset_version() + 1):
            try:
                onnx.defs.get_schema(op, version, "")
            except Exception:  # noqa: BLE001 - no schema: the shortcut does not answer
                continue
            try:
                load_op("", op, version)
            except Exception:  # noqa: BLE001
                if not defined_by_function("", op, version):
                    wrong.append((op, version))
    assert wrong == []


def test_schema_shortcut_excludes_versions_the_evaluator_lacks():
    """The entries that start above 1 are needed: below them a schema exists but no kernel."""
    from onnx.reference.ops import load_op
    for op, first in SCHEMA_IMPLIES_REFERENCE.items():
        if first == 1:
            continue
        onnx.defs.get_schema(op, first - 1, "")
        with pytest.raises(Exception):
            load_op("", op, first - 1)
