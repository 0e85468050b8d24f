"""Build the warm-up models of `intsim warmup` (models/warmup/, committed; issue 19's cold start).

    PYTHONPATH=. /work/venv_build/bin/python -m models.build_warmup      (needs torch: the models extra)

Numba compiles one machine-code specialization per kernel and argument types (activation dtype
uint8 or int8, a strided or a contiguous destination, the serial or the 2-thread driver), so a
warm-up has to take every engine path a zoo model can take. Two small float nets, random weights,
made of the zoo's own blocks (models.arch) at the zoo's quick input size (64 x 64):

- `cnn` (WideNet): a wide front at 64x64, then MixNet: a stem conv with HardSwish; MobileNetV3
  blocks (depthwise 3x3 and 5x5, squeeze-excite with a HardSigmoid gate, residual add);
  EfficientNet MBConvs (SiLU, Sigmoid gate, stride 2); ShuffleNetV2 units (split, concat, channel
  shuffle); RegNetX blocks (grouped 3x3 convs of group width 16 and 8); a SqueezeNet Fire module
  after a ceil-mode max pool; ResNet bottlenecks (strided 3x3, 1x1 downsample); global average
  pool; Linear. The front's steps are above the serial threshold (their 2-thread kernels), most
  of MixNet's below.
- `audio`: the zoo's Conv1d audio net (models.arch.AudioNet) at the quick input size: 1-D convs
  and MaxPools held channels-last, and its float tail DQ -> ReduceMean over the time axis -> Q
  (kernels.ort_mean: no other warm-up net has a float mean; the CNN pools by GlobalAveragePool).
- `encoder`: one layer of the zoo's transformer encoder (models.arch.EncoderLayer, d 128, 4 heads,
  seq 32; attention MatMuls, Softmax, LayerNormalization, GELU) and a Linear head.

Each is quantized by onnxruntime in every zoo form (models.quantize.ARCH_FORM_OPTIONS: QDQ and
QOperator, uint8 and int8 activations; the encoder also `dynamic` and `dynamic_opt`), calibrated on
zoo.arch_inputs. Only the quantized files are kept (models/warmup/<net>.<form>.onnx).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models import arch, build, quantize, zoo

OUT = Path(__file__).resolve().parent / "warmup"
RES = 64
SEED = 0


class MixNet(nn.Module):
    """One of each zoo CNN block (see the module docstring); (N, 3, 64, 64) -> (N, 10)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            arch.conv_norm_act(3, 16, 3, 2, act=nn.Hardswish),                 # 32x32
            arch.MobileNetV3Block(16, 3, 64, 24, True, True, 1),
            arch.MobileNetV3Block(24, 5, 96, 24, True, True, 1),               # residual
            arch.MBConv(4, 3, 2, 24, 32),                                      # 16x16
            arch.MBConv(4, 5, 1, 32, 32),
            arch.ShuffleUnit(32, 64, 2),                                       # 8x8
            arch.ShuffleUnit(64, 64, 1),
            arch.RegNetBlock(64, 64, 1, 16),
            arch.RegNetBlock(64, 96, 2, 8),                                    # 4x4
            nn.MaxPool2d(3, 2, ceil_mode=True),                                # 2x2
            arch.Fire(96, 16, 48, 48),
            arch.Bottleneck(96, 32, 1),
            arch.Bottleneck(128, 32, 2),                                       # 1x1
        )
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


class Encoder(nn.Module):
    """One zoo encoder layer (d 128, 4 heads, ff 512), mean over the sequence, Linear."""

    def __init__(self, classes: int = 10):
        super().__init__()
        d, heads, ff = arch.ENCODER["d"], arch.ENCODER["heads"], arch.ENCODER["ff"]
        self.layer = arch.EncoderLayer(d, heads, ff)
        self.fc = nn.Linear(d, classes)

    def forward(self, x):
        return self.fc(self.layer(x).mean(1))


class WideNet(nn.Module):
    """A wide front at 64x64 (3x3 conv 3->32, 1x1 32->64, depthwise 3x3 and 5x5 over 64
    channels, a RegNetX block, 1x1 64->3: steps large enough for the 2-thread conv, im2col and
    depthwise kernels at batch 1), then MixNet."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.front = nn.Sequential(
            arch.conv_norm_act(3, 32, 3, 1),
            arch.conv_norm_act(32, 64, 1),
            arch.conv_norm_act(64, 64, 3, 1, groups=64),
            arch.conv_norm_act(64, 64, 5, 1, groups=64),
            arch.RegNetBlock(64, 64, 1, 16),
            arch.conv_norm_act(64, 3, 1),
        )
        self.mix = MixNet(classes)

    def forward(self, x):
        return self.mix(self.front(x))


NETS = {"cnn": (WideNet, "image"), "audio": (arch.AudioNet, "audio"), "encoder": (Encoder, "tokens")}
FORMS = {"image": ("qdq_u8", "qdq_s8", "qop_u8", "qop_s8"), "audio": ("qdq_u8", "qdq_s8", "qop_u8", "qop_s8"),
         "tokens": ("qdq_u8", "qdq_s8", "qop_u8", "qop_s8", "dynamic", "dynamic_opt")}


def inputs(kind: str, n: int, seed: int) -> np.ndarray:
    """zoo.arch_inputs of the zoo net with that input kind (image 3x64x64, audio 1x4571, tokens
    32x128)."""
    zoo_net = {"image": "mobilenet_v3_small", "audio": "audio_conv1d", "tokens": "tiny_encoder"}[kind]
    return zoo.arch_inputs(zoo_net, n, seed, RES)


def build_net(name: str, out: Path = OUT) -> list[Path]:
    cls, kind = NETS[name]
    torch.manual_seed(SEED)
    model = cls()
    if kind in ("image", "audio"):
        build.realistic_batchnorm(model, name, images=lambda n, s: inputs(kind, n, s), batch=8)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as d:
        fp = Path(d) / f"{name}.onnx"
        build.export(model, name, fp, dummy=inputs(kind, 2, 0))
        for form in FORMS[kind]:
            dst = out / f"{name}.{form}.onnx"
            if form in quantize.ARCH_FORM_OPTIONS:
                reader = zoo.array_reader(inputs(kind, 8, 1), 2)
                quantize.quantize_static_file(fp, quantize.ARCH_FORM_OPTIONS[form], reader, dst)
            else:
                quantize.quantize_arch(fp, form, "tiny_encoder", RES, dst)
            paths.append(dst)
            print(f"{dst.name}: {dst.stat().st_size // 1024} KB", file=sys.stderr)
    return paths


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(NETS)
    for n in names:
        build_net(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
