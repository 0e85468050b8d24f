"""verify and overflow over a dataset on Dask distributed (issue 19): the merged JSON of a local
cluster of 2 workers equals a --jobs 1 run's, byte for byte; without dask, --scheduler is
refused in one line and --jobs N keeps working."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from intsim.cli import main
from intsim.runtime import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "digits_cnn.qdq_u8_pc.onnx")
needs_dask = pytest.mark.skipif(not distributed.available(), reason="dask distributed is not installed")


def _samples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """16 samples in two .npz files."""
    d = tmp_path_factory.mktemp("samples")
    x = _samples(16)
    np.savez(d / "a.npz", input=x[:8])
    np.savez(d / "b.npz", input=x[8:])
    return str(d)


@pytest.fixture
def clients(monkeypatch):
    """The Dask clients the run opened (to check that Dask ran the chunks)."""
    opened = []
    real = distributed.client

    def spy(jobs, scheduler=None):
        c = real(jobs, scheduler)
        opened.append(c)
        return c
    monkeypatch.setattr(distributed, "client", spy)
    return opened


def _run(*args) -> int:
    return main([str(a) for a in args])


@needs_dask
def test_verify_on_a_local_cluster_of_2_workers_equals_jobs_1(folder, tmp_path, clients):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert _run("verify", MODEL, "--input", folder, "--json", one, "--quiet") == 0
    assert not clients
    assert _run("verify", MODEL, "--input", folder, "--json", two, "--jobs", 2, "--quiet") == 0
    assert len(clients) == 1
    assert one.read_bytes() == two.read_bytes()


@needs_dask
def test_overflow_on_a_scheduler_of_2_workers_equals_jobs_1(folder, tmp_path, clients):
    npz = tmp_path / "x.npz"
    np.savez(npz, input=_samples(16, seed=1))
    one, two, three = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "three.json"
    base = ("overflow", MODEL, "--input", npz, "--acc-bits", 16, "--quiet", "--json")
    assert _run(*base, one) == 0
    with distributed._dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster:
        assert _run(*base, two, "--scheduler", cluster.scheduler_address) == 0
    assert _run(*base, three, "--jobs", 2) == 0
    assert len(clients) == 2
    assert one.read_bytes() == two.read_bytes() == three.read_bytes()
    assert b'"overflow_events": 0' not in one.read_bytes()      # 16 bits overflows: events are merged


def test_without_dask_scheduler_is_refused_in_one_line(folder, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "_dd", None)
    for cmd in ("verify", "overflow"):
        assert _run(cmd, MODEL, "--input", folder, "--scheduler", "tcp://127.0.0.1:1", "--quiet") == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "'distributed'" in err and "--scheduler" in err


def test_without_dask_jobs_keeps_working(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "_dd", None)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    base = ("overflow", MODEL, "--input", folder, "--acc-bits", 16, "--quiet", "--json")
    assert _run(*base, one) == 0 and _run(*base, two, "--jobs", 2) == 0
    assert one.read_bytes() == two.read_bytes()
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    assert _run("verify", MODEL, "--input", folder, "--json", v1, "--quiet") == 0
    assert _run("verify", MODEL, "--input", folder, "--json", v2, "--jobs", 2, "--quiet") == 0
    assert v1.read_bytes() == v2.read_bytes()


def test_chunks_cover_every_worker():
    assert distributed.chunk_size(16, 2, 32, False) == 8
    assert distributed.chunk_size(16, 2, 32, True) == 2
    assert distributed.chunk_size(1000, 2, 32, False) == 32
    assert distributed.chunk_size(1, 4, 32, True) == 1
