"""Hardware-friendly post-training quantization of float ONNX models (issue 7).

    from intsim.quantize import quantize
    res = quantize("float.onnx", calib_array, out="q.onnx", weight_bits=4, scale="pow2",
                   granularity="tensor", range_method="msqe", cle=True, adaround=True)

See `pipeline` for the steps, `ranges` for range setting (min-max, MSQE, percentile,
output MSE), `lsq` for learned scales, `cle`, `bias_correction`, `adaround`, `writer`
(QDQ / QONNX) and `report` (HTML).
"""
from .pipeline import Options, Result, quantize  # noqa: F401

__all__ = ["Options", "Result", "quantize"]
