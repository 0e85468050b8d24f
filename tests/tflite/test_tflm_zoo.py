"""TFLM (the `tflite-micro` package's interpreter) as a live oracle of target `tflite`: every zoo
model (models/tflite) through `intsim.verify(..., kernel_path="tflm")`, whole model and layer by
layer on TFLM's preserved tensors. Models the .tflite reader refuses are strict xfails keyed to
that refusal (zoo_expected); TFLM_DIFFERS are measured differences between TFLM's kernels and
TFLite's reference kernels, which target `tflite` models (strict xfails: a case that starts
passing fails)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import intsim
from intsim.errors import IntsimError
from models.build_tflite import HERE, NAMES

from .zoo_expected import Refused, expected

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed (pip install tflite-micro: the test extra)")

TFLM_DIFFERS = {
    "activations": "TFLM's int8 RELU6 differs from TFLite's reference ReluX where the input and output scales "
                   "differ (measured: 0.5% of the RELU6 outputs equal, up to 99 LSB)",
    "softmax": "TFLM's int8 FULLY_CONNECTED requantizes by MultiplyByQuantizedMultiplier, TFLite's reference kernel "
               "(target tflite) in float64 rounding half away from zero (rules.DoubleRequant): 1 of 80 logits "
               "1 LSB off; the softmax outputs are equal",
    "pool_fc_16x8": "TFLM's 16x8 FULLY_CONNECTED requantizes by MultiplyByQuantizedMultiplier, TFLite's reference "
                    "kernel in float64 (rules.DoubleRequant): 4 of 40 outputs 1 LSB off",
    "softmax_16x8": "TFLM's 16x8 FULLY_CONNECTED requantizes by MultiplyByQuantizedMultiplier, TFLite's reference "
                    "kernel in float64 (rules.DoubleRequant): the FC 92.5% equal, the outputs 96.25%, 1 LSB",
    "tconv_bmm_16x8": "TFLM's 16x8 FULLY_CONNECTED requantizes by MultiplyByQuantizedMultiplier, TFLite's reference "
                      "kernel in float64 (rules.DoubleRequant): the FC 93.8% equal, the outputs 83.3%, 1 LSB",
}
# models TFLM itself fails to run (measured with tflite-micro 0.dev20261023182759)
TFLM_FAILS = {"resize_16x8": "TFLM fails to invoke its int16 RESIZE_BILINEAR"}


def _case(name):
    exp = expected(name, "tflite", "reference")
    if isinstance(exp, Refused):
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=exp.error, reason=exp.text), id=name)
    if name in TFLM_FAILS:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=IntsimError,
                                                          reason=TFLM_FAILS[name]), id=name)
    if name in TFLM_DIFFERS:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                          reason=TFLM_DIFFERS[name]), id=name)
    return pytest.param(name, id=name)


@pytest.mark.parametrize("name", [_case(n) for n in NAMES])
def test_zoo_under_tflite_equals_tflm(name):
    x = np.load(HERE / f"{name}.npz")["input"]          # (S, 1, ...): batch-1 samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = intsim.load(HERE / f"{name}.tflite", target="tflite")
        rep = intsim.verify(HERE / f"{name}.tflite", {prog.graph.inputs[0]: x.reshape((-1,) + x.shape[2:])},
                            kernel_path="tflm")
    d = rep.as_dict()
    assert d["reference"] == "tflite (tflm)" and d["target"] == "tflite"
    assert d["tensors"], "no intermediate tensor compared"
    bad = [(t["tensor"], t["exact_fraction"]) for t in d["tensors"] if t["exact_fraction"] != 1.0]
    assert rep.passed and not bad, (d["outputs"], bad)


def test_tflm_reference_names_tensors_and_refuses_a_resize():
    """TFLM's tensors come back under the flatbuffer's names, stacked per sample; an input of
    another shape is refused (TFLM does not resize inputs), never run."""
    from intsim.verify.tflm_ref import TflmReference

    ref = TflmReference((HERE / "fc.tflite").read_bytes())
    name = next(iter(ref.inputs))
    x = np.load(HERE / "fc.npz")["input"]
    out = ref.run({name: x.reshape((-1,) + x.shape[2:])})
    assert set(out) <= ref.names() and name in out and out[name].shape[0] == x.shape[0]
    with pytest.raises(IntsimError, match="TFLM does not resize inputs"):
        ref.run({name: np.zeros((1, 2) + x.shape[3:], x.dtype)})
