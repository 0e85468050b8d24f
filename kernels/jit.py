"""The one place where jit flags are chosen: every kernel is `@kernel` (Numba njit,
cache=True, nogil=True, never fastmath). `INTSIM_PORTABLE=1` in the environment forces the
portable (non-VNNI) kernels everywhere; `INTSIM_NO_AMX=1` keeps the SIMD engine off AMX tiles
(its AVX-512 VNNI path instead, kernels.cpu.best_isa).

Cache keying. Numba keys a cached function by the source of its OWN file only: a kernel that
calls (and inlines) a kernel of another module keeps its cached machine code after that other
module changes, and would run stale code. So every kernel is cached under a directory named by
a hash of every kernels/**/*.py (and the Numba version): any change to any kernel source gives a
fresh cache. The directory is $NUMBA_CACHE_DIR/intsim-<hash> when NUMBA_CACHE_DIR is set, else
kernels/__pycache__/intsim-<hash>, else (read-only install) ~/.cache/intsim/numba/intsim-<hash>.
Numba's global setting is changed only while a kernel is being decorated.

kernel_array: an argument as C-contiguous and writable, so that a read-only array does not
compile a second specialization of the kernel it reaches (Numba types the two apart).
"""
import hashlib
import os
import threading

import numba
import numpy as np
from numba import njit

FORCE_PORTABLE = os.environ.get("INTSIM_PORTABLE", "") == "1"
NO_AMX = os.environ.get("INTSIM_NO_AMX", "") == "1"
_HERE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()


def source_tag() -> str:
    """Hash of every .py file under kernels/ (its subpackages included; relative paths and
    bytes) and the Numba version."""
    h = hashlib.sha256(numba.__version__.encode())
    names = []
    for root, dirs, files in os.walk(_HERE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        names += [os.path.relpath(os.path.join(root, f), _HERE) for f in files if f.endswith(".py")]
    for name in sorted(names):
        with open(os.path.join(_HERE, name), "rb") as f:
            h.update(name.replace(os.sep, "/").encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def cache_dir() -> str:
    """$NUMBA_CACHE_DIR/intsim-<tag>, else kernels/__pycache__/intsim-<tag>, else (a read-only
    install) $XDG_CACHE_HOME or ~/.cache, /intsim/numba/intsim-<tag>."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.path.join(os.environ["NUMBA_CACHE_DIR"], "intsim-" + _TAG)
    here = os.path.join(_HERE, "__pycache__", "intsim-" + _TAG)
    if _writable(here):
        return here
    user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(user, "intsim", "numba", "intsim-" + _TAG)


_TAG = source_tag()


def kernel(fn=None, *, parallel: bool = False, inline: str = "never", error_model: str = "python"):
    """Decorate a Numba kernel with the project's flags (and its cache directory).
    error_model="numpy": float division by zero gives IEEE inf/NaN (as C does) instead of
    raising ZeroDivisionError (for float kernels reproducing a C float loop)."""
    def wrap(f):
        with _lock:
            old = numba.config.CACHE_DIR
            numba.config.CACHE_DIR = cache_dir()
            try:
                return njit(cache=True, nogil=True, parallel=parallel, inline=inline, error_model=error_model)(f)
            finally:
                numba.config.CACHE_DIR = old
    return wrap(fn) if fn is not None else wrap


def kernel_array(a, dtype=None) -> np.ndarray:
    """`a` (as dtype) C-contiguous and writable, copied only when it is not already. Numba
    types a read-only array apart from a writable one, so a read-only argument (an onnx
    initializer read by np.frombuffer, a memoized or broadcast value) would compile a second
    machine-code specialization of every kernel it reaches (for arguments a kernel only reads;
    a copy of an array that is also bound for later calls would not see later writes)."""
    a = np.ascontiguousarray(a, dtype)
    return a if a.flags.writeable else a.copy()
