"""Issue 20, newcomer papercuts: --version, documented --help, the README's Python block,
bench's summary line, input shapes in `info`; and signs of life on stderr (the compile note on
a cold kernel cache, bench's cases, overflow --sweep's widths)."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

import intsim
from intsim.bench import format_summary
from intsim.targets import known_targets
from tests.hostile.conftest import ROOT


def test_version(cli, capsys):
    with pytest.raises(SystemExit) as e:
        cli("--version")
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"intsim {intsim.__version__}"


def _help(cli, capsys, *cmd):
    with pytest.raises(SystemExit):
        cli(*cmd, "--help")
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("cmd", ["info", "run", "verify", "overflow", "dump"])
def test_help_documents_the_model(cli, capsys, cmd):
    assert "model a quantized ONNX model file (QDQ, QOperator or QONNX)" in _help(cli, capsys, cmd)


def test_run_help_documents_input_output_and_targets(cli, capsys):
    text = _help(cli, capsys, "run")
    assert "--input F.npz .npz of the model's inputs" in text
    assert "--output F.npz .npz to write the model's outputs to" in text
    targets = re.search(r"requantization target: (.*?) \(default: ort\)", text).group(1)
    assert targets.replace("- ", "-").split(", ") == known_targets()


def test_bench_summary_is_one_readable_line():
    s = {"cases": 3, "median_ratio": 1.1, "min_ratio": 0.9, "max_ratio": 1.5,
         "exact_median_ratio": 1.0, "exact_min_ratio": 0.8}
    assert format_summary(s) == ("3 cases: speed vs onnxruntime (ort time / intsim time) median 1.10 "
                                 "(min 0.90, max 1.50); exact path median 1.00 (min 0.80)")
    assert format_summary({"cases": 0, "median_ratio": None}) == "0 cases, no ratio measured"


def test_readme_python_block_runs(monkeypatch):
    text = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(ROOT)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)   # noqa: S102 - the project's own README
    assert scope["outs"]["logits"].shape == (8, 10) and scope["rep"].passed


def test_info_shows_input_and_output_shapes(cli, digits):
    rc, out, _ = cli("info", digits["model"])
    assert rc == 0
    lines = out.splitlines()
    assert lines[1] == "inputs: input [?, 1, 8, 8] float32"
    assert lines[2] == "outputs: logits [?, 10] float32"


class _Args:
    def __init__(self, cmd="run", quiet=False):
        self.cmd, self.quiet = cmd, quiet


@pytest.mark.parametrize("tty,quiet,cmd,cold,shown", [
    (True, False, "run", True, True),
    (True, True, "run", True, False),       # --quiet
    (False, False, "run", True, False),     # stderr is not a terminal
    (True, False, "run", False, False),     # warm cache
    (True, False, "info", True, False),     # info compiles nothing
])
def test_compile_note_on_a_cold_cache(monkeypatch, capsys, tmp_path, tty, quiet, cmd, cold, shown):
    from intsim import cli
    import kernels.jit
    if not cold:
        (tmp_path / "k.nbi").write_bytes(b"")
    monkeypatch.setattr(kernels.jit, "cache_dir", lambda: str(tmp_path))
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: tty)
    cli.compile_note(_Args(cmd, quiet))
    assert capsys.readouterr().err == (cli.COMPILE_NOTE + "\n" if shown else "")
    assert cli.COMPILE_NOTE == "intsim: compiling kernels (first run, ~1 min)\u2026"


def test_bench_reports_each_case_on_stderr(monkeypatch, capsys):
    from intsim import bench
    monkeypatch.setattr(bench, "bench_gemm_case", lambda name, *a: {"case": name, "ratio": 1.25})
    cases = [("g1", 1, 1, 1), ("g2", 1, 1, 1)]
    rows = bench.run_suite("gemm", threads=1, runs=7, cases=cases, progress=bench.progress_line)
    assert [r["case"] for r in rows] == ["g1", "g2"]
    assert capsys.readouterr().err.splitlines() == ["bench [1/2] g1: ratio 1.25", "bench [2/2] g2: ratio 1.25"]
    bench.progress_line({"case": "m@b1", "error": "ValueError: x"}, 1, 4)
    assert capsys.readouterr().err == "bench [1/4] m@b1: error: ValueError: x\n"


def test_overflow_sweep_reports_each_width(digits, capsys):
    from intsim import import_onnx
    from intsim.overflow import sweep
    from intsim.cli.overflow import sweep_progress
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    sweep(import_onnx(digits["model"]), {"input": x}, range(30, 32), modes=("wrap",), progress=sweep_progress)
    assert capsys.readouterr().err.splitlines() == ["sweep [1/2] wrap 30 bits: mismatch 0.000000",
                                                    "sweep [2/2] wrap 31 bits: mismatch 0.000000"]
