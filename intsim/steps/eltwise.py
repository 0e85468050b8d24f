"""add, mul, concat, lut (onnxruntime arithmetic; kernels in kernels/eltwise.py, kernels/lut.py)."""
from __future__ import annotations
