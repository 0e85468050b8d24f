"""Executable IR ops. Each module registers `prepare(node, ctx) -> run(env, tap)` for its op
names; `prepare` does all float->integer work once, `run` only calls kernels."""
from __future__ import annotations

STEPS: dict = {}


def step(*ops: str):
    def wrap(fn):
        for op in ops:
            STEPS[op] = fn
        return fn
    return wrap


def load_all() -> dict:
    from . import compute, eltwise, onnx_op, pool, quant  # noqa: F401
    return STEPS
