"""Host CPU features and the instruction set the fast kernels may use.

`best_isa()` picks, in order, "avx512vnni" (vpdpbusd on zmm), "avxvnni" (VEX vpdpbusd on ymm),
"avx2" (vpmaddwd on ymm, int16 pairs) or "portable" (plain Numba loops). INTSIM_PORTABLE=1 in
the environment (read once, in kernels.jit) forces "portable". A kernel that uses an ISA is
compiled lazily, on its first call, so code for a missing feature is never compiled here.
"""
from __future__ import annotations

import functools

from . import jit

ISAS = ("avx512vnni", "avxvnni", "avx2", "portable")


@functools.lru_cache(maxsize=1)
def host_features() -> frozenset:
    """The features LLVM reports as present on this host ("avx2", "avx512vnni", ...)."""
    from llvmlite import binding as ll
    feats = ll.get_host_cpu_features()
    return frozenset(name for name, on in feats.items() if on)


def has_avx2(features=None) -> bool:
    f = host_features() if features is None else features
    return "avx2" in f and "fma" in f


def has_avx512vnni(features=None) -> bool:
    f = host_features() if features is None else features
    return {"avx512f", "avx512bw", "avx512vnni"} <= set(f)


def has_avxvnni(features=None) -> bool:
    f = host_features() if features is None else features
    return "avxvnni" in f and "avx2" in f


def has_vnni(features=None) -> bool:
    """True when some vpdpbusd form (EVEX zmm or VEX ymm) executes on this host."""
    return has_avx512vnni(features) or has_avxvnni(features)


def best_isa(features=None, force_portable: bool | None = None) -> str:
    """The fastest path usable here; "portable" when INTSIM_PORTABLE=1 (or force_portable)."""
    portable = jit.FORCE_PORTABLE if force_portable is None else force_portable
    if portable:
        return "portable"
    if has_avx512vnni(features):
        return "avx512vnni"
    if has_avxvnni(features):
        return "avxvnni"
    if has_avx2(features):
        return "avx2"
    return "portable"


def missing(isa: str) -> str:
    """A one-line reason naming the feature `isa` needs and this host lacks ("" when it runs)."""
    checks = {"avx512vnni": (has_avx512vnni, "avx512vnni (with avx512f, avx512bw)"),
              "avxvnni": (has_avxvnni, "avxvnni"), "avx2": (has_avx2, "avx2 and fma")}
    if isa == "portable":
        return ""
    if isa not in checks:
        raise ValueError(f"unknown ISA {isa!r}; expected one of {ISAS}")
    ok, need = checks[isa]
    return "" if ok() else f"host CPU lacks {need}"
