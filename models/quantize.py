"""Quantize a zoo model with onnxruntime's static quantizer.

    python -m models.quantize NAME FORM [--out PATH]

Forms (all MinMax calibration on zoo.calibration_reader(NAME), weights QInt8):
    qdq_u8_pc  QDQ,        activations QUInt8, per-channel weights
    qdq_s8_pt  QDQ,        activations QInt8,  per-tensor weights
    qop_u8     QOperator,  activations QUInt8, per-tensor weights
The float model first goes through quant_pre_process (symbolic shape inference plus
onnxruntime's basic graph optimizations, which fold BatchNormalization into Conv), as
onnxruntime recommends. Needs only onnxruntime (and torch only if the float model must be built).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from models import zoo


class Form(NamedTuple):
    qdq: bool
    activation_u8: bool
    per_channel: bool


FORM_OPTIONS = {
    "qdq_u8_pc": Form(qdq=True, activation_u8=True, per_channel=True),
    "qdq_s8_pt": Form(qdq=True, activation_u8=False, per_channel=False),
    "qop_u8": Form(qdq=False, activation_u8=True, per_channel=False),
}


def preprocess(src: Path, dst: Path) -> None:
    """onnxruntime's quant_pre_process: symbolic shape inference, optimization, shape inference."""
    from onnxruntime.quantization.shape_inference import quant_pre_process
    quant_pre_process(str(src), str(dst), skip_optimization=False, skip_onnx_shape=False,
                      skip_symbolic_shape=False)


def quantize(float_path: Path | str, form: str, name: str, out: Path | str,
             per_channel: bool | None = None) -> Path:
    """Pre-process and quantize_static the float model at float_path in `form`, calibrating
    with zoo.calibration_reader(name); writes `out` atomically and returns it. per_channel
    overrides the form's setting (for experiments)."""
    if form not in FORM_OPTIONS:
        raise ValueError(f"unknown quantization form {form!r}; known: {', '.join(FORM_OPTIONS)}")
    opt = FORM_OPTIONS[form]
    if per_channel is not None:
        opt = opt._replace(per_channel=per_channel)
    return quantize_static_file(float_path, opt, zoo.calibration_reader(name), out)


def quantize_static_file(float_path: Path | str, opt: Form, reader, out: Path | str) -> Path:
    """quant_pre_process then quantize_static (MinMax, weights QInt8) with the options `opt`
    and the CalibrationDataReader `reader`; writes `out` atomically."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as d:
            pre = Path(d) / "pre.onnx"
            preprocess(Path(float_path), pre)
            quantize_static(str(pre), str(tmp), reader,
                            quant_format=QuantFormat.QDQ if opt.qdq else QuantFormat.QOperator,
                            activation_type=QuantType.QUInt8 if opt.activation_u8 else QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=opt.per_channel,
                            calibrate_method=CalibrationMethod.MinMax)

    return zoo.atomic_write(Path(out), write)


# the architecture zoo's forms (zoo.ARCH_FORMS): onnxruntime's defaults (per-tensor weights,
# QInt8 weights) with uint8 or int8 activations; "dynamic" is quantize_dynamic (weights QInt8),
# "dynamic_opt" the transformer optimizer then quantize_dynamic (the encoder only)
ARCH_FORM_OPTIONS = {
    "qdq_u8": Form(qdq=True, activation_u8=True, per_channel=False),
    "qdq_s8": Form(qdq=True, activation_u8=False, per_channel=False),
    "qop_u8": Form(qdq=False, activation_u8=True, per_channel=False),
    "qop_s8": Form(qdq=False, activation_u8=False, per_channel=False),
}


def transformer_optimize(src: Path, dst: Path) -> None:
    """onnxruntime's transformer optimizer (BERT fusions: Attention, SkipLayerNormalization,
    BiasGelu) on the encoder, as its docs advise before quantize_dynamic (which then writes
    QAttention); heads and width from models.arch.ENCODER via zoo.ENCODER_INPUT."""
    from onnxruntime.transformers import optimizer
    m = optimizer.optimize_model(str(src), model_type="bert", num_heads=zoo.ENCODER_HEADS,
                                 hidden_size=zoo.ENCODER_INPUT[1], opt_level=0)
    m.save_model_to_file(str(dst))


def quantize_arch(float_path: Path | str, form: str, name: str, res: int, out: Path | str) -> Path:
    """Quantize an architecture-zoo model: quantize_static in ARCH_FORM_OPTIONS[form] calibrated
    on zoo.arch_calibration_reader(name, res), or quantize_dynamic for form "dynamic"."""
    if form in ("dynamic", "dynamic_opt"):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def write(tmp: Path) -> None:
            with tempfile.TemporaryDirectory() as d:
                pre = Path(d) / "pre.onnx"
                if form == "dynamic":
                    preprocess(Path(float_path), pre)
                    quantize_dynamic(str(pre), str(tmp), weight_type=QuantType.QInt8)
                else:
                    transformer_optimize(Path(float_path), pre)
                    quantize_dynamic(str(pre), str(tmp), weight_type=QuantType.QInt8,
                                     extra_options={"DefaultTensorType": 1})   # TensorProto.FLOAT
        return zoo.atomic_write(Path(out), write)
    if form not in ARCH_FORM_OPTIONS:
        raise ValueError(f"unknown quantization form {form!r}; known: {', '.join(zoo.ARCH_FORMS)}")
    return quantize_static_file(float_path, ARCH_FORM_OPTIONS[form], zoo.arch_calibration_reader(name, res), out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.quantize", description=__doc__.split("\n")[0])
    p.add_argument("name", choices=zoo.MODELS)
    p.add_argument("form", choices=zoo.FORMS)
    p.add_argument("--out", type=Path, help="output path (default models/<name>.<form>.onnx)")
    args = p.parse_args(argv)
    out = args.out or zoo.committed_path(args.name, args.form)
    t0 = time.perf_counter()
    quantize(zoo.float_model(args.name), args.form, args.name, out)
    print(f"{args.name}/{args.form}: {out} {out.stat().st_size} bytes in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
