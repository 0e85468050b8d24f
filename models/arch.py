"""Plain-torch definitions of torchvision architectures (torchvision is not installable beside
torch 2.13 here), plus a Conv1d audio net and a small transformer encoder. Needs torch; only
models.zoo's build step imports this.

The layer configurations follow torchvision's model definitions (torchvision/models/
mobilenetv3.py `_mobilenet_v3_conf("mobilenet_v3_small")`, efficientnet.py
`_efficientnet_conf("efficientnet_b0")`, shufflenetv2.py `shufflenet_v2_x1_0`, regnet.py
`regnet_x_400mf` / `BlockParams.from_init_params`, squeezenet.py `squeezenet1_1`, resnet.py
`resnet50`); the modules are written anew here. Weights are random (a fixed seed), the
classifiers have 1000 classes; dropout and stochastic depth are identities in eval mode and
are left out.

    ARCHS[name]() -> nn.Module      (eval mode is the caller's: models.zoo sets it)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision `_make_divisible`: round v to the nearest multiple of divisor (at least
    min_value, default divisor), then add divisor if that lost more than 10% of v."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_norm_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=nn.ReLU,
                  bn_eps: float = 1e-5) -> nn.Sequential:
    """torchvision `Conv2dNormActivation`: conv (padding (k-1)//2, no bias), BatchNorm2d, act."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=bn_eps)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """torchvision `SqueezeExcitation`: x * gate(fc2(act(fc1(avgpool(x))))), fc1/fc2 1x1 convs
    with bias."""

    def __init__(self, channels: int, squeeze: int, act=nn.ReLU, gate=nn.Sigmoid):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = act()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


# ---- MobileNetV3-Small ----------------------------------------------------------------------
# (in, kernel, expanded, out, squeeze-excite, hardswish, stride), width 1.0, dilation 1
MBV3_SMALL = ((16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2),
              (24, 3, 88, 24, False, False, 1), (24, 5, 96, 40, True, True, 2),
              (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
              (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1),
              (48, 5, 288, 96, True, True, 2), (96, 5, 576, 96, True, True, 1),
              (96, 5, 576, 96, True, True, 1))
MBV3_SMALL_LAST = 1024
MBV3_BN_EPS = 1e-3


class InvertedResidual(nn.Module):
    """self.block(x), plus x where the block keeps shape (stride 1, cin == cout): the residual
    of MobileNetV3's and EfficientNet's inverted-residual blocks."""
    block: nn.Module
    residual: bool

    def forward(self, x):
        y = self.block(x)
        return y + x if self.residual else y


class MobileNetV3Block(InvertedResidual):
    """Inverted residual: [1x1 expand] -> depthwise kxk -> [SE with HardSigmoid gate] -> 1x1
    project, residual when stride 1 and in == out."""

    def __init__(self, cin, k, exp, cout, se, hs, stride):
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers = []
        if exp != cin:
            layers.append(conv_norm_act(cin, exp, 1, act=act, bn_eps=MBV3_BN_EPS))
        layers.append(conv_norm_act(exp, exp, k, stride, groups=exp, act=act, bn_eps=MBV3_BN_EPS))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4, 8), nn.ReLU, nn.Hardsigmoid))
        layers.append(conv_norm_act(exp, cout, 1, act=None, bn_eps=MBV3_BN_EPS))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout


class MobileNetV3Small(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        first, last_in = MBV3_SMALL[0][0], MBV3_SMALL[-1][3]
        layers = [conv_norm_act(3, first, 3, 2, act=nn.Hardswish, bn_eps=MBV3_BN_EPS)]
        layers += [MobileNetV3Block(*c) for c in MBV3_SMALL]
        layers.append(conv_norm_act(last_in, 6 * last_in, 1, act=nn.Hardswish, bn_eps=MBV3_BN_EPS))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, MBV3_SMALL_LAST), nn.Hardswish(),
                                        nn.Linear(MBV3_SMALL_LAST, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---- EfficientNet-B0 ------------------------------------------------------------------------
# (expand ratio, kernel, stride, in, out, layers), width and depth multipliers 1.0
EFFNET_B0 = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))


class MBConv(InvertedResidual):
    """EfficientNet MBConv: [1x1 expand, SiLU] -> depthwise kxk, SiLU -> SE (squeeze = in // 4,
    SiLU, Sigmoid gate) -> 1x1 project; residual when stride 1 and in == out."""

    def __init__(self, expand, k, stride, cin, cout):
        super().__init__()
        exp = make_divisible(cin * expand, 8)
        layers = []
        if exp != cin:
            layers.append(conv_norm_act(cin, exp, 1, act=nn.SiLU))
        layers += [conv_norm_act(exp, exp, k, stride, groups=exp, act=nn.SiLU),
                   SqueezeExcite(exp, max(1, cin // 4), nn.SiLU, nn.Sigmoid),
                   conv_norm_act(exp, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout


class EfficientNetB0(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers = [conv_norm_act(3, EFFNET_B0[0][3], 3, 2, act=nn.SiLU)]
        for expand, k, stride, cin, cout, n in EFFNET_B0:
            layers.append(nn.Sequential(*[MBConv(expand, k, stride if i == 0 else 1, cin if i == 0 else cout, cout)
                                          for i in range(n)]))
        last_in = EFFNET_B0[-1][4]
        layers.append(conv_norm_act(last_in, 4 * last_in, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * last_in, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---- ShuffleNetV2 x1.0 ----------------------------------------------------------------------
SHUFFLENET_REPEATS = (4, 8, 4)
SHUFFLENET_CHANNELS = (24, 116, 232, 464, 1024)


def channel_shuffle(x, groups: int):
    """(N, C, H, W) -> view (N, g, C/g, H, W) -> swap axes 1, 2 -> (N, C, H, W), reading the
    sizes from the tensor as torchvision does (so the export carries the shape arithmetic)."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit. Stride 1: split channels in two, transform the second half, concat,
    shuffle. Stride 2: both branches see the whole input (branch1: depthwise 3x3/2, BN, 1x1,
    BN, ReLU), concat, shuffle."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(conv_norm_act(cin, cin, 3, stride, groups=cin, act=None),
                                         conv_norm_act(cin, half, 1))
        self.branch2 = nn.Sequential(conv_norm_act(cin if stride > 1 else half, half, 1),
                                     conv_norm_act(half, half, 3, stride, groups=half, act=None),
                                     conv_norm_act(half, half, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        c = SHUFFLENET_CHANNELS
        self.conv1 = conv_norm_act(3, c[0], 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], c[0]
        for repeats, cout in zip(SHUFFLENET_REPEATS, c[1:4]):
            stages.append(nn.Sequential(ShuffleUnit(cin, cout, 2), *[ShuffleUnit(cout, cout, 1)
                                                                     for _ in range(repeats - 1)]))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = conv_norm_act(cin, c[4], 1)
        self.fc = nn.Linear(c[4], classes)

    def forward(self, x):
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


# ---- RegNetX-400MF --------------------------------------------------------------------------
REGNET_X_400MF = {"depth": 22, "w_0": 24, "w_a": 24.48, "w_m": 2.54, "group_width": 16}
REGNET_STEM = 32


def regnet_stages(depth: int, w_0: int, w_a: float, w_m: float, group_width: int,
                  bottleneck: float = 1.0) -> list[tuple[int, int, int]]:
    """RegNet's quantized-linear widths (torchvision `BlockParams.from_init_params`): block j
    has width w_0 * w_m^round(log((j*w_a + w_0)/w_0) / log(w_m)), rounded to a multiple of 8;
    consecutive equal widths form a stage; each stage's width is then made divisible by its
    group width (min(group_width, width*bottleneck)). Returns (width, depth, group width) per stage."""
    widths = []
    for j in range(depth):
        cap = round(math.log((j * w_a + w_0) / w_0) / math.log(w_m))
        widths.append(int(round(w_0 * w_m ** cap / 8) * 8))
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:
        w_bot = int(w * bottleneck)
        g = min(group_width, w_bot)
        out.append((int(make_divisible(w_bot, g) / bottleneck), d, g))
    return out


class RegNetBlock(nn.Module):
    """ResBottleneckBlock (no SE for RegNetX): 1x1 -> grouped 3x3 (stride) -> 1x1, plus the
    input (projected by 1x1/stride + BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int):
        super().__init__()
        self.proj = conv_norm_act(cin, cout, 1, stride, act=None) if cin != cout or stride != 1 else None
        self.f = nn.Sequential(conv_norm_act(cin, cout, 1), conv_norm_act(cout, cout, 3, stride,
                                                                         groups=cout // group_width),
                               conv_norm_act(cout, cout, 1, act=None))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act((x if self.proj is None else self.proj(x)) + self.f(x))


class RegNetX400MF(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = conv_norm_act(3, REGNET_STEM, 3, 2)
        blocks, cin = [], REGNET_STEM
        for w, d, g in regnet_stages(**REGNET_X_400MF):
            blocks += [RegNetBlock(cin if i == 0 else w, w, 2 if i == 0 else 1, g) for i in range(d)]
            cin = w
        self.trunk = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.trunk(self.stem(x)), 1), 1))


# ---- SqueezeNet 1.1 -------------------------------------------------------------------------
# Fire modules (squeeze, expand 1x1, expand 3x3) between ceil-mode 3x3/2 max pools ("M")
SQUEEZENET_1_1 = ("M", (16, 64, 64), (16, 64, 64), "M", (32, 128, 128), (32, 128, 128), "M",
                  (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256))


class Fire(nn.Module):
    """squeeze 1x1 + ReLU, then concat(expand 1x1 + ReLU, expand 3x3 pad 1 + ReLU); convs with bias."""

    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1 = nn.Conv2d(squeeze, e1, 1)
        self.e3 = nn.Conv2d(squeeze, e3, 3, padding=1)

    def forward(self, x):
        s = F.relu(self.squeeze(x))
        return torch.cat((F.relu(self.e1(s)), F.relu(self.e3(s))), 1)


class SqueezeNet11(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 64, 3, 2), nn.ReLU()], 64
        for f in SQUEEZENET_1_1:
            if f == "M":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            else:
                layers.append(Fire(cin, *f))
                cin = f[1] + f[2]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Conv2d(cin, classes, 1), nn.ReLU())

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.classifier(self.features(x)), 1), 1)


# ---- ResNet-50 ------------------------------------------------------------------------------
RESNET50_LAYERS = (3, 4, 6, 3)
RESNET_EXPANSION = 4


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 -> 3x3 (stride here) -> 1x1 (x4), plus the input (1x1/stride
    + BN downsample when the shape changes), then ReLU."""

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * RESNET_EXPANSION
        self.body = nn.Sequential(conv_norm_act(cin, width, 1), conv_norm_act(width, width, 3, stride),
                                  conv_norm_act(width, cout, 1, act=None))
        self.down = conv_norm_act(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for i, n in enumerate(RESNET50_LAYERS):
            width = 64 * 2 ** i
            for j in range(n):
                blocks.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * RESNET_EXPANSION
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))


# ---- Conv1d audio net -----------------------------------------------------------------------
# M5-style keyword-spotting net on raw 1-channel audio: (out channels, kernel, stride) per conv,
# each conv + BN + ReLU + MaxPool1d(4); global average pool; Linear to 35 classes.
AUDIO_CONVS = ((32, 80, 4), (32, 3, 1), (64, 3, 1), (64, 3, 1))
AUDIO_CLASSES = 35


class AudioNet(nn.Module):
    def __init__(self, classes: int = AUDIO_CLASSES):
        super().__init__()
        layers, cin = [], 1
        for cout, k, s in AUDIO_CONVS:
            layers += [nn.Conv1d(cin, cout, k, s, bias=False), nn.BatchNorm1d(cout), nn.ReLU(), nn.MaxPool1d(4)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(-1))


# ---- Small transformer encoder --------------------------------------------------------------
ENCODER = {"layers": 2, "d": 128, "heads": 4, "ff": 512, "seq": 32, "classes": 10}


class EncoderLayer(nn.Module):
    """Post-norm encoder layer (torch.nn.TransformerEncoderLayer's arithmetic, written with
    explicit MatMuls so the export keeps MatMul/Softmax/LayerNormalization/Erf): multi-head
    self-attention (softmax(q k^T / sqrt(d_head)) v), residual, LayerNorm, FFN (Linear, GELU,
    Linear), residual, LayerNorm."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x):
        n, t, d = x.shape
        h = self.heads

        def split(y):
            return y.reshape(n, t, h, d // h).transpose(1, 2)      # (n, h, t, d/h)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        a = (att @ v).transpose(1, 2).reshape(n, t, d)
        x = self.ln1(x + self.o(a))
        return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))


class TinyEncoder(nn.Module):
    """(N, seq, d) float embeddings -> 2 encoder layers -> mean over the sequence -> Linear."""

    def __init__(self, classes: int = ENCODER["classes"]):
        super().__init__()
        self.layers = nn.Sequential(*[EncoderLayer(ENCODER["d"], ENCODER["heads"], ENCODER["ff"])
                                      for _ in range(ENCODER["layers"])])
        self.fc = nn.Linear(ENCODER["d"], classes)

    def forward(self, x):
        return self.fc(self.layers(x).mean(1))


ARCHS = {
    "mobilenet_v3_small": MobileNetV3Small,
    "efficientnet_b0": EfficientNetB0,
    "shufflenet_v2_x1_0": ShuffleNetV2,
    "regnet_x_400mf": RegNetX400MF,
    "squeezenet1_1": SqueezeNet11,
    "resnet50": ResNet50,
    "audio_conv1d": AudioNet,
    "tiny_encoder": TinyEncoder,
}
