"""`--fusion onnxruntime|integer` on every command that imports an ONNX graph (`run`, `verify`,
`overflow`, `info`, `dump`; one shared option, intsim/cli/common.py): the QDQ fusion policy replaces the
target's (`info`, which has no target: onnxruntime's). Shown on AMD Quark's A16W8 model, whose
16-bit convs and residual add onnxruntime runs in float and the integer policy runs in integers."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from intsim.cli import main
from intsim.verify.core import verify

ROOT = Path(__file__).resolve().parents[2] / "models" / "clients"
MODEL = str(ROOT / "nq_rescnn.quark_a16w8.onnx")
INTEGER_LAYERS = ["/c1/Conv", "/c2/Conv", "/fc/Gemm"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("fusion") / "in.npz"
    np.savez(path, input=np.load(ROOT / "nq_rescnn.quark_a16w8.npz")["input/input"])
    return str(path)


def _cli(*args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # float-island notes
        return main(list(args))


def _integer_ops(tensors) -> dict:
    return {t["node"]: t["op"] for t in tensors if t["op"] in ("conv", "matmul", "add")}


@pytest.mark.parametrize("fusion", [None, "onnxruntime", "integer"])
def test_verify_fusion(tmp_path, inputs, fusion, capsys):
    out = tmp_path / "v.json"
    extra = ["--fusion", fusion] if fusion else []
    assert _cli("verify", MODEL, "--input", inputs, "--reference", "ort-int8", "--max-lsb", "1", "--min-exact", "0",
                "--quiet", "--json", str(out), *extra) == 0
    d = json.loads(out.read_text())
    assert d["fusion"] == (fusion or "onnxruntime")          # the report says which graph was compared
    assert f"(target ort, fusion {fusion or 'onnxruntime'})" in capsys.readouterr().out
    if fusion == "integer":
        assert _integer_ops(d["tensors"]) == {"/c1/Conv": "conv", "/c2/Conv": "conv", "/Add": "add",
                                              "/fc/Gemm": "matmul"}
        assert d["outputs"]["logits"]["max_abs_lsb"] == 1 and d["outputs"]["logits"]["exact_fraction"] < 1.0
        assert not any("unexplained" in t["explanations"] for t in d["tensors"])
    else:       # the `ort` target's own policy: onnxruntime's session, reproduced bit for bit
        assert _integer_ops(d["tensors"]) == {}
        assert d["passed"] and d["outputs"]["logits"]["exact_fraction"] == 1.0


def test_verify_fusion_reaches_the_worker_processes(inputs):
    """jobs=2 over 4 chunks: each worker imports with the policy; the report equals one process's."""
    feeds = {"input": np.load(inputs)["input"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = verify(MODEL, feeds, reference="ort-int8", fusion="integer", max_lsb=1, min_exact=0.0).as_dict()
        two = verify(MODEL, feeds, reference="ort-int8", fusion="integer", max_lsb=1, min_exact=0.0, jobs=2,
                     chunk=8).as_dict()
    assert _integer_ops(two["tensors"]) == _integer_ops(one["tensors"]) != {}
    assert two["outputs"] == one["outputs"]


def test_verify_api_refuses_an_unknown_policy(inputs):
    with pytest.raises(ValueError, match="unknown QDQ fusion policy 'int'"):
        verify(MODEL, {"input": np.load(inputs)["input"]}, fusion="int")


@pytest.mark.parametrize("fusion", [None, "integer"])
def test_overflow_fusion(tmp_path, inputs, fusion):
    out = tmp_path / "o.json"
    extra = ["--fusion", fusion] if fusion else []
    assert _cli("overflow", MODEL, "--input", inputs, "--quiet", "--json", str(out), *extra) == 0
    d = json.loads(out.read_text())
    if fusion == "integer":
        assert [layer["node"] for layer in d["layers"]] == INTEGER_LAYERS
    else:
        assert d["layers"] == [] and "float" in d["reason"]


def test_overflow_fusion_overrides_the_target_policy(tmp_path):
    """`--target pow2` means the integer policy; `--fusion onnxruntime` turns it back (XINT8: its
    int8 bias with its own scale keeps every conv float under onnxruntime's policy)."""
    model = str(ROOT / "nq_rescnn.quark_xint8.onnx")
    layers = {}
    for extra in ([], ["--fusion", "onnxruntime"]):
        out = tmp_path / f"o{len(extra)}.json"
        assert _cli("overflow", model, "--target", "pow2", "--quiet", "--json", str(out), *extra) == 0
        layers[len(extra)] = [layer["node"] for layer in json.loads(out.read_text())["layers"]]
    assert layers == {0: INTEGER_LAYERS, 2: []}


@pytest.mark.parametrize("fusion", [None, "integer"])
def test_info_fusion(tmp_path, fusion):
    out = tmp_path / "i.json"
    extra = ["--fusion", fusion] if fusion else []
    assert _cli("info", MODEL, "--json", str(out), *extra) == 0
    d = json.loads(out.read_text())
    ops = {layer["node"]: layer["op"] for layer in d["layers"] if layer["node"] in INTEGER_LAYERS + ["/Add"]}
    if fusion == "integer":
        assert ops == {"/c1/Conv": "conv", "/c2/Conv": "conv", "/Add": "add", "/fc/Gemm": "matmul"}
        assert d["float_islands"] == []
    else:
        assert set(ops.values()) == {"onnx"} and "/c1/Conv" in d["float_islands"]


@pytest.mark.parametrize("fusion", [None, "integer"])
def test_dump_fusion(tmp_path, inputs, fusion):
    """Golden vectors of the integer layers the policy makes: none of A16W8's under onnxruntime's
    (float convs, float add), the convs, the add and the Gemm under the integer policy."""
    extra = ["--fusion", fusion] if fusion else []
    assert _cli("dump", MODEL, "--input", inputs, "--out", str(tmp_path / "d"), "--quiet", *extra) == 0
    layers = json.loads((tmp_path / "d" / "manifest.json").read_text())["layers"]
    ops = {layer["node"]: layer["op"] for layer in layers if layer["node"] in INTEGER_LAYERS + ["/Add"]}
    assert ops == ({"/c1/Conv": "conv", "/c2/Conv": "conv", "/Add": "add", "/fc/Gemm": "matmul"}
                   if fusion else {})


@pytest.mark.parametrize("command", ["run", "verify", "overflow", "info", "dump"])
def test_an_unknown_policy_is_refused_by_the_parser(command, capsys):
    with pytest.raises(SystemExit) as e:
        _cli(command, MODEL, "--fusion", "fast")
    assert e.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err
