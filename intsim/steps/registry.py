"""The step registry: `@step("conv", ...)` registers `prepare(node, ctx) -> run(env, tap)` for
IR op names in STEPS. The step modules import this module; intsim.steps imports them all."""
from __future__ import annotations

STEPS: dict = {}


def step(*ops: str):
    def wrap(fn):
        for op in ops:
            STEPS[op] = fn
        return fn
    return wrap
