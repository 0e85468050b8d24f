"""Acceptance 1 (hypothesis part): truncated, bit-flipped, overwritten and structurally
mutated versions of the committed models go through `intsim.load` and `run`; every case ends
in an `intsim.errors` exception or a result (`harness.run_case` lets anything else escape, and
fails a case slower than CASE_SECONDS). A hang is caught by faulthandler, which dumps the
stacks and exits after 60 s instead of blocking CI.

Cases tried are counted into CASES and printed at the end of the module."""
from __future__ import annotations

import collections
import faulthandler

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import intsim
from tests.fuzz import harness as H
from tests.fuzz import structural as S

CASES = collections.Counter()
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_BYTES = {p: H.model_bytes(p) for p in H.SMALL_MODEL_PATHS}
models = st.sampled_from(H.SMALL_MODEL_PATHS)


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    H.warm_up()     # compile the kernels once, outside the per-case time limit and watchdog


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(60, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def _case(kind, model):
    out = H.run_case(model)
    CASES[(kind, out.split(":")[0])] += 1
    return out


@FUZZ
@given(models, st.integers(0, 10**9))
def test_truncated(path, cut):
    data = _BYTES[path]
    out = _case("truncate", H.truncate(data, cut))
    if cut % len(data) < len(data) - 64:
        assert out != "ok"   # a model without its tail has lost part of its graph


@FUZZ
@given(models, st.lists(st.integers(0, 10**9), min_size=1, max_size=6))
def test_bit_flips(path, positions):
    _case("bitflip", H.flip_bits(_BYTES[path], positions))


@FUZZ
@given(models, st.integers(0, 10**9), st.binary(min_size=1, max_size=16))
def test_overwrite(path, at, chunk):
    _case("overwrite", H.overwrite(_BYTES[path], at, chunk))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(models, st.lists(st.sampled_from(sorted(S.MUTATORS)), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_structural(path, kinds, seed):
    rng = np.random.default_rng(seed)
    m = onnx.load(path)
    for k in kinds:
        m = S.MUTATORS[k](m, rng)
    _case("structural", m)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from([p for p in H.SMALL_MODEL_PATHS if "qdq" in p or "qop" in p]),
       st.sampled_from(S.BAD_SCALES), st.integers(0, 2**32 - 1))
def test_fed_scales(path, value, seed):
    """A scale turned into a graph input, fed a hostile value: an error (or, for values that are
    valid scales, a result equal to the constant model's with that scale)."""
    rng = np.random.default_rng(seed)
    m = S.mutate_input_to_scale_feed(onnx.load(path), rng)
    name = m.graph.input[-1].name
    prog = intsim.load(m)
    feeds = {"input": np.random.default_rng(seed).standard_normal((2, 1, 8, 8)).astype(np.float32)}
    shape = prog.graph.tensors[name].shape or ()
    feeds[name] = np.full(shape, value, np.float32)
    try:
        got = prog.run(feeds)
    except intsim.IntsimError:
        CASES[("fed_scale", "run")] += 1
        assert not (np.isfinite(value) and value > 0) or value < 1e-30 or value > 1e30
        return
    CASES[("fed_scale", "ok")] += 1
    assert np.isfinite(value) and value > 0
    const = onnx.load(path)
    for i in const.graph.initializer:
        if i.name == name:
            i.CopyFrom(onnx.numpy_helper.from_array(feeds[name], name))
    want = intsim.load(const).run({"input": feeds["input"]})
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def teardown_module(module):
    total = sum(CASES.values())
    print(f"\nfuzz cases tried: {total}: " + ", ".join(f"{k[0]}/{k[1]}={v}" for k, v in sorted(CASES.items())))
