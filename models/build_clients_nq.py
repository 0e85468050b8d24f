"""Build the NNCF and AMD Quark part of the clients zoo (issue 17) into models/clients/.

    PYTHONPATH=. /work/venv_build/bin/python -m models.build_clients_nq

Build-time only (the `clients-build` extra: torch, nncf 3.4.0, amd-quark 0.13). Trains a small
residual CNN briefly on scikit-learn's digits, exports it to ONNX (opset 17, legacy exporter),
and quantizes it with
  - NNCF ONNX post-training quantization (`nncf.quantize` on the ONNX model, QDQ),
  - AMD Quark ONNX (`quark.onnx.ModelQuantizer`): A8W8, XINT8 (power-of-two scales, the NPU
    format: int8 bias with its own power-of-two scale), A16W8 (int16 activations), and from
    Quark's specs A16W16 and U16W8 (uint16 activations).
Each quantized model is written with an .npz holding the test inputs (key "input") and the
outputs of onnxruntime's optimized session (ORT_ENABLE_ALL, session.qdqisint8allowed=1, one
thread) under the graph output names: the reference the tests compare intsim with. The
manifest models/clients/manifest_nq.json lists one entry per model (file, npz, tool, form,
config, reference).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from models import build, zoo

OUT = zoo.ROOT / "clients"
NAME = "nq_rescnn"
OPSET = 17
SEED = 17
CALIB = 64          # calibration images (digits training split)
TEST = 32           # stored test inputs (digits test split)
REFERENCE = "onnxruntime %s ORT_ENABLE_ALL qdqisint8allowed=1" % ort.__version__


class ResCnn(nn.Module):
    """1x8x8 -> conv3x3(8)+ReLU -> conv3x3(8) + residual Add, ReLU -> MaxPool2 -> Gemm(128 -> 10)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a) + a)
        return self.fc(self.pool(b).flatten(1))


def train(model: nn.Module, epochs: int = 8) -> float:
    """Adam, a few epochs on the digits training split, no weight decay or schedule
    (models.build.train_digits); returns test accuracy."""
    return build.train_digits(model, epochs=epochs, weight_decay=0.0, cosine=False, seed=SEED)


def export(model: nn.Module, path: Path) -> None:
    dummy = torch.zeros(2, 1, 8, 8)
    torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                      input_names=[zoo.INPUT_NAME], output_names=[zoo.OUTPUT_NAME],
                      dynamic_axes={zoo.INPUT_NAME: {0: "N"}, zoo.OUTPUT_NAME: {0: "N"}})


def calibration() -> np.ndarray:
    return np.ascontiguousarray(zoo.digits_split()[0][:CALIB])


def test_inputs() -> np.ndarray:
    return np.ascontiguousarray(zoo.digits_split()[2][:TEST])


def deployed_outputs(path: Path, x: np.ndarray) -> dict:
    """The outputs of onnxruntime's optimized session (the one a user deploys)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {zoo.INPUT_NAME: x})))


class _Reader:
    """onnxruntime-style CalibrationDataReader over one array, 8 images a batch."""

    def __init__(self, x: np.ndarray):
        self._it = iter([{zoo.INPUT_NAME: x[i:i + 8]} for i in range(0, len(x), 8)])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        pass


def nncf_ptq(src: Path, dst: Path) -> None:
    import nncf
    model = onnx.load(str(src))
    x = calibration()
    ds = nncf.Dataset([x[i:i + 1] for i in range(len(x))], lambda a: {zoo.INPUT_NAME: a})
    q = nncf.quantize(model, ds, subset_size=len(x))
    onnx.save(q, str(dst))


def quark_config(name: str):
    """A built-in Quark config (quark.onnx.quantization.config.custom_config.<name>_QCONFIG), or
    one made from Quark's own specs with A16W8's options: "A16W16" (Int16Spec weights too),
    "U16W8" (UInt16Spec activations)."""
    from quark.onnx import QConfig
    from quark.onnx.quantization.config import custom_config
    from quark.onnx.quantization.config.spec import Int8Spec, Int16Spec, QLayerConfig, UInt16Spec
    made = {"A16W16": (Int16Spec, Int16Spec), "U16W8": (UInt16Spec, Int8Spec)}
    if name in made:
        act, weight = made[name]
        return QConfig(QLayerConfig(activation=act(), weight=weight()),
                       extra_options=dict(custom_config.A16W8_QCONFIG.extra_options))
    cfg = getattr(custom_config, f"{name}_QCONFIG")
    assert isinstance(cfg, QConfig)
    return cfg


def quark_ptq(config: str, src: Path, dst: Path) -> None:
    from quark.onnx import ModelQuantizer

    class Reader(_Reader):
        def __init__(self, x):
            self.x = x
            self.rewind()

        def rewind(self):
            self._it = iter([{zoo.INPUT_NAME: self.x[i:i + 1]} for i in range(len(self.x))])

    ModelQuantizer(quark_config(config)).quantize_model(str(src), str(dst), Reader(calibration()))


BUILDS = [  # (file stem, tool, form, config, builder)
    ("nncf_ptq", "nncf 3.4.0", "qdq", "nncf.quantize defaults (ONNX PTQ)", nncf_ptq),
    ("quark_a8w8", "amd-quark 0.13", "qdq", "A8W8", lambda s, d: quark_ptq("A8W8", s, d)),
    ("quark_xint8", "amd-quark 0.13", "qdq", "XINT8", lambda s, d: quark_ptq("XINT8", s, d)),
    ("quark_a16w8", "amd-quark 0.13", "qdq", "A16W8", lambda s, d: quark_ptq("A16W8", s, d)),
    ("quark_a16w16", "amd-quark 0.13", "qdq", "A16W16 (Int16Spec activations and weights)",
     lambda s, d: quark_ptq("A16W16", s, d)),
    ("quark_u16w8", "amd-quark 0.13", "qdq", "U16W8 (UInt16Spec activations, Int8Spec weights)",
     lambda s, d: quark_ptq("U16W8", s, d)),
]


def main(argv: list[str] | None = None) -> int:
    only = set(argv if argv is not None else sys.argv[1:])
    torch.manual_seed(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)     # Quark writes quantized_info.csv into the working directory
        float_path = Path(d) / f"{NAME}.onnx"
        model = ResCnn()
        print(f"{NAME}: float test accuracy {train(model):.4f}", file=sys.stderr)
        export(model, float_path)
        x = test_inputs()
        entries = []
        for stem, tool, form, config, build in BUILDS:
            if only and stem not in only:
                continue
            path = OUT / f"{NAME}.{stem}.onnx"
            build(float_path, path)
            m = onnx.load(str(path))
            m.producer_name = m.producer_name or tool
            onnx.save(m, str(path))
            npz = path.with_suffix(".npz")
            outs = deployed_outputs(path, x)
            # the zoo's npz keys (tests/clients/zoo_table.py): input/NAME, reference/NAME
            np.savez_compressed(npz, **{f"input/{zoo.INPUT_NAME}": x}, **{f"reference/{k}": v for k, v in outs.items()})
            print(f"{path.name}: {os.path.getsize(path)} bytes", file=sys.stderr)
            entries.append({"file": path.name, "npz": npz.name, "tool": tool, "form": form,
                            "config": config, "reference": "ort-int8", "target": "ort", "note": REFERENCE})
    if not only:
        (OUT / "manifest_nq.json").write_text(json.dumps({"models": entries}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
