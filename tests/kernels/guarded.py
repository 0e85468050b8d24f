"""Test arrays that end right before an inaccessible page: a kernel reading one byte past such an
array faults (SIGSEGV), so a test passing on it proves the reads stay inside."""
from __future__ import annotations

import numpy as np


def guarded_bytes(nbytes):
    """A uint8 array of nbytes whose last byte is followed by an inaccessible page (a read past it
    faults), or None where mprotect is not available."""
    import ctypes
    import mmap
    page = mmap.PAGESIZE
    if nbytes > page:
        return None
    buf = mmap.mmap(-1, 2 * page)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(addr + page), ctypes.c_size_t(page), 0) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return np.frombuffer(buf, np.uint8, count=page)[page - nbytes:]
