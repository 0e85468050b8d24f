"""Shared pieces of the fuzz tests: the committed models, mutators of their protobuf bytes,
feeds that fit a (possibly mutated) model, and `run_case`, which loads and runs one case and
lets only `intsim.errors` exceptions through as a normal outcome.

An outcome is "ok" or "<stage>:<ErrorClass>"; any other exception escapes to the test, which
then fails: that is a numpy/numba/onnx exception leaking out of intsim.
"""
from __future__ import annotations

import glob
import os
import time

import numpy as np
import onnx

import intsim
from intsim.errors import IntsimError
from intsim.ir import FloatType, IntType

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_PATHS = sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx")))
SMALL_MODEL_PATHS = [p for p in MODEL_PATHS if "digits" in os.path.basename(p)]
CASE_SECONDS = 30.0   # a case slower than this is reported as a hang (kernels are compiled first: warm_up)


def model_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def truncate(data: bytes, cut: int) -> bytes:
    return data[:cut % max(len(data), 1)]


def flip_bits(data: bytes, positions) -> bytes:
    b = bytearray(data)
    for p in positions:
        b[(p // 8) % len(b)] ^= 1 << (p % 8)
    return bytes(b)


def overwrite(data: bytes, at: int, chunk: bytes) -> bytes:
    b = bytearray(data)
    at %= max(len(b), 1)
    b[at:at + len(chunk)] = chunk
    return bytes(b)


def feed_shape(shape, batch: int):
    if shape is None:
        return (batch,)
    dims = []
    for i, d in enumerate(shape):
        if d is None or d <= 0:
            dims.append(batch if i == 0 else 1)
        else:
            dims.append(min(int(d), 512))
    return tuple(dims)


def make_feeds(prog, batch: int = 1, seed: int = 0) -> dict:
    """Random feeds for every graph input: float32 N(0, 1) for float inputs, uniform codes for
    integer inputs; unknown dims are `batch` (first) or 1, huge dims are cut to 512."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name in prog.input_names:
        t = prog.graph.tensors.get(name)
        shape = feed_shape(t.shape if t is not None else None, batch)
        if int(np.prod(shape)) > 1 << 22:
            shape = (1,) * len(shape)
        dt = t.dtype if t is not None else None
        if isinstance(dt, IntType) and dt.bits <= 32:
            feeds[name] = rng.integers(dt.qmin, dt.qmax + 1, shape).astype(dt.storage)
        elif isinstance(dt, FloatType):
            feeds[name] = rng.standard_normal(shape).astype(dt.storage)
        else:
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def warm_up() -> None:
    """Run every seed model once, untimed, so that a cold Numba cache's compile time (seconds
    per kernel family) is not mistaken for a hang in the first timed cases."""
    for p in SMALL_MODEL_PATHS:
        prog = intsim.load(p)
        for batch in (1, 2):
            prog.run(make_feeds(prog, batch))


def run_case(model, batch: int = 1, feeds: dict | None = None) -> str:
    """Load and run one model (bytes, path or ModelProto). Returns "ok" or "<stage>:<Error>";
    a non-intsim exception propagates. Asserts the case took less than CASE_SECONDS."""
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    t0 = time.monotonic()
    try:
        try:
            prog = intsim.load(model)
        except IntsimError as e:
            return "load:" + type(e).__name__
        try:
            prog.run(feeds if feeds is not None else make_feeds(prog, batch))
        except IntsimError as e:
            return "run:" + type(e).__name__
        return "ok"
    finally:
        took = time.monotonic() - t0
        assert took < CASE_SECONDS, f"case took {took:.1f} s (hang)"
