"""kernels.workspace: reused scratch buffers are separate per name and per thread, aligned,
and large enough."""
import threading

import numpy as np
import pytest

from kernels.workspace import release, scratch


def test_shape_dtype_alignment_and_reuse():
    release()
    a = scratch("t.a", (7, 13), np.int32)
    assert a.shape == (7, 13) and a.dtype == np.int32 and a.flags.c_contiguous
    assert a.ctypes.data % 64 == 0
    a[...] = 5
    b = scratch("t.a", (3, 4), np.int32)          # smaller: same memory, no new allocation
    assert np.shares_memory(a, b)
    c = scratch("t.a", (1000, 1000), np.int32)    # larger: a new buffer
    assert c.shape == (1000, 1000) and c.ctypes.data % 64 == 0
    c[...] = 1                                   # the whole view is writable memory


def test_names_never_share_memory():
    release()
    a = scratch("t.x", (100,), np.uint8)
    b = scratch("t.y", (100,), np.uint8)
    assert not np.shares_memory(a, b)


def test_threads_never_share_memory():
    release()
    mine = scratch("t.z", (1000,), np.int64)
    seen = []
    t = threading.Thread(target=lambda: seen.append(scratch("t.z", (1000,), np.int64)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, seen[0])


def test_rejects_negative_shapes():
    with pytest.raises(ValueError, match="negative"):
        scratch("t.bad", (-1, 3), np.int32)


def test_empty_shapes():
    assert scratch("t.e", (0, 5), np.int32).shape == (0, 5)
