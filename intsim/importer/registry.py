"""One lowering per ONNX op, registered explicitly by (domain, op_type).

A lowering is `fn(ctx, node) -> None`; it reads inputs through `ctx`, and emits IR nodes and
tensors with `ctx.emit` / `ctx.declare`. Opset differences are an `if` inside the function.
"""
from __future__ import annotations

from typing import Callable

LOWERINGS: dict = {}

MS_DOMAIN = "com.microsoft"
QONNX_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")


def _norm(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def lowering(*op_types: str, domain: str = "") -> Callable:
    """Register `fn` as the lowering of each op type (in `domain`, "" = the ONNX domain)."""
    def wrap(fn):
        domains = domain if isinstance(domain, tuple) else (domain,)
        for d in domains:
            for op in op_types:
                LOWERINGS[(_norm(d), op)] = fn
        return fn
    return wrap


def find(domain: str, op_type: str):
    return LOWERINGS.get((_norm(domain), op_type))
