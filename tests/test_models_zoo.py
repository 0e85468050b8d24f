"""The model zoo: committed models are valid ONNX, run in onnxruntime with optimizations on
and off, the float digits nets reach their accuracy, the quantized forms have the quantizer
settings their names promise, and the zoo API is deterministic and works without torch."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from models import zoo
from tests.ortutil import run_ort

REPO = Path(__file__).resolve().parents[1]
FLOAT_MIN_ACCURACY = 0.97


def _ops(path: Path) -> Counter:
    g = onnx.load(str(path)).graph
    return Counter(n.op_type for n in g.node)


def _accuracy(path: Path, optimized: bool) -> float:
    _, _, x_test, y_test = zoo.digits_split()
    out = run_ort(str(path), {zoo.INPUT_NAME: x_test}, optimized=optimized)[zoo.OUTPUT_NAME]
    return float((out.argmax(1) == y_test).mean())


ALL_COMMITTED = [(n, f) for n in zoo.COMMITTED for f in (None, *zoo.FORMS)]


@pytest.mark.parametrize("name,form", ALL_COMMITTED)
def test_committed_model_is_valid_onnx(name, form):
    path = zoo.committed_path(name, form)
    assert path.is_file(), f"{path} is not committed"
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == [zoo.INPUT_NAME]
    assert [o.name for o in m.graph.output] == [zoo.OUTPUT_NAME]
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param, "batch axis must be dynamic"
    assert tuple(d.dim_value for d in dims[1:]) == zoo.INPUT_SHAPES[name]


@pytest.mark.parametrize("optimized", [True, False])
@pytest.mark.parametrize("name,form", ALL_COMMITTED)
def test_committed_model_runs_in_onnxruntime(name, form, optimized):
    path = zoo.committed_path(name, form)
    for n in (1, 3):
        out = run_ort(str(path), zoo.sample_inputs(name, n, seed=n), optimized=optimized)[zoo.OUTPUT_NAME]
        assert out.shape == (n, 10) and out.dtype == np.float32
        assert np.isfinite(out).all()


def test_quantized_output_is_a_multiple_of_the_output_scale():
    """qop_u8 ends with DequantizeLinear: every logit is scale * (q - zp) for an integer q in u8."""
    path = zoo.committed_path("digits_cnn", "qop_u8")
    m = onnx.load(str(path))
    dq = [n for n in m.graph.node if n.output[0] == zoo.OUTPUT_NAME][0]
    assert dq.op_type == "DequantizeLinear"
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    scale, zp = inits[dq.input[1]], inits[dq.input[2]]
    out = run_ort(str(path), zoo.sample_inputs("digits_cnn", 32), optimized=True)[zoo.OUTPUT_NAME]
    q = np.rint(out / scale) + zp.astype(np.float64)
    assert q.min() >= 0 and q.max() <= 255
    np.testing.assert_array_equal(((q - zp) * scale).astype(np.float32), out)


@pytest.mark.parametrize("name", zoo.DIGITS)
def test_float_digits_accuracy(name):
    assert _accuracy(zoo.committed_path(name), optimized=True) >= FLOAT_MIN_ACCURACY


@pytest.mark.parametrize("optimized", [True, False])
@pytest.mark.parametrize("form", zoo.FORMS)
@pytest.mark.parametrize("name", zoo.DIGITS)
def test_quantized_digits_accuracy_close_to_float(name, form, optimized):
    acc_float = _accuracy(zoo.committed_path(name), optimized=True)
    acc_q = _accuracy(zoo.committed_path(name, form), optimized=optimized)
    assert abs(acc_q - acc_float) <= 0.01, (acc_q, acc_float)


def test_float_models_have_the_promised_structure():
    cnn, ds, mb = (_ops(zoo.committed_path(n)) for n in zoo.COMMITTED)
    for ops, n_conv in ((cnn, 2), (ds, 5), (mb, 52)):
        assert ops["Conv"] == n_conv and ops["BatchNormalization"] == n_conv and ops["Gemm"] == 1
    assert cnn["Relu"] == 2 and cnn["MaxPool"] == 1
    assert ds["Clip"] == 5 and ds["AveragePool"] == 1
    assert mb["Add"] == 10 and mb["GlobalAveragePool"] == 1 and mb["Clip"] == 35


def _conv_attrs(name):
    m = onnx.load(str(zoo.committed_path(name)))
    shapes = {t.name: t.dims for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Conv":
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            yield a.get("group", 1), tuple(shapes[n.input[1]]), tuple(a["strides"])


def test_depthwise_and_strided_convolutions_present():
    ds = list(_conv_attrs("digits_dsconv"))
    assert any(g > 1 and w[0] == g and w[1] == 1 for g, w, _ in ds)  # depthwise
    assert any(w[2:] == (1, 1) for _, w, _ in ds)  # pointwise
    mb = list(_conv_attrs("mobilenetv2_s"))
    assert sum(g > 1 and s == (2, 2) for g, _, s in mb) == 4  # stride-2 depthwise blocks
    assert sum(g > 1 for g, _, _ in mb) == 17


def _weight_dequantizers(path: Path):
    """(scale, zero point) of every DequantizeLinear whose input is an int8 initializer of rank 4 or 2."""
    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim in (2, 4):
            yield inits[n.input[0]], inits[n.input[1]], inits[n.input[2]]


def _activation_zero_point_dtypes(path: Path) -> set:
    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return {inits[n.input[2]].dtype for n in m.graph.node if n.op_type == "QuantizeLinear"}


@pytest.mark.parametrize("name", zoo.COMMITTED)
def test_qdq_u8_pc_form(name):
    path = zoo.committed_path(name, "qdq_u8_pc")
    assert _activation_zero_point_dtypes(path) == {np.dtype(np.uint8)}
    weights = list(_weight_dequantizers(path))
    assert weights and all(w.dtype == np.int8 for w, _, _ in weights)
    convs = [(w, s) for w, s, _ in weights if w.ndim == 4]
    assert all(s.shape == (w.shape[0],) for w, s in convs)  # one scale per output channel


@pytest.mark.parametrize("name", zoo.COMMITTED)
def test_qdq_s8_pt_form(name):
    path = zoo.committed_path(name, "qdq_s8_pt")
    assert _activation_zero_point_dtypes(path) == {np.dtype(np.int8)}
    weights = list(_weight_dequantizers(path))
    assert weights and all(w.dtype == np.int8 and s.ndim == 0 for w, s, _ in weights)


@pytest.mark.parametrize("name", zoo.COMMITTED)
def test_qop_u8_form(name):
    ops = _ops(zoo.committed_path(name, "qop_u8"))
    assert ops["QLinearConv"] == _ops(zoo.committed_path(name))["Conv"]
    assert ops["QuantizeLinear"] == 1 and ops["DequantizeLinear"] == 1
    assert "Conv" not in ops and "Gemm" not in ops


def test_digits_split_is_deterministic_and_stratified():
    a, b = zoo.digits_split(), zoo.digits_split()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_tr, y_tr, x_te, y_te = a
    assert x_tr.shape == (1347, 1, 8, 8) and x_te.shape == (450, 1, 8, 8)
    assert x_tr.dtype == x_te.dtype == np.float32 and y_tr.dtype == np.int64
    assert x_tr.min() == 0.0 and x_tr.max() == 1.0 and x_te.max() <= 1.0
    per_class = np.bincount(np.concatenate([y_tr, y_te]), minlength=10)
    assert np.all(np.abs(np.bincount(y_te, minlength=10) - per_class / 4) <= 1)  # stratified 25%


@pytest.mark.parametrize("name", zoo.MODELS)
def test_sample_inputs_shape_and_determinism(name):
    a = zoo.sample_inputs(name, 3, seed=5)[zoo.INPUT_NAME]
    assert a.shape == (3, *zoo.INPUT_SHAPES[name]) and a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, zoo.sample_inputs(name, 3, seed=5)[zoo.INPUT_NAME])
    assert not np.array_equal(a, zoo.sample_inputs(name, 3, seed=6)[zoo.INPUT_NAME])


def test_digits_samples_are_test_images():
    x_test = zoo.digits_split()[2].reshape(450, -1)
    s = zoo.sample_inputs("digits_cnn", 500, seed=1)[zoo.INPUT_NAME].reshape(500, -1)
    rows = {r.tobytes() for r in x_test}
    assert all(r.tobytes() in rows for r in s)


def test_calibration_reader_yields_n_samples_and_rewinds():
    reader = zoo.calibration_reader("digits_cnn", 37, batch=16)
    sizes = []
    while (feed := reader.get_next()) is not None:
        sizes.append(len(feed[zoo.INPUT_NAME]))
    assert sizes == [16, 16, 5]
    reader.rewind()
    first = reader.get_next()[zoo.INPUT_NAME]
    np.testing.assert_array_equal(first, zoo.digits_split()[0][:16])
    other = zoo.calibration_reader("mobilenetv2_s", 2).get_next()[zoo.INPUT_NAME]
    assert not np.array_equal(other, zoo.sample_inputs("mobilenetv2_s", 2)[zoo.INPUT_NAME])


def test_bad_names_raise():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        zoo.float_model("nope")
    with pytest.raises(ValueError, match="unknown quantization form 'int3'"):
        zoo.quantized_model("digits_cnn", "int3")
    with pytest.raises(ValueError, match="n must be"):
        zoo.sample_inputs("digits_cnn", 0)


def test_missing_torch_and_empty_cache_raise_model_unavailable(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "CACHE", tmp_path)
    monkeypatch.setitem(sys.modules, "models.build", None)  # import fails like a missing torch
    import models
    monkeypatch.delattr(models, "build", raising=False)  # an earlier test may have imported it
    with pytest.raises(zoo.ModelUnavailable, match="resnet18_s"):
        zoo.quantized_model("resnet18_s", "qop_u8")
    assert isinstance(zoo.ModelUnavailable("x"), RuntimeError)


def test_zoo_works_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from models import zoo\n"
            "p = zoo.quantized_model('digits_cnn', 'qop_u8'); zoo.sample_inputs('mobilenetv2_s', 1)\n"
            "assert 'torch' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
            "print(p.name)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "digits_cnn.qop_u8.onnx"


@pytest.mark.parametrize("form", zoo.FORMS)
def test_quantize_script_reproduces_committed_model(form, tmp_path):
    """Re-quantizing the committed float model gives the committed quantized model exactly."""
    from models import quantize
    out = quantize.quantize(zoo.committed_path("digits_cnn"), form, "digits_cnn", tmp_path / "q.onnx")
    assert out.read_bytes() == zoo.committed_path("digits_cnn", form).read_bytes()


def test_on_demand_quantization_goes_to_the_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "ROOT", tmp_path / "empty")  # nothing committed
    monkeypatch.setattr(zoo, "CACHE", tmp_path / "cache")
    src = REPO / "models" / "digits_dsconv.onnx"
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "digits_dsconv.onnx").write_bytes(src.read_bytes())
    path = zoo.quantized_model("digits_dsconv", "qdq_s8_pt")
    assert path == tmp_path / "cache" / "digits_dsconv.qdq_s8_pt.onnx"
    assert path.read_bytes() == (REPO / "models" / "digits_dsconv.qdq_s8_pt.onnx").read_bytes()
    assert zoo.quantized_model("digits_dsconv", "qdq_s8_pt") == path  # second call: no rebuild


@pytest.mark.slow
@pytest.mark.parametrize("form", zoo.FORMS)
def test_resnet18_s_quantized_runs(form):
    try:
        path = zoo.quantized_model("resnet18_s", form)
    except zoo.ModelUnavailable as e:
        pytest.skip(str(e))
    assert path.parent == zoo.CACHE
    onnx.checker.check_model(str(path))
    out = run_ort(str(path), zoo.sample_inputs("resnet18_s", 2), optimized=True)[zoo.OUTPUT_NAME]
    assert out.shape == (2, 1000) and np.isfinite(out).all()
