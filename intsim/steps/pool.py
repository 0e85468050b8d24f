"""maxpool, avgpool, global_avgpool (kernels in kernels/pool.py)."""
from __future__ import annotations
