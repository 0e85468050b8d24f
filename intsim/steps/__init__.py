"""Executable IR ops. Each module registers `prepare(node, ctx) -> run(env, tap)` for its op
names (steps.registry); `prepare` does all float->integer work once, `run` only calls kernels."""
from __future__ import annotations

from . import compute, eltwise, onnx_op, pool, prelu, qsoftmax, quant, reduce, resize, transpose_conv  # noqa: F401,E501
from .registry import STEPS, step


def load_all() -> dict:
    """IR op name -> prepare, for every registered step."""
    return STEPS


__all__ = ["STEPS", "load_all", "step"]
