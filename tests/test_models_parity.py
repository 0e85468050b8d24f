"""Acceptance 2 and 3 of the core: every model in models/, quantized by onnxruntime in the
three forms, gives onnxruntime's fully optimized (integer) output bit for bit on 64 inputs;
the digits CNN's test-set accuracy through intsim equals onnxruntime's int8 accuracy and is
within 1 point of the float model."""
from __future__ import annotations

import numpy as np
import pytest

import intsim
from tests.ortutil import run_ort

zoo = pytest.importorskip("models.zoo")

SMALL = [m for m in zoo.MODELS if m != "resnet18_s"]


def _quantized(name, form):
    try:
        return zoo.quantized_model(name, form)
    except RuntimeError as e:  # e.g. torch missing for a model that is built on demand
        pytest.skip(str(e))


@pytest.mark.parametrize("form", zoo.FORMS)
@pytest.mark.parametrize("name", SMALL)
def test_bit_exact_with_onnxruntime(name, form):
    path = _quantized(name, form)
    feeds = zoo.sample_inputs(name, 64, seed=7)
    want = run_ort(str(path), feeds, optimized=True)
    got = intsim.load(path).run(feeds)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=f"{name}/{form}/{k}")


@pytest.mark.slow
@pytest.mark.parametrize("form", zoo.FORMS)
def test_resnet18_bit_exact_with_onnxruntime(form):
    path = _quantized("resnet18_s", form)
    feeds = zoo.sample_inputs("resnet18_s", 8, seed=7)
    want = run_ort(str(path), feeds, optimized=True)
    got = intsim.load(path).run(feeds)
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=f"resnet18_s/{form}/{k}")


def test_digits_accuracy_matches_onnxruntime_int8():
    _, _, x_test, y_test = zoo.digits_split()
    fl = run_ort(str(zoo.float_model("digits_cnn")), {"input": x_test}, optimized=True)
    acc_float = float((list(fl.values())[0].argmax(1) == y_test).mean())
    for form in zoo.FORMS:
        path = _quantized("digits_cnn", form)
        o = list(run_ort(str(path), {"input": x_test}, optimized=True).values())[0]
        i = list(intsim.load(path).run({"input": x_test}).values())[0]
        acc_ort = float((o.argmax(1) == y_test).mean())
        acc_int = float((i.argmax(1) == y_test).mean())
        assert acc_int == acc_ort, form
        assert abs(acc_int - acc_float) <= 0.01, (form, acc_int, acc_float)


@pytest.mark.parametrize("target", ["ort-vnni", "ort-avx2"])
@pytest.mark.parametrize("name", SMALL)
def test_fast_engine_and_portable_kernels_agree_in_the_executor(name, target, monkeypatch):
    """The executor's SIMD paths (exact 8-bit sums; onnxruntime's AVX2 pair saturation) and the
    portable kernels give equal outputs."""
    import kernels.jit
    path = _quantized(name, "qdq_u8_pc")
    feeds = zoo.sample_inputs(name, 16, seed=11)
    fast = intsim.load(path, target=target).run(feeds)
    monkeypatch.setattr(kernels.jit, "FORCE_PORTABLE", True)
    portable = intsim.load(path, target=target).run(feeds)
    for k in fast:
        np.testing.assert_array_equal(fast[k], portable[k])


@pytest.mark.parametrize("form", zoo.FORMS)
@pytest.mark.parametrize("name", SMALL)
def test_fused_conv_requant_equals_the_accumulator_path(name, form, monkeypatch):
    """A run without taps takes the fused conv + requantization kernels where they are provably
    exact; a run with taps takes the int64 accumulator, the accumulator model and the separate
    requantizer. The outputs must agree, and the fused kernels must have run."""
    from intsim.steps import compute
    calls = []
    real = compute._fused_lane

    def counted(*a):
        lane = real(*a)
        return lambda env, x: calls.append(1) or lane(env, x)
    monkeypatch.setattr(compute, "_fused_lane", counted)
    path = _quantized(name, form)
    feeds = zoo.sample_inputs(name, 8, seed=3)
    prog = intsim.load(path)
    plain = prog.run(feeds)
    assert calls, "no conv took the fused path"
    n_fused = len(calls)
    tapped, _ = prog.run(feeds, taps=True)
    assert len(calls) == n_fused, "a run with taps must not take the fused path"
    for k in plain:
        np.testing.assert_array_equal(plain[k], tapped[k])
