"""PyTorch definitions of the zoo's networks (needs torch; only models.build imports this).

Every network maps an NCHW float32 batch to float32 logits of shape (N, classes)."""
from __future__ import annotations

from torch import nn


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act=nn.ReLU) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd k) + BatchNorm, then the activation if any."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class DigitsCnn(nn.Module):
    """1x8x8 -> conv3x3(16)+BN+ReLU -> conv3x3(32)+BN+ReLU -> MaxPool2 -> Gemm(512 -> 10)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(conv_bn(1, 16, 3), conv_bn(16, 32, 3), nn.MaxPool2d(2))
        self.fc = nn.Linear(32 * 4 * 4, classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class DigitsDsconv(nn.Module):
    """1x8x8 -> conv3x3(16) -> 2 x [depthwise 3x3 + pointwise 1x1] (BN, ReLU6 after each)
    -> AvgPool2 -> Gemm(32*4*4 -> 10)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        r6 = nn.ReLU6
        self.features = nn.Sequential(
            conv_bn(1, 16, 3, act=r6),
            conv_bn(16, 16, 3, groups=16, act=r6), conv_bn(16, 32, 1, act=r6),
            conv_bn(32, 32, 3, groups=32, act=r6), conv_bn(32, 32, 1, act=r6),
            nn.AvgPool2d(2))
        self.fc = nn.Linear(32 * 4 * 4, classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of divisor, never below 90% of v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6] -> depthwise 3x3 + ReLU6 -> 1x1 project (linear),
    plus the input when stride is 1 and the channel count is unchanged."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


MBV2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))  # (expand, channels, repeats, stride)


class MobileNetV2(nn.Module):
    """MobileNetV2 with a width multiplier: stem conv3x3/2, inverted residual stages,
    1x1 conv to `last` channels, global average pool, Gemm classifier."""

    def __init__(self, width: float = 0.35, classes: int = 10, last: int = 1280):
        super().__init__()
        cin = make_divisible(32 * width)
        layers = [conv_bn(3, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in MBV2_BLOCKS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [conv_bn(cin, last, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv+BN, ReLU between and after the residual Add; the
    shortcut is a 1x1/stride conv+BN when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, 3, act=None))
        self.shortcut = (conv_bn(cin, cout, 1, stride, act=None)
                         if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18: conv7x7/2 + BN + ReLU, MaxPool3x3/2, 4 stages of 2 BasicBlocks
    (64, 128, 256, 512 channels), global average pool, Gemm."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for i, c in enumerate((64, 128, 256, 512)):
            layers += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
            cin = c
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))
