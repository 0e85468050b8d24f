"""Deployment targets (DESIGN §3): each owns the arithmetic of every integer op."""
from .base import Requantizer, Target  # noqa: F401
from .registry import BUILTIN, get_target, known_targets  # noqa: F401
from .rules import TargetRefusal  # noqa: F401
from .user import load_target_file  # noqa: F401
