"""Host CPU features and the instruction set the fast kernels may use.

`best_isa()` picks, in order, "amx" (tdpbusd on AMX tiles, only when the CPU has amx-tile and
amx-int8 AND Linux granted this process the tile data state, see amx_permitted; INTSIM_NO_AMX=1
or no_amx=True skips it), "avx512vnni" (vpdpbusd on zmm), "avxvnni" (VEX vpdpbusd on ymm),
"avx2" (vpmaddwd on ymm, int16 pairs) or "portable" (plain Numba loops). INTSIM_PORTABLE=1 in
the environment (read once, in kernels.jit) forces "portable". A kernel that uses an ISA is
compiled lazily, on its first call, so code for a missing feature is never compiled here.
"""
from __future__ import annotations

import ctypes
import functools
import platform

from . import jit

ISAS = ("amx", "avx512vnni", "avxvnni", "avx2", "portable")

SYS_ARCH_PRCTL = 158                # x86-64 syscall number of arch_prctl
ARCH_GET_XCOMP_PERM = 0x1022
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18             # the AMX tile data state component


@functools.lru_cache(maxsize=1)
def host_features() -> frozenset:
    """The features LLVM reports as present on this host ("avx2", "avx512vnni", ...)."""
    from llvmlite import binding as ll
    feats = ll.get_host_cpu_features()
    return frozenset(name for name, on in feats.items() if on)


def has_avx2(features=None) -> bool:
    f = host_features() if features is None else features
    return "avx2" in f and "fma" in f


def has_avx512vbmi(features=None) -> bool:
    """vpermi2b on zmm (AVX-512 VBMI with BW): a 128-byte table lookup per instruction."""
    f = host_features() if features is None else features
    return {"avx512f", "avx512bw", "avx512vbmi"} <= set(f)


def has_avx512vnni(features=None) -> bool:
    f = host_features() if features is None else features
    return {"avx512f", "avx512bw", "avx512vnni"} <= set(f)


def has_avxvnni(features=None) -> bool:
    f = host_features() if features is None else features
    return "avxvnni" in f and "avx2" in f


def has_vnni(features=None) -> bool:
    """True when some vpdpbusd form (EVEX zmm or VEX ymm) executes on this host."""
    return has_avx512vnni(features) or has_avxvnni(features)


def has_amx(features=None) -> bool:
    """True when the CPU has AMX int8 tiles (amx-tile, amx-int8) and the AVX-512 VNNI engine the
    AMX driver shares (its packing and epilogue). Says nothing about the OS permission."""
    f = host_features() if features is None else features
    return {"amx-tile", "amx-int8"} <= set(f) and has_avx512vnni(f)


@functools.lru_cache(maxsize=1)
def amx_permitted() -> bool:
    """Ask Linux once for the AMX tile data state (arch_prctl(ARCH_REQ_XCOMP_PERM,
    XFEATURE_XTILEDATA)) and return whether ARCH_GET_XCOMP_PERM then has bit 18: without it
    the first tile instruction raises SIGILL. False off Linux x86-64 or on any error."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall(ctypes.c_long(SYS_ARCH_PRCTL), ctypes.c_long(ARCH_REQ_XCOMP_PERM),
                     ctypes.c_ulong(XFEATURE_XTILEDATA))
        mask = ctypes.c_uint64(0)
        if libc.syscall(ctypes.c_long(SYS_ARCH_PRCTL), ctypes.c_long(ARCH_GET_XCOMP_PERM), ctypes.byref(mask)) != 0:
            return False
        return bool(mask.value >> XFEATURE_XTILEDATA & 1)
    except (OSError, AttributeError):
        return False


def amx_usable(features=None) -> bool:
    """has_amx and (on this host) amx_permitted: the only condition under which "amx" runs."""
    return has_amx(features) and amx_permitted()


def best_isa(features=None, force_portable: bool | None = None, no_amx: bool | None = None) -> str:
    """The fastest path usable here; "portable" when INTSIM_PORTABLE=1 (or force_portable);
    never "amx" when INTSIM_NO_AMX=1 (or no_amx)."""
    portable = jit.FORCE_PORTABLE if force_portable is None else force_portable
    if portable:
        return "portable"
    if not (jit.NO_AMX if no_amx is None else no_amx) and amx_usable(features):
        return "amx"
    if has_avx512vnni(features):
        return "avx512vnni"
    if has_avxvnni(features):
        return "avxvnni"
    if has_avx2(features):
        return "avx2"
    return "portable"


def missing(isa: str) -> str:
    """A one-line reason naming the feature `isa` needs and this host lacks ("" when it runs)."""
    if isa == "amx" and has_amx():
        return "" if amx_permitted() else "Linux did not grant AMX tile data (arch_prctl ARCH_REQ_XCOMP_PERM)"
    checks = {"amx": (has_amx, "amx (amx-tile, amx-int8, with avx512vnni)"),
              "avx512vnni": (has_avx512vnni, "avx512vnni (with avx512f, avx512bw)"), "avxvnni": (has_avxvnni, "avxvnni"), "avx2": (has_avx2, "avx2 and fma")}
    if isa == "portable":
        return ""
    if isa not in checks:
        raise ValueError(f"unknown ISA {isa!r}; expected one of {ISAS}")
    ok, need = checks[isa]
    return "" if ok() else f"host CPU lacks {need}"
