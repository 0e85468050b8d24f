"""kernels.jit: the Numba cache directory is keyed by every kernels/**/*.py source, so a change to
one module can never leave a cached caller (which inlined it) running stale code."""
import shutil
from pathlib import Path

import kernels.jit as jit
from kernels.simd import drivers


def test_tag_follows_every_kernel_source(tmp_path, monkeypatch):
    for p in Path(jit._HERE).rglob("*.py"):
        (tmp_path / p.relative_to(jit._HERE)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / p.relative_to(jit._HERE))
    monkeypatch.setattr(jit, "_HERE", str(tmp_path))
    base = jit.source_tag()
    assert base == jit.source_tag()
    with open(tmp_path / "simd" / "microkernels.py", "a") as f:    # a callee module in a subpackage
        f.write("\n# changed\n")
    assert jit.source_tag() != base


def test_kernels_cache_under_the_tagged_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert jit.cache_dir() == str(tmp_path / ("intsim-" + jit._TAG))
    path = drivers._drive_avx2._cache._cache_path
    assert ("intsim-" + jit._TAG) in path
    import numba
    assert numba.config.CACHE_DIR != jit.cache_dir()     # the global setting is restored after decorating


def test_read_only_install_uses_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(jit, "_writable", lambda path: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jit.cache_dir() == str(tmp_path / "intsim" / "numba" / ("intsim-" + jit._TAG))
    monkeypatch.setattr(jit, "_writable", lambda path: True)
    assert jit.cache_dir().startswith(jit._HERE)
