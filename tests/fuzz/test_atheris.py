"""Acceptance 1 (atheris part): run tests/fuzz/atheris_load.py for a fixed time (60 s, or
INTSIM_ATHERIS_SECONDS) in a subprocess; it must finish without a finding or a crash."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (add it to the test extra)")

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.long
def test_atheris_runs_clean(tmp_path):
    seconds = int(os.environ.get("INTSIM_ATHERIS_SECONDS", "60"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = dict(os.environ, INTSIM_FUZZ_CORPUS=str(corpus))
    r = subprocess.run([sys.executable, os.path.join(HERE, "atheris_load.py"), f"-max_total_time={seconds}",
                        "-rss_limit_mb=8192", "-timeout=30", "-seed=1", "-max_len=2000000"],
                       capture_output=True, text=True, timeout=seconds + 600, env=env, cwd=str(tmp_path))
    tail = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == 0, tail
    assert "Done " in r.stdout + r.stderr, tail     # libFuzzer: "Done N runs in S second(s)"
