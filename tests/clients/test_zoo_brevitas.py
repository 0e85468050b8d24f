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
