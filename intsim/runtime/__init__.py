"""Running an IR graph: `Program` compiles it to prepared steps and runs them (program),
replays repeated runs on fixed buffers (frozen), and splits a batch over threads (batch_split)."""
from __future__ import annotations

from .program import Program, StepContext

__all__ = ["Program", "StepContext"]
