"""The kernels' Numba parallel regions (kernels.threads.native_split): a process that used them
can fork, and its children run the same kernels (through the pool) to the same sums."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import numpy as np
    from kernels import fast_pairs as fp, threads
    a = np.random.default_rng(0).integers(0, 256, (2000, 300)).astype(np.uint8)
    pk = fp.pack_b_pairs(np.random.default_rng(1).integers(-128, 128, (300, 200)).astype(np.int8))

    def go(_):
        r = np.empty((2000, 200), np.int32)
        fp.run_raw(a, pk, r, threads=2)
        return r.tobytes(), threads.NATIVE_THREADS

    parent, native = go(0)
    import numba
    if numba.config.NUMBA_NUM_THREADS > 1 and threads.threadsafe_layer():
        assert native and threads.native_split(2), "the parent should use a parallel region"
    with mp.get_context("fork").Pool(2) as pool:
        kids = pool.map_async(go, range(6), chunksize=3).get(timeout=120)  # a dead child: an error, not a hang
    assert all(r == parent and not n for r, n in kids), "children differ or used OpenMP"
    print("ok")
""")


def test_fork_after_parallel_regions():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.stdout + r.stderr)[-3000:]


PROGRAM_SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import numpy as np
    import numba
    import intsim
    from kernels import threads
    threads.set_num_threads(2)
    prog = intsim.load("models/mobilenetv2_s.qdq_u8_pc.onnx")
    x = np.random.default_rng(0).standard_normal((8, 3, 96, 96)).astype(np.float32)
    feeds = {prog.input_names[0]: x}
    parent = prog.run(feeds)          # binds every lane: GEMM, depthwise, im2col and layout regions
    if numba.config.NUMBA_NUM_THREADS > 1 and threads.threadsafe_layer():
        assert threads.native_split(2), "the parent should use parallel regions"
    prog.run(feeds)
    prog.run(feeds)                   # recorded and replayed: the children inherit a frozen run too
    from intsim.runtime.frozen import FrozenRun
    assert any(isinstance(v, FrozenRun) for v in prog._frozen.values())

    def go(_):
        out = prog.run(feeds)
        return {k: v.tobytes() for k, v in out.items()}, threads.NATIVE_THREADS

    with mp.get_context("fork").Pool(2) as pool:
        kids = pool.map_async(go, range(6), chunksize=3).get(timeout=120)  # a dead child: an error, not a hang
    assert all(all(r[k] == parent[k].tobytes() for k in parent) and not n for r, n in kids), "children differ"
    print("ok")
""")


def test_fork_after_a_program_ran_with_regions():
    """A Program prepared and run with parallel regions (and frozen), then forked (e.g. a fork Pool
    over data shards): the children's bound lanes run serially to the same outputs instead of
    aborting, three runs each (the children record and replay frozen runs of their own)."""
    r = subprocess.run([sys.executable, "-c", PROGRAM_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.stdout + r.stderr)[-3000:]
