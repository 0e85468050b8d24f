"""`intsim verify MODEL.tflite --reference tflite`: the TFLite interpreter (ai-edge-litert) as
the reference, whole model and layer by layer, on the zoo (models/tflite)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import intsim
from intsim.errors import IntsimError
from models.build_tflite import HERE, NAMES

from .zoo_expected import expected

pytest.importorskip("ai_edge_litert")

RUN = [n for n in NAMES if expected(n, "tflite", "reference") is None]
ROOT = Path(__file__).resolve().parents[2]
# zoo models whose every op has a tflite-builtin rule (the others are refused by name)
BUILTIN = [n for n in NAMES if expected(n, "tflite", "builtin") is None]


@pytest.mark.parametrize("name", RUN)
def test_zoo_equals_reference_kernels_whole_and_isolated(name):
    rep = intsim.verify(HERE / f"{name}.tflite", random=6, seed=3)
    d = rep.as_dict()
    assert d["reference"] == "tflite (reference)" and d["target"] == "tflite"
    assert rep.passed, d["outputs"]
    assert d["tensors"], "no intermediate tensor compared"
    for t in d["tensors"]:
        assert t["exact_fraction"] == 1.0 and t["isolated"] and t["isolated"]["exact_fraction"] == 1.0, t["tensor"]
    assert rep.first_divergence is None


@pytest.mark.parametrize("name", BUILTIN)
def test_zoo_builtin_path_defaults_to_tflite_builtin(name):
    rep = intsim.verify(HERE / f"{name}.tflite", random=6, seed=4, kernel_path="builtin")
    assert rep.target == "tflite-builtin" and rep.reference == "tflite (builtin)"
    assert rep.passed, rep.as_dict()["outputs"]


def test_divergence_is_located_and_classified():
    """Target ort (onnxruntime's float average) against TFLite's raw-code average: the
    AVERAGE_POOL_2D or the conv before it is the first divergence, mismatches are classified."""
    rep = intsim.verify(HERE / "avgpool.tflite", random=4, target="ort")
    d = rep.as_dict()
    assert not rep.passed and rep.first_divergence is not None
    assert rep.first_divergence["tensor"] in {t["tensor"] for t in d["tensors"]}
    iso = d["explanations"]["layer_isolated"]
    assert iso["mismatches"] > 0 and sum(c["count"] for c in iso["classes"].values()) == iso["mismatches"]


def test_reference_and_model_kind_must_match(tmp_path):
    with pytest.raises(IntsimError, match="its reference is 'tflite'"):
        intsim.verify(HERE / "fc.tflite", random=1, reference="ort-fakequant")
    with pytest.raises(IntsimError, match="unknown TFLite kernel path"):
        intsim.verify(HERE / "fc.tflite", random=1, kernel_path="gpu")
    onnx_models = sorted((ROOT / "models").glob("**/*.onnx"))
    if onnx_models:
        with pytest.raises(IntsimError, match="needs a .tflite model"):
            intsim.verify(onnx_models[0], random=1, reference="tflite")


def test_tflm_kernel_path_needs_tflite_micro():
    """Kernel path tflm runs TFLM (tests/tflite/test_tflm_zoo.py); without the tflite-micro package
    it is refused by name, and ai-edge-litert's reference class does not take it."""
    import importlib.util

    from intsim.verify.tflite_ref import TfliteReference

    with pytest.raises(IntsimError, match="runs in TFLM, not ai-edge-litert"):
        TfliteReference((HERE / "fc.tflite").read_bytes(), "tflm")
    if importlib.util.find_spec("tflite_micro") is None:
        with pytest.raises(IntsimError, match="needs the tflite-micro package"):
            intsim.verify(HERE / "fc.tflite", random=1, kernel_path="tflm")


def test_cli_kernel_path_json(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "intsim", "verify", str(HERE / "fc.tflite"), "--random", "3",
                        "--kernel-path", "builtin", "--json", "-", "--fail-on-mismatch"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["passed"] and d["target"] == "tflite-builtin" and d["reference"] == "tflite (builtin)"


# zoo models whose every op has a tflite-xnnpack rule
XNNPACK = [n for n in NAMES if expected(n, "tflite", "xnnpack") is None]


@pytest.mark.parametrize("name", XNNPACK)
def test_zoo_xnnpack_path_live_and_stored(name):
    import numpy as np

    rep = intsim.verify(HERE / f"{name}.tflite", random=6, seed=5, kernel_path="xnnpack")
    assert rep.target == "tflite-xnnpack" and rep.passed, rep.as_dict()["outputs"]
    stored = np.load(HERE / f"{name}.npz")
    prog = intsim.load(HERE / f"{name}.tflite", target="tflite-xnnpack")
    g = prog.graph
    for o in g.outputs:
        got = np.stack([prog.run({g.inputs[0]: x})[o] for x in stored["input"]])
        np.testing.assert_array_equal(got, stored[f"xnnpack/{o}"])


def test_xnnpack_int16_quantize_verifies(tmp_path):
    """An int16 QUANTIZE, left by XNNPACK to the builtin kernel (refused here before; the MEAN
    refused before that is modelled too: rules.XnnpackMean): tflite-xnnpack applies the builtin
    kernel's rule and verify against the interpreter's xnnpack path passes."""
    from .flatbuf import single_op

    path = tmp_path / "quantize16.tflite"
    path.write_bytes(single_op("QUANTIZE", [{"name": "x", "shape": [1, 8], "type": "float32"},
                                            {"name": "y", "shape": [1, 8], "type": "int16", "scale": 0.01,
                                             "zero_point": 0}], [0], [1], [0]))
    rep = intsim.verify(path, random=4, kernel_path="xnnpack")
    assert rep.target == "tflite-xnnpack" and rep.passed, rep.as_dict()["outputs"]


def test_lowered_conv_mismatches_are_classified_as_the_conv():
    """The conv's NHWC output Transpose is classified as the conv (accumulator terms), so
    onnxruntime's float requantization against TFLite's shows float-rounding mismatches."""
    rep = intsim.verify(HERE / "residual_add.tflite", random=8, target="ort")
    classes = rep.as_dict()["explanations"]["layer_isolated"]["classes"]
    assert classes["float-rounding"]["count"] > 0
