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
MANIFEST = json.loads((ROOT / "manifest_nq.json").read_text())["models"]
NAMES = [e["file"] for e in MANIFEST]


def _entry(name):
    return next(e for e in MANIFEST if e["file"] == name)


def _data(name):
    """The stored feeds and reference outputs by tensor name (the zoo's `input/NAME` and
    `reference/NAME` keys, tests/clients/zoo_table.py)."""
    return {k.split("/", 1)[1]: v for k, v in np.load(ROOT / _entry(name)["npz"]).items()}


def _load(name, target="ort"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # float-island notes (checked below by node)
        return intsim.load(ROOT / name, target=target)


def test_manifest_lists_every_committed_nq_model_small():
    on_disk = sorted(p.name for p in ROOT.glob("nq_*.onnx"))
    assert sorted(NAMES) == on_disk
    keys = {"file", "npz", "tool", "form", "config", "reference", "target", "note"}
    for e in MANIFEST:
        assert set(e) == keys, e
        assert (ROOT / e["file"]).stat().st_size < 200_000 and (ROOT / e["npz"]).is_file()
    assert {e["config"].split()[0] for e in MANIFEST if e["tool"].startswith("amd-quark")} == \
        {"A8W8", "XINT8", "A16W8", "A16W16", "U16W8"}


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
    out = prog.run({"input": d["input"]})["logits"]
    assert np.array_equal(out, _xint8_npu(onnx.load(ROOT / "nq_rescnn.quark_xint8.onnx"), d["input"]))
    # the NPU result is the model's own arithmetic, not onnxruntime's float one: not equal, same classes
    assert np.mean(np.argmax(out, 1) == np.argmax(d["logits"], 1)) >= 0.9


def _xint8_npu(m, x):
    """The XINT8 net on a shift-only int8 datapath, in plain NumPy int64 (independent of intsim):
    every scale 2**-e; conv/gemm acc = sum(x*w) + (b << (e_x + e_w - e_b)); y = clamp((acc +
    2**(n-1)) >> n) with n = e_x + e_w - e_y (pow2 = round half up); Relu is the clamp at 0; the
    residual add aligns both inputs to the finer grid, then shifts the same way."""
    c = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}

    def e(name):
        return int(round(-np.log2(float(c[name]))))

    def shift(acc, n, lo=-128):
        acc = np.asarray(acc, np.int64)
        y = (acc + (1 << (n - 1))) >> n if n > 0 else acc << -n
        return np.clip(y, lo, 127)

    def conv(xq, layer, ex):
        w, b = c[layer + ".weight_quantized"].astype(np.int64), c[layer + ".bias_quantized"].astype(np.int64)
        win = np.lib.stride_tricks.sliding_window_view(np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), (2, 3))
        acc = np.einsum("nchwij,ocij->nohw", win, w)
        k = ex + e(layer + ".weight_scale") - e(layer + ".bias_scale")
        return acc + (b << k)[None, :, None, None], ex + e(layer + ".weight_scale")

    e_in = e("input_scale")
    xq = np.clip(np.rint(x.astype(np.float64) * 2.0 ** e_in), -128, 127).astype(np.int64)
    acc, ea = conv(xq, "c1", e_in)
    e_r = e("/Relu_output_0_scale")
    r = shift(acc, ea - e_r, lo=0)
    acc, ea = conv(r, "c2", e_r)
    e_c = e("/c2/Conv_output_0_scale")
    c2 = shift(acc, ea - e_c)
    fine = max(e_c, e_r)
    e_a = e("/Relu_1_output_0_scale")
    a = shift((c2 << (fine - e_c)) + (r << (fine - e_r)), fine - e_a, lo=0)
    p = a.reshape(a.shape[0], a.shape[1], 4, 2, 4, 2).max(axis=(3, 5)).reshape(a.shape[0], -1)
    w, b = c["fc.weight_quantized"].astype(np.int64), c["fc.bias_quantized"].astype(np.int64)
    e_f = e("/Flatten_output_0_scale")
    assert e_f == e_a       # MaxPool and Flatten keep the add's quantization (codes move)
    ea = e_f + e("fc.weight_scale")
    acc = p @ w.T + (b << (ea - e("fc.bias_scale")))[None, :]
    e_y = e("logits_scale")
    return (shift(acc, ea - e_y).astype(np.float32) * np.float32(2.0 ** -e_y)).astype(np.float32)


def test_cli_run_fusion_option(tmp_path):
    """`intsim run --fusion integer` runs A16W8's 16-bit convs in integers; the default (`ort`)
    reproduces the stored session."""
    from intsim.cli import main
    d = _data("nq_rescnn.quark_a16w8.onnx")
    np.savez(tmp_path / "in.npz", input=d["input"])
    outs = {}
    for fusion in (None, "integer"):
        out = tmp_path / f"out_{fusion}.npz"
        args = ["run", str(ROOT / "nq_rescnn.quark_a16w8.onnx"), "--input", str(tmp_path / "in.npz"),
                "--output", str(out), "--quiet"] + (["--fusion", fusion] if fusion else [])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(args) == 0
        outs[fusion] = np.load(out)["logits"]
    assert np.array_equal(outs[None], d["logits"])
    assert not np.array_equal(outs["integer"], d["logits"])     # 16-bit integer convs round differently



def test_verify_and_overflow_follow_the_target_fusion(tmp_path):
    """`verify --target pow2` and `overflow --target pow2` see XINT8's convs as integer layers
    (the pow2 fusion policy), and explain every differing element against onnxruntime's float
    path by layer."""
    from intsim.cli import main
    d = _data("nq_rescnn.quark_xint8.onnx")
    np.savez(tmp_path / "in.npz", input=d["input"])
    model = str(ROOT / "nq_rescnn.quark_xint8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["verify", model, "--input", str(tmp_path / "in.npz"), "--target", "pow2", "--quiet",
                     "--json", str(tmp_path / "v.json")]) in (0, 1)
        assert main(["overflow", model, "--input", str(tmp_path / "in.npz"), "--target", "pow2", "--quiet",
                     "--json", str(tmp_path / "o.json")]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    assert {t["node"] for t in v["tensors"] if t["op"] in ("conv", "matmul")} == {"/c1/Conv", "/c2/Conv", "/fc/Gemm"}
    assert all("unexplained" not in t["explanations"] for t in v["tensors"])   # rounding ties, then propagation
    o = json.loads((tmp_path / "o.json").read_text())
    assert [layer["node"] for layer in o["layers"]] == ["/c1/Conv", "/c2/Conv", "/fc/Gemm"]


@pytest.mark.parametrize("name", ["nq_rescnn.quark_a16w8.onnx", "nq_rescnn.quark_a16w16.onnx",
                                  "nq_rescnn.quark_u16w8.onnx"])
def test_verify_names_every_difference_of_the_16bit_models_under_the_integer_policy(name):
    """Every element where the integer layers differ from onnxruntime's float ones has a cause,
    also where A16W16's 16x16 accumulators pass int32 (48-bit accumulator): verify's exact sums
    and |x||w| bounds are int64 (they wrapped at int32: 2 elements 'unexplained' and 2 false
    'saturation' before)."""
    from intsim.targets.registry import get_target
    from intsim.verify.core import verify
    acc = intsim.Accumulator(bits=48, overflow="exact") if "a16w16" in name else None
    feeds = {"input": _data(name)["input"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if acc is not None:     # the case this guards: accumulators past int32
            _, taps = intsim.load(ROOT / name, fusion="integer", accumulator=acc).run(feeds, taps=True)
            assert max(int(np.max(np.abs(np.r_[t["acc_min"], t["acc_max"]]))) for t in taps.values()
                       if "acc_max" in t) > 2**31
        target = get_target("ort")
        target.qdq_fusion = "integer"
        d = verify(str(ROOT / name), feeds, reference="ort-int8", target=target, accumulator=acc, max_lsb=1,
                   min_exact=0.0).as_dict()
    assert d["outputs"]["logits"]["max_abs_lsb"] == 1
    for view in ("whole_model", "layer_isolated"):
        counts = {c: v["count"] for c, v in d["explanations"][view]["classes"].items() if v["count"]}
        assert counts and not {"unexplained", "saturation"} & set(counts), (view, counts)


@pytest.mark.parametrize("name", [n for n in NAMES if "quark" in n])
def test_quark_models_run_every_layer_in_integers_under_the_integer_policy(name):
    """What the format means: every conv/gemm of each Quark model runs in integers (XINT8 on
    `pow2`; the others on `ort` with fusion="integer"; A16W16's 16x16 products need a 48-bit
    accumulator, the exact int32 model refuses them by name)."""
    target = "pow2" if "xint8" in name else "ort"
    acc = intsim.Accumulator(bits=48, overflow="exact") if "a16w16" in name else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = intsim.load(ROOT / name, target=target, fusion="integer", accumulator=acc)
        prog.run({"input": _data(name)["input"]})
    assert sorted(n.name for n in prog.graph.nodes if n.op in ("conv", "matmul")) == ["/c1/Conv", "/c2/Conv", "/fc/Gemm"]
    if "a16w16" in name:
        with pytest.raises(intsim.IntsimError, match="/c1/Conv.*leaves int32"):
            intsim.load(ROOT / name, fusion="integer").run({"input": _data(name)["input"]})
