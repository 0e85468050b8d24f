"""The real clients zoo (models/clients/manifest*.json, see tests/clients/zoo_table.py): every
committed model runs in intsim, in integers, and equals its tool's stored reference outputs bit
for bit; where the reference runtime is installed (onnxruntime, qonnx) also live."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest

import intsim
from intsim.verify.refs import make_reference, qonnx_available

from .zoo_table import case, entries, integer_layers, model_entries, ort_layers

MODELS = model_entries()
IDS = [e["name"] for e in MODELS]


def _load(entry):
    path, feeds, ref = case(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return intsim.load(path, target=entry["target"]), feeds, ref


def test_the_manifests_list_models_and_say_why_an_export_failed():
    assert len(MODELS) >= 40
    for e in entries():
        assert {"file", "npz", "tool", "form", "config", "reference"} <= set(e), e
        assert e["file"] or e.get("error"), e


@pytest.mark.parametrize("entry", MODELS, ids=IDS)
def test_equals_the_stored_reference_bit_for_bit(entry):
    prog, feeds, ref = _load(entry)
    got = prog.run(feeds)
    for name, want in ref.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        diff = np.flatnonzero(got[name] != want)
        assert diff.size == 0, f"{name}: {diff.size} of {want.size} differ"


@pytest.mark.parametrize("entry", MODELS, ids=IDS)
def test_runs_in_integers_wherever_its_runtime_does(entry):
    """QONNX means integers: every Conv/Gemm is integer. Under onnxruntime's QDQ fusion
    (reference ort-int8, target ort) exactly the layers onnxruntime's optimizer fuses are."""
    prog, _, _ = _load(entry)
    ints, floats = integer_layers(prog.graph)
    if entry["reference"] == "ort-int8":
        assert (ints, len(floats)) == ort_layers(onnx.load(str(case(entry)[0]))), floats
    else:
        assert ints >= 3 and floats == []


def _live_available(reference: str) -> bool:
    return reference != "qonnx" or qonnx_available()


@pytest.mark.parametrize("entry", MODELS, ids=IDS)
def test_live_reference_equals_the_stored_one_and_intsim(entry):
    if not _live_available(entry["reference"]):
        pytest.skip(f"reference {entry['reference']} not installed")
    prog, feeds, ref = _load(entry)
    live = make_reference(entry["reference"], onnx.load(str(case(entry)[0]))).run(feeds)
    got = prog.run(feeds)
    for name, want in ref.items():
        assert np.array_equal(live[name], want), f"{name}: the runtime no longer gives the stored outputs"
        assert np.array_equal(got[name], live[name]), name


QONNX_MODELS = [e for e in MODELS if e["reference"] == "qonnx"]


@pytest.mark.skipif(not qonnx_available(), reason="qonnx not installed")
@pytest.mark.parametrize("entry", QONNX_MODELS, ids=[e["name"] for e in QONNX_MODELS])
def test_verify_against_qonnx_names_the_cause_of_every_intermediate_difference(entry):
    """qonnx computes a conv/Gemm with a float bias in float32 (its sum rounds); intsim sums
    exactly. A Quant input within that rounding of a .5 boundary may then differ by 1 LSB in
    an intermediate layer: verify classifies it float-rounding, never unexplained."""
    path, feeds, _ = case(entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = intsim.verify(str(path), feeds, reference="qonnx", target=entry["target"])
    assert all(o["max_abs_lsb"] == 0 for o in rep.outputs.values()), rep.outputs
    for view in ("whole_model", "layer_isolated"):
        assert rep.explanations[view]["classes"]["unexplained"]["count"] == 0, rep.explanations[view]
