"""kernels="reference" (issue 16): every op on its NumPy int64 twin, chosen once at prepare;
the committed models run bit-identically in both modes, under each family of targets, with
and without a narrow accumulator; the engine table picks what its key says."""
from __future__ import annotations

import numpy as np
import pytest

import intsim
from intsim.steps import engines

zoo = pytest.importorskip("models.zoo")
SMALL = [m for m in zoo.MODELS if m != "resnet18_s"]


def _counting(monkeypatch, key):
    """Wrap ENGINES[key] so the test sees its conv/gemm/batched calls."""
    calls = []
    e = engines.ENGINES[key]

    def wrap(fn, what):
        def counted(*args):
            calls.append(what)
            return fn(*args)
        return counted
    monkeypatch.setitem(engines.ENGINES, key, engines.Engine(e.name, wrap(e.conv, "conv"), wrap(e.gemm, "gemm"),
                                                            wrap(e.batched, "batched")))
    return calls


@pytest.mark.parametrize("form", zoo.FORMS)
@pytest.mark.parametrize("name", SMALL)
def test_committed_models_equal_in_reference_mode(name, form, monkeypatch):
    path = zoo.quantized_model(name, form)
    feeds = zoo.sample_inputs(name, 8, seed=11)
    fast = intsim.load(path).run(feeds)                 # fused lanes (no taps)
    _, fast_taps = intsim.load(path).run(feeds, taps=True)
    calls = _counting(monkeypatch, ("exact", "reference", False))
    ref, ref_taps = intsim.load(path, kernels="reference").run(feeds, taps=True)
    assert calls, "the reference engine ran no conv/matmul"
    for k in fast:
        assert np.array_equal(fast[k], ref[k]), k
    for node, tap in fast_taps.items():
        for t, v in tap["outputs"].items():
            assert np.array_equal(np.asarray(v), np.asarray(ref_taps[node]["outputs"][t])), (node, t)


@pytest.mark.parametrize("target", ["tflite", "cmsis-nn", "ort-avx2"])
def test_reference_mode_under_other_targets(target):
    path = zoo.quantized_model("mobilenetv2_s", "qdq_u8_pc")
    feeds = zoo.sample_inputs("mobilenetv2_s", 2, seed=5)
    a = intsim.load(path, target=target).run(feeds)
    b = intsim.load(path, target=target, kernels="reference").run(feeds)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_reference_mode_with_a_narrow_accumulator(monkeypatch):
    path = zoo.quantized_model("digits_dsconv", "qdq_u8_pc")
    feeds = zoo.sample_inputs("digits_dsconv", 4, seed=2)
    acc = intsim.Accumulator(bits=18, overflow="wrap")
    a = intsim.load(path, accumulator=acc).run(feeds)
    calls = _counting(monkeypatch, ("narrow", "reference", False))
    b = intsim.load(path, accumulator=acc, kernels="reference").run(feeds)
    assert calls
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_kernel_set_is_refused():
    with pytest.raises(intsim.IntsimError, match="kernels must be one of fast, reference, got 'turbo'"):
        intsim.load(zoo.quantized_model("digits_cnn", "qop_u8"), kernels="turbo")


@pytest.mark.parametrize("mode", ["exact", "x86-u8s8-pairs", "narrow"])
@pytest.mark.parametrize("kernels", engines.KERNEL_SETS)
@pytest.mark.parametrize("simd", [False, True])
def test_engine_table_key(mode, kernels, simd):
    e = engines.select(mode, kernels, simd)
    if kernels == "reference":
        assert "reference" in e.name
    elif simd and mode != "narrow":
        assert e.name.startswith("simd-")
    else:
        assert not e.name.startswith("simd-") and "reference" not in e.name
