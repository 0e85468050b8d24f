"""The architecture zoo (models.arch: torchvision's MobileNetV3-Small, EfficientNet-B0,
ShuffleNetV2 x1.0, RegNetX-400MF, SqueezeNet 1.1, ResNet-50, plus a Conv1d audio net and a small
transformer encoder; random weights) quantized by onnxruntime's quantize_static (QDQ and
QOperator, uint8 and int8 activations) and quantize_dynamic (the encoder): intsim's `ort` target equals
onnxruntime's optimized session bit for bit, with every conv/matmul/gemm in integers (static
forms). Reduced input size (64x64 images, 4571-sample audio) and batch 1 keep CI small; the
models are built into models/cache/arch/ on first use (needs torch)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import intsim
from models import zoo
from tests.ortutil import run_ort

pytest.importorskip("onnxruntime")

RES = 64
CNNS = ("mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "regnet_x_400mf", "squeezenet1_1",
        "resnet50")
STATIC = ("qdq_u8", "qdq_s8", "qop_u8", "qop_s8")

# torchvision's own parameter counts (the `num_params` of each model's IMAGENET1K_V1 weights
# meta in torchvision/models/*.py): the re-implementations must have exactly these
TORCHVISION_PARAMS = {"mobilenet_v3_small": 2542856, "efficientnet_b0": 5288548, "shufflenet_v2_x1_0": 2278604,
                      "regnet_x_400mf": 5495976, "squeezenet1_1": 1235496, "resnet50": 25557032}


def quantized(name: str, form: str | None):
    """The cached model (float if form is None), skipping where it cannot be built (no torch)."""
    try:
        return zoo.arch_float_model(name, RES) if form is None else zoo.arch_quantized_model(name, form, RES)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))


def check_equal(name: str, form: str, n_inputs: int = 2) -> None:
    path = quantized(name, form)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = intsim.load(str(path), target="ort")
    islands = [str(w.message) for w in caught if "float islands" in str(w.message)]
    if form != "dynamic":       # quantize_dynamic leaves activation x activation MatMuls float, as onnxruntime runs them
        assert not islands, islands
    for seed in range(n_inputs):
        feeds = {zoo.INPUT_NAME: zoo.arch_inputs(name, 1, 100 + seed, RES)}
        want = run_ort(str(path), feeds)[zoo.OUTPUT_NAME]
        got = prog.run(feeds)[zoo.OUTPUT_NAME]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_arch_names_agree():
    torch = pytest.importorskip("torch")  # noqa: F841
    from models import arch
    assert set(arch.ARCHS) == set(zoo.ARCHS)


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_counts_equal_torchvision(name):
    pytest.importorskip("torch")
    from models import arch
    model = arch.ARCHS[name]()
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]


def test_regnet_x_400mf_stages():
    """torchvision's RegNetX-400MF: stage widths 32, 64, 160, 400, depths 1, 2, 7, 12, group width 16."""
    pytest.importorskip("torch")
    from models import arch
    assert arch.regnet_stages(**arch.REGNET_X_400MF) == [(32, 1, 16), (64, 2, 16), (160, 7, 16), (400, 12, 16)]


@pytest.mark.parametrize("form", STATIC)
def test_audio_conv1d_equals_onnxruntime(form):
    check_equal("audio_conv1d", form)


@pytest.mark.parametrize("form", STATIC + ("dynamic",))
def test_tiny_encoder_equals_onnxruntime(form):
    check_equal("tiny_encoder", form)


@pytest.mark.slow
@pytest.mark.parametrize("form", STATIC)
@pytest.mark.parametrize("name", CNNS)
def test_cnn_equals_onnxruntime(name, form):
    check_equal(name, form)


def test_regnet_batch_slices_side_by_side_equal_onnxruntime():
    """RegNetX's grouped convs (kernels.grouped_nhwc) with the batch split over 2 Python threads
    (Program.run(threads=2): the slices share one bound call each): equal to onnxruntime run after
    run (the slices once raced on one padded copy)."""
    path = quantized("regnet_x_400mf", "qop_u8")
    prog = intsim.load(str(path), target="ort")
    assert prog._parts({zoo.INPUT_NAME: zoo.arch_inputs("regnet_x_400mf", 4, 0, RES)}, 2) == 2
    for seed in range(3):
        feeds = {zoo.INPUT_NAME: zoo.arch_inputs("regnet_x_400mf", 4, 200 + seed, RES)}
        want = run_ort(str(path), feeds)[zoo.OUTPUT_NAME]
        for _ in range(40):
            np.testing.assert_array_equal(prog.run(feeds, threads=2)[zoo.OUTPUT_NAME], want)


def test_mobilenet_v3_keeps_hard_activations():
    """The float export keeps HardSwish and the squeeze-excite HardSigmoid; onnxruntime's
    quant_pre_process rewrites HardSwish as x * HardSigmoid(x), which the quantized forms carry."""
    import onnx
    ops = {n.op_type for n in onnx.load(str(quantized("mobilenet_v3_small", None))).graph.node}
    assert {"HardSwish", "HardSigmoid"} <= ops
    q = {n.op_type for n in onnx.load(str(quantized("mobilenet_v3_small", "qop_u8"))).graph.node}
    assert {"HardSigmoid", "QLinearMul", "QLinearConv"} <= q


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.arch_input_shape("vgg16")
    with pytest.raises(ValueError, match="unknown quantization form"):
        zoo.arch_quantized_model("resnet50", "qdq_u4", RES)
    with pytest.raises(ValueError, match="input size"):
        zoo.arch_input_shape("resnet50", 8)


def test_bench_zoo_suite_row(tmp_path):
    """`intsim bench --suite zoo` on one small case: a row per threads x batch with both medians,
    their ratio and a 100% equal column (intsim's `ort` target is bit-exact on the zoo)."""
    import json
    import subprocess
    import sys
    quantized("audio_conv1d", "qop_u8")
    out = tmp_path / "zoo.json"
    r = subprocess.run([sys.executable, "-m", "intsim", "bench", "--suite", "zoo", "--case", "audio_conv1d",
                        "--form", "qop_u8", "--res", str(RES), "--threads", "1", "--batch", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert [(x["model"], x["form"], x["batch"], x["threads"]) for x in d["rows"]] == [("audio_conv1d", "qop_u8", 2, 1)]
    row = d["rows"][0]
    assert row["equal_pct"] == 100.0 and row["ort_equal"] is True
    assert row["intsim_ms"] > 0 and row["ort_ms"] > 0 and abs(row["ratio"] - row["ort_ms"] / row["intsim_ms"]) < 1e-9
    assert "| audio_conv1d | qop_u8 | 2 | 1 |" in r.stdout


def test_bench_zoo_bad_arguments():
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "intsim", "bench", "--suite", "zoo", "--case", "vgg16"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "unknown zoo model" in r.stderr
    r = subprocess.run([sys.executable, "-m", "intsim", "bench", "--suite", "gemm", "--res", "64"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "--suite zoo only" in r.stderr
