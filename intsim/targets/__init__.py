"""Requantization targets, selected by name (DESIGN §3) or by a TOML target file."""
from . import ort, pow2, tflite  # noqa: F401  (each registers its targets)
from .base import Requantizer, Target, get_target, known_targets, register  # noqa: F401
from .user import load_target_file  # noqa: F401
