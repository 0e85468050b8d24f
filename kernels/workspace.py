"""Scratch buffers reused from call to call, one set per thread.

A conv of a batch needs an im2col buffer and an int32 sum buffer of up to tens of MiB; taking
fresh ones each call costs a page fault per 4 KiB page, first touched, every call (about as much
as the im2col pass itself). `scratch(name, shape, dtype)` returns a C-contiguous array view of a
per-thread byte buffer that only grows; its contents are undefined (as np.empty's). Two names
never share memory, and two threads never share a buffer, so concurrent runs are safe; one
thread must not hold two results of the same name at once. `release()` frees this thread's
buffers.
"""
from __future__ import annotations

import threading

import numpy as np

_local = threading.local()
SLACK = 1.25          # grow by a quarter more than asked, so slowly growing shapes reallocate rarely


def scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape` and `dtype`, backed by this thread's
    buffer `name`."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    count = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"scratch: negative dimension in {shape}")
        count *= s
    nbytes = count * dtype.itemsize
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    entry = bufs.get(name)
    if entry is None or entry[0].size < nbytes + 64:
        buf = np.empty(int(nbytes * SLACK) + 64, np.uint8)
        # the view's start aligned to 64 bytes (a cache line), computed once per buffer
        entry = bufs[name] = (buf, (-buf.ctypes.data) % 64)
    buf, start = entry
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Drop this thread's buffers."""
    _local.bufs = {}
