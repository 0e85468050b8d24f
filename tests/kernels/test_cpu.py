"""kernels.cpu: host feature detection and the ISA choice (INTSIM_PORTABLE honoured)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from kernels import cpu

AVX512 = {"avx512f", "avx512bw", "avx512vnni", "avx2", "fma"}


def test_best_isa_order_on_synthetic_feature_sets():
    assert cpu.best_isa(AVX512, force_portable=False) == "avx512vnni"
    assert cpu.best_isa({"avxvnni", "avx2", "fma"}, force_portable=False) == "avxvnni"
    assert cpu.best_isa({"avx2", "fma"}, force_portable=False) == "avx2"
    assert cpu.best_isa({"avx2"}, force_portable=False) == "portable"      # no fma
    assert cpu.best_isa({"avx512vnni", "avx2", "fma"}, force_portable=False) == "avx2"  # no avx512f/bw
    assert cpu.best_isa(set(), force_portable=False) == "portable"
    assert cpu.best_isa(AVX512, force_portable=True) == "portable"


def test_has_vnni_needs_one_vpdpbusd_form():
    assert cpu.has_vnni(AVX512) and cpu.has_vnni({"avxvnni", "avx2"})
    assert not cpu.has_vnni({"avx2", "fma", "avx512f"})


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 flags only")
def test_host_features_agree_with_proc_cpuinfo():
    flags = _cpuinfo_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    feats = cpu.host_features()
    assert ("avx2" in flags) == ("avx2" in feats)
    assert ("avx512_vnni" in flags) == ("avx512vnni" in feats)
    assert ("avx_vnni" in flags) == ("avxvnni" in feats)


def test_missing_names_the_feature():
    for isa in ("avx512vnni", "avxvnni", "avx2"):
        runs = {"avx512vnni": cpu.has_avx512vnni, "avxvnni": cpu.has_avxvnni, "avx2": cpu.has_avx2}[isa]()
        reason = cpu.missing(isa)
        assert (reason == "") == runs
        if reason:
            assert isa in reason
    assert cpu.missing("portable") == ""
    with pytest.raises(ValueError):
        cpu.missing("neon")


@pytest.mark.parametrize("value,want_portable", [("1", True), ("0", False)])
def test_env_forces_portable(value, want_portable):
    env = dict(os.environ, INTSIM_PORTABLE=value)
    out = subprocess.run([sys.executable, "-c", "from kernels import cpu; print(cpu.best_isa())"],
                         env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    got = out.stdout.strip()
    if want_portable:
        assert got == "portable"
    else:
        assert got == cpu.best_isa(force_portable=False)
