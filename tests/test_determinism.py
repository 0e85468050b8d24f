"""Acceptance 3 of issue 8: results do not depend on the thread count of intsim's own
kernels (numba.set_num_threads 1 vs 2) nor on how a batch is split (one batch of 8 versus
8 runs of batch 1), on every committed quantized model. Plus acceptance 2: the whole kernel
test suite passes once with NUMBA_BOUNDSCHECK=1 (fresh cache, subprocess started in the
background by tests/conftest.py)."""
from __future__ import annotations

import glob
import os

import numba
import numpy as np
import pytest

import intsim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sorted(p for p in glob.glob(os.path.join(ROOT, "models", "*.onnx")) if ".q" in os.path.basename(p))


def _feeds(path, batch, seed=3):
    side = 96 if "mobilenet" in path else 8
    ch = 3 if "mobilenet" in path else 1
    return {"input": np.random.default_rng(seed).standard_normal((batch, ch, side, side)).astype(np.float32)}


@pytest.fixture(scope="module")
def programs():
    return {p: intsim.load(p) for p in MODELS}


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_thread_count_does_not_change_results(programs, path):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba was started with one thread")
    prog, feeds = programs[path], _feeds(path, 8)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = prog.run(feeds)
        numba.set_num_threads(2)
        two = prog.run(feeds)
    finally:
        numba.set_num_threads(before)
    assert one.keys() == two.keys()
    for k in one:
        np.testing.assert_array_equal(one[k], two[k], err_msg=f"{path}:{k}")


@pytest.mark.parametrize("path", MODELS, ids=os.path.basename)
def test_batch_split_does_not_change_results(programs, path):
    prog, feeds = programs[path], _feeds(path, 8)
    whole = prog.run(feeds)
    parts = [prog.run({"input": feeds["input"][i:i + 1]}) for i in range(8)]
    for k in whole:
        np.testing.assert_array_equal(whole[k], np.concatenate([p[k] for p in parts]), err_msg=f"{path}:{k}")


@pytest.mark.long
def test_kernel_suite_under_boundscheck(boundscheck_run):
    """All of tests/kernels once with NUMBA_BOUNDSCHECK=1 and a fresh NUMBA_CACHE_DIR: an
    out-of-bounds index in any jitted kernel raises IndexError instead of reading memory.
    The subprocess was started right after collection and ran beside the rest of the suite
    (tests/conftest.py says why and how); this test runs last and waits for it."""
    code, output, took, waited = boundscheck_run.wait(timeout=3600)
    print(f"\nkernel suite with NUMBA_BOUNDSCHECK=1: {took:.0f} s in the background, waited {waited:.0f} s")
    assert code == 0, output[-4000:]
