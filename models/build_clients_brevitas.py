"""The Brevitas + qonnx part of the clients zoo (models/clients/, manifest.json).

Small nets on scikit-learn's digits, trained for a few seconds with Brevitas quantizers, each
exported as QONNX and as QCDQ by both of Brevitas' exporters (TorchScript, dynamo), plus qonnx's
own passes on a QONNX export (cleanup, QuantToQCDQ). Build-time only (the `clients-build`
extra: brevitas==0.13.4, qonnx, torch); tests read the committed files:

    PYTHONPATH=. /work/venv_build/bin/python -m models.build_clients_brevitas

Each model NAME.onnx has NAME.npz: `input/inp` (SAMPLES digits test images, float32
(SAMPLES, 1, 8, 8)), `reference/out` (the format's reference runtime on those inputs: qonnx's
execute_onnx for QONNX, onnxruntime's optimized session for QCDQ, as intsim verify's
`qonnx` / `ort-int8` references run them) and `torch/out` (Brevitas' own fake-quant output).
An export that fails is listed in the manifest with its error and no file.
"""
from __future__ import annotations

import json
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx

from intsim.verify.refs import make_reference
from models import zoo

OUT = zoo.ROOT / "clients"
SAMPLES = 32
SEED = 17
EPOCHS = 4
IN, OUTPUT = "inp", "out"

# config name -> (description, build keyword arguments for _net)
CONFIGS = {
    "w8a8": ("8-bit weights per tensor, int8/uint8 activations (float scales)", {"wbits": 8}),
    "w4a8": ("4-bit weights per tensor, int8/uint8 activations", {"wbits": 4}),
    "w3a8": ("3-bit weights per tensor, int8/uint8 activations", {"wbits": 3}),
    "w2a8": ("2-bit weights per tensor, int8/uint8 activations", {"wbits": 2}),
    "pow2": ("power-of-two fixed point: Int8WeightPerTensorFixedPoint, Int8/Uint8ActPerTensorFixedPoint",
             {"fixed_point": True}),
    "pow2_zp": ("power-of-two fixed point with a zero point: inputs scaled to [-1, 1] then "
                "ShiftedUint8ActPerTensorFixedPoint", {"fixed_point": True, "shifted_input": True}),
    "perchannel": ("8-bit weights per output channel (Int8WeightPerChannelFloat)", {"per_channel": True}),
    "int32bias": ("Int32Bias on every conv and linear layer", {"int32_bias": True}),
    "add_unsigned": ("residual add of two quantized branches into an unsigned QuantReLU", {"residual": "unsigned"}),
    "add_signed": ("residual add of two quantized branches into a signed QuantIdentity", {"residual": "signed"}),
    "truncavgpool": ("TruncAvgPool2d (2x2) instead of MaxPool", {"pool": "trunc"}),
}
EXPORTERS = ("torchscript", "dynamo")
TOOL = "brevitas 0.13.4"


def _quantizers(fixed_point: bool, per_channel: bool, wbits: int):
    import brevitas.quant as bq
    if fixed_point:
        return bq.Int8WeightPerTensorFixedPoint, bq.Int8ActPerTensorFixedPoint, bq.Uint8ActPerTensorFixedPoint
    w = bq.Int8WeightPerChannelFloat if per_channel else bq.Int8WeightPerTensorFloat
    if wbits != 8:
        w = w.let(bit_width=wbits)
    return w, bq.Int8ActPerTensorFloat, bq.Uint8ActPerTensorFloat


def _net(wbits: int = 8, fixed_point: bool = False, per_channel: bool = False, int32_bias: bool = False,
         residual: str | None = None, pool: str = "max", shifted_input: bool = False):
    """QuantIdentity -> QuantConv 1->8 -> QuantReLU -> QuantConv 8->8 -> QuantReLU [-> residual
    QuantConv 8->8 and add] -> MaxPool / TruncAvgPool 2x2 -> flatten -> QuantLinear 128->10
    with an int8 output quantizer (so the output is on a grid: differences count in LSB)."""
    import brevitas.nn as qnn
    import brevitas.quant as bq
    import torch
    from torch import nn
    wq, sq, uq = _quantizers(fixed_point, per_channel, wbits)
    bias = {"bias_quant": bq.Int32Bias} if int32_bias else {}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=bq.ShiftedUint8ActPerTensorFixedPoint if shifted_input else sq,
                                         return_quant_tensor=True)
            # Brevitas cannot give the accumulator of a zero-point input a QuantTensor ("Computing
            # zero point of output accumulator not supported yet"): c1 then outputs floats
            self.c1 = qnn.QuantConv2d(1, 8, 3, padding=1, weight_quant=wq, return_quant_tensor=not shifted_input,
                                      **bias)
            self.r1 = qnn.QuantReLU(act_quant=uq, return_quant_tensor=True)
            self.c2 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_quant=wq, return_quant_tensor=True, **bias)
            self.r2 = qnn.QuantReLU(act_quant=uq, return_quant_tensor=True)
            if residual:
                self.c3 = qnn.QuantConv2d(8, 8, 3, padding=1, weight_quant=wq, return_quant_tensor=True, **bias)
                self.q3 = qnn.QuantIdentity(act_quant=sq, return_quant_tensor=False)
                self.join = (qnn.QuantReLU(act_quant=uq, return_quant_tensor=True) if residual == "unsigned"
                             else qnn.QuantIdentity(act_quant=sq, return_quant_tensor=True))
            self.pool = (qnn.TruncAvgPool2d(2, trunc_quant=bq.TruncTo8bit, return_quant_tensor=True)
                         if pool == "trunc" else nn.MaxPool2d(2))
            self.fc = qnn.QuantLinear(128, 10, bias=True, weight_quant=wq, output_quant=sq,
                                      return_quant_tensor=False, **bias)

        def forward(self, x):
            if shifted_input:
                x = x * 2.0 - 1.0
            y = self.r2(self.c2(self.r1(self.c1(self.inp(x)))))
            if residual:
                # the branches' scales differ: add their dequantized values (uint8 + int8 in QCDQ)
                y = self.join(_value(y) + self.q3(self.c3(y)))
            y = self.pool(y)
            return self.fc(torch.flatten(y, 1))

    return Net()


def _value(t):
    """A QuantTensor's dequantized value (in export mode Brevitas passes plain tensors)."""
    return getattr(t, "value", t)


def _train(net) -> float:
    """EPOCHS of Adam on the digits training split, no weight decay or schedule
    (models.build.train_digits); returns test accuracy."""
    import torch
    from models import build
    torch.manual_seed(SEED)
    return build.train_digits(net, epochs=EPOCHS, weight_decay=0.0, cosine=False, seed=SEED)


def _export(net, form: str, exporter: str, path: Path, example) -> None:
    from brevitas.export import export_onnx_qcdq, export_qonnx
    fn = export_qonnx if form == "QONNX" else export_onnx_qcdq
    kw = {"input_names": [IN], "output_names": [OUTPUT], "opset_version": 17 if form == "QCDQ" else 13}
    if exporter == "dynamo":
        import torch
        kw["dynamic_shapes"] = {"x": {0: torch.export.Dim("N")}}
    else:
        kw["dynamic_axes"] = {IN: {0: "N"}, OUTPUT: {0: "N"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(net, example, export_path=str(path), dynamo=exporter == "dynamo", **kw)
    _inline(path)


def _inline(path: Path) -> None:
    """Store the model as one file (dynamo writes weights as external data): load with the
    data, save without, and drop any side file."""
    m = onnx.load(str(path))
    for side in path.parent.glob(path.name + ".data"):
        side.unlink()
    onnx.save(m, str(path))


def _record(path: Path, reference: str, x: np.ndarray, torch_out: np.ndarray | None) -> None:
    """Write NAME.npz: the feed under the model's own input name (qonnx's cleanup renames it
    global_in), the reference's outputs, Brevitas' output."""
    model = onnx.load(str(path))
    consts = {i.name for i in model.graph.initializer}
    (inp,) = [i.name for i in model.graph.input if i.name not in consts]
    ref = make_reference(reference, model).run({inp: x})
    arrays = {f"input/{inp}": x}
    arrays.update((f"reference/{k}", np.asarray(v)) for k, v in ref.items())
    if torch_out is not None:
        arrays[f"torch/{model.graph.output[0].name}"] = torch_out
    np.savez_compressed(path.with_suffix(".npz"), **arrays)


def _entry(name: str | None, form: str, exporter: str, config: str, reference: str, tool: str = TOOL,
           error: str | None = None, note: str | None = None) -> dict:
    e = {"file": f"{name}.onnx" if name else None, "npz": f"{name}.npz" if name else None, "tool": tool,
         "form": form, "exporter": exporter, "config": config, "reference": reference, "target": "ort"}
    if error:
        e["error"] = error
    if note:
        e["note"] = note
    return e


def _one_line(e: Exception) -> str:
    """The exception's first line, and its root cause's (an exporter wraps the real error)."""
    first = lambda x: (f"{type(x).__name__}: {x}".strip().splitlines() or [type(x).__name__])[0]  # noqa: E731
    root = e
    while root.__cause__ is not None:
        root = root.__cause__
    text = first(e) if root is e else f"{first(e)} (cause: {first(root)})"
    return text.replace("\x1b[96m", "").replace("\x1b[0m", "")[:400]


def _qonnx_passes(src: Path, config: str, x: np.ndarray) -> list:
    """qonnx's cleanup (qonnx.util.cleanup.cleanup_model) and QuantToQCDQ on a QONNX export."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.qonnx_to_qcdq import QuantToQCDQ
    from qonnx.util.cleanup import cleanup_model
    tool = f"qonnx {version('qonnx')}"
    rows = []
    clean = cleanup_model(ModelWrapper(str(src)))
    name = f"{config}.qonnx_cleanup"
    clean.save(str(OUT / f"{name}.onnx"))
    _record(OUT / f"{name}.onnx", "qonnx", x, None)
    rows.append(_entry(name, "QONNX", "qonnx.util.cleanup", config, "qonnx", tool))
    name = f"{config}.qonnx_to_qcdq"
    try:
        qcdq = cleanup_model(clean.transform(QuantToQCDQ()))
        qcdq.save(str(OUT / f"{name}.onnx"))
        _record(OUT / f"{name}.onnx", "ort-int8", x, None)
        rows.append(_entry(name, "QCDQ", "qonnx QuantToQCDQ", config, "ort-int8", tool))
    except Exception as e:  # noqa: BLE001 - recorded in the manifest
        for p in (OUT / f"{name}.onnx", OUT / f"{name}.npz"):
            p.unlink(missing_ok=True)
        rows.append(_entry(None, "QCDQ", "qonnx QuantToQCDQ", config, "ort-int8", tool, error=_one_line(e)))
    return rows


QONNX_PASS_CONFIGS = ("w8a8", "w4a8", "pow2", "pow2_zp", "perchannel", "int32bias", "add_unsigned")


def build_config(config: str, x: np.ndarray) -> list:
    """Train the config's net, export it every way, run qonnx's passes: its manifest rows."""
    import torch
    desc, kw = CONFIGS[config]
    torch.manual_seed(SEED)
    try:
        net = _net(**kw)
        acc = _train(net)
        with torch.no_grad():
            torch_out = net(torch.from_numpy(x)).numpy()
    except Exception as e:  # noqa: BLE001 - Brevitas refused the config: recorded
        return [_entry(None, "Brevitas", "training", config, "", error=_one_line(e))]
    print(f"{config}: test accuracy {acc:.4f}", file=sys.stderr)
    rows = []
    for form in ("QONNX", "QCDQ"):
        reference = "qonnx" if form == "QONNX" else "ort-int8"
        for exporter in EXPORTERS:
            name = f"{config}.{form.lower()}.{'ts' if exporter == 'torchscript' else 'dynamo'}"
            path = OUT / f"{name}.onnx"
            try:
                _export(net, form, exporter, path, torch.from_numpy(x[:2]))
                _record(path, reference, x, torch_out)
            except Exception as e:  # noqa: BLE001 - an exporter failure is recorded, not fatal
                print(f"  {name}: {_one_line(e)}", file=sys.stderr)
                for p in (path, path.with_suffix(".npz")):
                    p.unlink(missing_ok=True)
                rows.append(_entry(None, form, exporter, config, reference, error=_one_line(e)))
                continue
            rows.append(_entry(name, form, exporter, config, reference,
                               note=f"{desc}; float test accuracy (Brevitas) {acc:.4f}"))
    src = OUT / f"{config}.qonnx.ts.onnx"
    if config in QONNX_PASS_CONFIGS and src.exists():
        rows += _qonnx_passes(src, config, x)
    return rows


def _write_manifest(config: str, rows: list) -> list:
    """Replace the config's rows in models/clients/manifest.json (rows kept in CONFIGS order)."""
    manifest = OUT / "manifest.json"
    kept = json.loads(manifest.read_text())["models"] if manifest.exists() else []
    kept = [r for r in kept if r["config"] != config and r["config"] in CONFIGS]
    rows = sorted(kept + rows, key=lambda r: list(CONFIGS).index(r["config"]))
    manifest.write_text(json.dumps({"models": rows}, indent=1) + "\n")
    return rows


def main(argv: list | None = None) -> int:
    """Build every config, or those named; the manifest is rewritten after each config."""
    only = list(argv if argv is not None else sys.argv[1:]) or list(CONFIGS)
    OUT.mkdir(exist_ok=True)
    x = np.ascontiguousarray(zoo.digits_split()[2][:SAMPLES])
    for config in only:
        rows = _write_manifest(config, build_config(config, x))
    print(f"{sum(1 for r in rows if r['file'])} models, {sum(1 for r in rows if not r['file'])} failed",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
