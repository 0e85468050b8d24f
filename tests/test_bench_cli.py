"""`intsim bench --suite gemm --json -` prints rows with GOP/s for intsim, onnxruntime and NumPy
and the ratio, all measured in the same process (timing goals live in benchmarks/, not here)."""
from __future__ import annotations

import json
import subprocess
import sys


def _bench(*args):
    return subprocess.run([sys.executable, "-m", "intsim", "bench", *args], capture_output=True, text=True,
                          timeout=600)


def test_gemm_suite_json_has_ratios():
    r = _bench("--suite", "gemm", "--case", "square256", "--json", "-")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["suite"] == "gemm" and len(d["rows"]) == 1
    row = d["rows"][0]
    assert row["case"] == "square256"
    for k in ("intsim_gops", "ort_gops", "numpy_gops", "ratio"):
        assert row[k] > 0
    assert abs(row["ratio"] - row["intsim_gops"] / row["ort_gops"]) <= 1e-9 * row["ratio"]
    # both engines timed: the ort target's one reproduces onnxruntime, the exact one the int64 product
    from kernels.x86pairs import host_saturates_u8s8
    assert row["engine"] == ("x86-u8s8-pairs" if host_saturates_u8s8() else "exact")
    assert row["ort_equal"] is True and row["exact_equal"] is True
    assert row["exact_gops"] > 0
    assert abs(row["exact_ratio"] - row["exact_gops"] / row["ort_gops"]) <= 1e-9 * row["exact_ratio"]
    assert d["summary"]["exact_median_ratio"] == row["exact_ratio"]


def test_bad_arguments_exit_2():
    r = _bench("--suite", "gemm", "--case", "nope")
    assert r.returncode == 2 and "unknown gemm case" in r.stderr
    r = _bench("--suite", "gemm", "--runs", "3")
    assert r.returncode == 2 and "--runs" in r.stderr


def test_speed_tables_render_the_committed_results():
    """benchmarks/speed_tables.py turns the committed bench JSON into the README's tables: one
    row per case, ratios as stored."""
    from benchmarks import speed_tables as T
    for suite in ("gemm", "conv"):
        d = T._load(suite)
        table = T.kernel_table(suite)
        assert sum(1 for line in table.splitlines() if line.startswith("| ") and "---" not in line) == len(d["rows"]) + 1
        for r in d["rows"]:
            assert f"| {r['case']} |" in table and f"{r['ratio']:.2f}" in table
    d = T._load("models")
    assert T.models_table().count("\n") == len(d["rows"]) + 1
    d, table = T._load("ops"), T.ops_table()     # one row per case, a ratio per thread count
    cases = {r["case"] for r in d["rows"]}
    assert sum(1 for line in table.splitlines() if line.startswith("| ") and "---" not in line) == len(cases) + 1
    for r in d["rows"]:
        assert f"| {r['case']} |" in table and f"{r['ratio']:.2f}" in table
    d, table = T._load("zoo"), T.zoo_table()     # one row per model and form, a ratio per batch x threads
    pairs = {(r["model"], r["form"]) for r in d["rows"] if "ratio" in r}
    assert sum(1 for line in table.splitlines() if line.startswith("| ") and "---" not in line) == len(pairs) + 1
    for r in d["rows"]:
        assert f"| {r['model']} | {r['form']} |" in table and f"{r['ratio']:.2f}" in table
