"""Requantization targets, selected by name (DESIGN §3)."""
from .base import Requantizer, Target, get_target, known_targets, register  # noqa: F401
from . import ort  # noqa: F401  (registers ort, ort-vnni, ort-avx2)

try:  # targets added by later modules register themselves on import
    from . import tflite  # noqa: F401
except ImportError:
    pass
try:
    from . import pow2  # noqa: F401
except ImportError:
    pass
