"""The earlier fuzzing corpus (issue 20): every structural mutation of tests/fuzz/structural.py
(seed 0, on digits_cnn.qdq_s8_pt) and every committed crash reproducer in tests/fuzz/regressions
ends in exactly the error class and message recorded in fuzz_corpus_expected.json (or runs, where
the mutation leaves a valid model): a changed message is a reviewed change of this file."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import onnx
import pytest

import intsim
from intsim.errors import IntsimError
from tests.fuzz import harness as H
from tests.fuzz import structural as S

HERE = os.path.dirname(__file__)
EXPECTED = json.load(open(os.path.join(HERE, "fuzz_corpus_expected.json")))
QDQ = os.path.join(H.ROOT, "models", "digits_cnn.qdq_s8_pt.onnx")


def outcome(model_bytes: bytes) -> list:
    """["ok", "", ""] or ["error", class name, message] of loading and running one model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the float-island notice of a mutated graph
        try:
            prog = intsim.load(model_bytes)
            prog.run(H.make_feeds(prog, 1))
        except IntsimError as e:
            return ["error", type(e).__name__, str(e)]
    return ["ok", "", ""]


def test_every_mutator_has_an_expectation():
    assert sorted(EXPECTED) == sorted(S.MUTATORS)


@pytest.mark.parametrize("kind", sorted(S.MUTATORS))
def test_structural_mutation_ends_in_its_recorded_error(kind):
    m = S.MUTATORS[kind](onnx.load(QDQ), np.random.default_rng(0))
    assert outcome(m.SerializeToString()) == EXPECTED[kind]


def test_committed_reproducer_is_refused_by_name():
    path = os.path.join(H.ROOT, "tests", "fuzz", "regressions", "maxpool_stride0.onnx")
    assert outcome(H.model_bytes(path)) == [
        "error", "ShapeError", "node '/features/features.2/MaxPool': pool: kernel [2, 2], strides [2, 0] and "
                               "dilations [1, 1] must be >= 1 and pads [0, 0, 0, 0] >= 0"]
