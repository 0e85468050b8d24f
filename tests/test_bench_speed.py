"""`intsim bench --suite ops`, `intsim bench --profile MODEL` and `intsim warmup`: what they
print (timings are measured in benchmarks/, never asserted here)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx

MODELS = Path(__file__).resolve().parent.parent / "models"


def _intsim(*args):
    return subprocess.run([sys.executable, "-m", "intsim", *args], capture_output=True, text=True, timeout=600)


def test_ops_suite_one_case_json():
    r = _intsim("bench", "--suite", "ops", "--case", "gemm.mobilenetv2.expand7", "--runs", "7", "--json", "-")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["suite"] == "ops" and d["threads"] == 2 and len(d["rows"]) == 1
    row = d["rows"][0]
    assert row["case"] == "gemm.mobilenetv2.expand7" and row["op"] == "QLinearMatMul"
    assert row["shape"] == [49, 160, 960]
    for k in ("intsim_gops", "ort_gops", "intsim_ms", "ort_ms", "ratio"):
        assert row[k] > 0
    assert row["runs"]["intsim"] == row["runs"]["ort"] == 7
    assert isinstance(row["ort_equal"], bool)
    assert set(d["summary"]) >= {"cases", "median_ratio", "min_ratio", "max_ratio"}


def test_ops_suite_lists_its_cases():
    r = _intsim("bench", "--suite", "ops", "--case", "nope")
    assert r.returncode == 2 and "unknown ops case" in r.stderr and "smallk.12544x32x288" in r.stderr
    assert "conv.mobilenetv2.dw7" in r.stderr


def test_profile_names_every_node():
    path = MODELS / "digits_cnn.qop_u8.onnx"
    r = _intsim("bench", "--profile", str(path), "--runs", "1")
    assert r.returncode == 0, r.stderr
    names = [n.name for n in onnx.load(str(path)).graph.node]
    table = r.stdout.splitlines()
    assert table[1].split()[:3] == ["node", "intsim", "op"]
    rows = {line.split()[0]: line.split() for line in table[3:-1]}
    for n in names:
        assert n in rows, (n, r.stdout)
        assert rows[n][2] != "-"                      # an intsim time for every node of the model
    assert sum(1 for n in names if rows[n][-1] != "-") >= len(names) - 1   # paired with onnxruntime's
    r = _intsim("bench", "--profile", str(path), "--runs", "1", "--json", "-")
    d = json.loads(r.stdout)
    assert {row["node"] for row in d["rows"]} >= set(names) and d["runs"] == 1


def test_warmup_runs_each_model(tmp_path):
    for name in ("digits_cnn.qop_u8.onnx", "digits_cnn.onnx"):
        shutil.copy(MODELS / name, tmp_path / name)
    r = _intsim("warmup", "--models", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "warmup: 2 of 2 models run in" in r.stdout
    assert r.stderr == ""               # no progress lines when stderr is not a terminal
    r = _intsim("warmup", "--models", str(tmp_path / "none"))
    assert r.returncode == 2 and "no .onnx models" in r.stderr


def test_warmup_models_take_every_zoo_form_and_engine_path():
    """`intsim warmup` runs models/warmup/ by default: the CNN and the audio net in each static
    zoo form and the encoder in each zoo form (the forms decide the kernels' activation dtypes and
    QDQ/QOperator steps), with grouped, depthwise 3x3 and 5x5 convs, squeeze-excite gates,
    1-D convs with a float ReduceMean tail, and attention."""
    from intsim.cli import warmup
    from models import zoo
    names = {p.name for p in warmup.model_paths(warmup.WARMUP_MODELS)}
    static = [f for f in zoo.ARCH_FORMS if not f.startswith("dynamic")]
    assert names == {f"{net}.{f}.onnx" for net in ("cnn", "audio") for f in static} | \
        {f"encoder.{f}.onnx" for f in zoo.ARCH_FORMS}
    ops = {}
    for name in names:
        g = onnx.load(str(warmup.WARMUP_MODELS / name)).graph
        ops[name] = {n.op_type for n in g.node}
        if name.startswith("cnn."):
            groups = {a.i for n in g.node if n.op_type in ("Conv", "QLinearConv") for a in n.attribute
                      if a.name == "group"}
            kernels = {tuple(a.ints) for n in g.node if n.op_type in ("Conv", "QLinearConv") for a in n.attribute
                       if a.name == "kernel_shape"}
            assert {4, 12, 64} <= groups and {(1, 1), (3, 3), (5, 5)} <= kernels, name
    assert {"QLinearConv", "QLinearMul", "QLinearSigmoid", "QLinearConcat", "QGemm"} <= ops["cnn.qop_s8.onnx"]
    assert {"QLinearMatMul", "QLinearSoftmax"} & ops["encoder.qop_u8.onnx"]
    assert "QAttention" in ops["encoder.dynamic_opt.onnx"]
    assert "DynamicQuantizeLinear" in ops["encoder.dynamic.onnx"]
    for f in static:        # the float mean island (kernels.ort_mean) behind 1-D convs
        assert "ReduceMean" in ops[f"audio.{f}.onnx"] and {"Conv", "QLinearConv"} & ops[f"audio.{f}.onnx"], f
