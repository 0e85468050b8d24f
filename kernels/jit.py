"""The one place where jit flags are chosen: every kernel is `@kernel` (Numba njit,
cache=True, nogil=True, never fastmath). `INTSIM_PORTABLE=1` in the environment forces the
portable (non-VNNI) kernels everywhere."""
import os

from numba import njit

FORCE_PORTABLE = os.environ.get("INTSIM_PORTABLE", "") == "1"


def kernel(fn=None, *, parallel: bool = False, inline: str = "never"):
    """Decorate a Numba kernel with the project's flags."""
    def wrap(f):
        return njit(cache=True, nogil=True, parallel=parallel, inline=inline)(f)
    return wrap(fn) if fn is not None else wrap
