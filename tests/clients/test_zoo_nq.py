"""The NNCF and AMD Quark part of the clients zoo (models/clients/, built by
models/build_clients_nq.py; no exporter at test time).

Every committed model under the `ort` target equals the stored outputs of onnxruntime's
optimized session bit for bit, and a live session too; intsim runs in integers exactly the
conv/gemm nodes onnxruntime fuses (QLinearConv/QGemm), float where onnxruntime stays float (its
kept Relu, 16-bit activations, an int8 bias with its own scale). Under `pow2` the XINT8 model
(power-of-two NPU format) runs every conv/gemm in integers, its bias shifted onto the
accumulator."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

import intsim
from tests.ortutil import optimized_op_types, run_ort

ROOT = Path(__file__).resolve().parents[2] / "models" / "clients"
MANIFEST = json.loads((ROOT / "manifest_nq.json").read_text())
NAMES = [e["file"] for e in MANIFEST]


def _entry(name):
    return next(e for e in MANIFEST if e["file"] == name)


def _data(name):
    return dict(np.load(ROOT / _entry(name)["npz"]))


def _load(name, target="ort"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # float-island notes (checked below by node)
        return intsim.load(ROOT / name, target=target)


def test_manifest_lists_every_committed_nq_model_small():
    on_disk = sorted(p.name for p in ROOT.glob("nq_*.onnx"))
    assert sorted(NAMES) == on_disk
    keys = {"file", "npz", "tool", "form", "config", "reference"}
    for e in MANIFEST:
        assert set(e) == keys, e
        assert (ROOT / e["file"]).stat().st_size < 200_000 and (ROOT / e["npz"]).is_file()
    assert {e["config"] for e in MANIFEST if e["tool"].startswith("amd-quark")} == {"A8W8", "XINT8", "A16W8"}


@pytest.mark.parametrize("name", NAMES)
def test_ort_target_equals_stored_reference(name):
    d = _data(name)
    out = _load(name).run({"input": d["input"]})
    assert set(out) == set(d) - {"input"}
    for k, got in out.items():
        assert got.dtype == d[k].dtype and np.array_equal(got, d[k]), (k, float(np.mean(got == d[k])))


@pytest.mark.parametrize("name", NAMES)
def test_ort_target_equals_live_onnxruntime(name):
    d = _data(name)
    want = run_ort(onnx.load(ROOT / name), {"input": d["input"]})
    out = _load(name).run({"input": d["input"]})
    for k in want:
        assert np.array_equal(out[k], want[k]), k
        assert np.array_equal(want[k], d[k]), f"{k}: this onnxruntime differs from the stored reference"


@pytest.mark.parametrize("name", NAMES)
def test_integer_exactly_where_onnxruntime_fuses(name):
    """As many integer conv/matmul nodes as onnxruntime has QLinearConv/QGemm/QLinearMatMul, and
    every conv/gemm intsim leaves float carries its reason."""
    m = onnx.load(ROOT / name)
    fused = sum(t in ("QLinearConv", "QGemm", "QLinearMatMul") for t in optimized_op_types(m))
    prog = _load(name)
    ints = [n for n in prog.graph.nodes if n.op in ("conv", "matmul")]
    floats = [n for n in prog.graph.nodes if n.op == "onnx" and n.attrs["op_type"] in ("Conv", "Gemm", "MatMul")]
    assert len(ints) == fused, ([n.name for n in ints], fused)
    assert all(n.attrs.get("float_reason") for n in floats)
    assert len(ints) + len(floats) == 3      # c1, c2, fc


def test_quark_xint8_runs_every_layer_in_integers_under_pow2():
    prog = _load("nq_rescnn.quark_xint8.onnx", "pow2")
    ops = [n.op for n in prog.graph.nodes]
    assert ops.count("conv") == 2 and ops.count("matmul") == 1, ops
    assert not [n.name for n in prog.graph.nodes if n.op == "onnx" and n.attrs["op_type"] in ("Conv", "Gemm", "Add")]
    assert all("bias_scale" in n.attrs for n in prog.graph.nodes if n.op in ("conv", "matmul"))
    d = _data("nq_rescnn.quark_xint8.onnx")
    fast = prog.run({"input": d["input"]})["logits"]
    ref = intsim.load(ROOT / "nq_rescnn.quark_xint8.onnx", target="pow2", kernels="reference").run(
        {"input": d["input"]})["logits"]
    assert np.array_equal(fast, ref)
    # the NPU result is the model's own arithmetic, not onnxruntime's float one: report, do not equate
    assert np.mean(np.argmax(fast, 1) == np.argmax(d["logits"], 1)) >= 0.9
