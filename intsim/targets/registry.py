"""Targets by name: the built-ins, listed once here, and TOML target files."""
from __future__ import annotations

from ..errors import IntsimError
from .base import Target
from .ort import OrtAvx2Target, OrtTarget, OrtVnniTarget
from .pow2 import Pow2FloorTarget, Pow2RhazTarget, Pow2RhuTarget, Pow2RneTarget, Pow2Target
from .tflite import CmsisNnTarget, TfliteBuiltinTarget, TfliteSingleTarget, TfliteTarget
from .user import load_target_file

BUILTIN = {cls.name: cls for cls in (
    OrtTarget, OrtVnniTarget, OrtAvx2Target,
    TfliteTarget, TfliteBuiltinTarget, TfliteSingleTarget, CmsisNnTarget,
    Pow2Target, Pow2FloorTarget, Pow2RhuTarget, Pow2RneTarget, Pow2RhazTarget)}


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
