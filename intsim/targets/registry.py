"""Targets by name: the built-ins, listed once here, and TOML target files."""
from __future__ import annotations

from functools import partial

from ..errors import IntsimError
from .base import Target
from .ort import OrtTarget
from .pow2 import Pow2Target
from .tflite import FixedPointTarget, TfliteBuiltinTarget, TfliteTarget, TfliteXnnpackTarget
from .user import load_target_file

# name -> a factory of the target (each call a fresh instance)
BUILTIN = {
    "ort": OrtTarget,
    "ort-vnni": partial(OrtTarget, "ort-vnni", saturating_u8s8=False),
    "ort-avx2": partial(OrtTarget, "ort-avx2", saturating_u8s8=True),
    "tflite": TfliteTarget,
    "tflite-builtin": TfliteBuiltinTarget,
    "tflite-xnnpack": TfliteXnnpackTarget,
    "tflite-single": partial(FixedPointTarget, "tflite-single", "single"),
    "cmsis-nn": partial(FixedPointTarget, "cmsis-nn", "cmsis"),
    "pow2": Pow2Target,
    **{f"pow2-{r}": partial(Pow2Target, name=f"pow2-{r}", rounding=r) for r in ("floor", "rhu", "rne", "rhaz")},
}


def get_target(name_or_target) -> Target:
    """A Target instance: passed through, a built-in by name, or a TOML file (`*.toml`)."""
    if isinstance(name_or_target, Target):
        return name_or_target
    name = str(name_or_target)
    if name.endswith(".toml"):
        return load_target_file(name)
    if name not in BUILTIN:
        raise IntsimError(f"unknown target '{name}' (known: {', '.join(known_targets())})")
    return BUILTIN[name]()


def known_targets() -> list:
    return sorted(BUILTIN)
