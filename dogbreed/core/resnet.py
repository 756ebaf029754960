"""ResNet50 in plain torch: torchvision's architecture, module names and initialisation, without importing torchvision.

Why: ``import torchvision`` costs about 1.3 s on a 2-core machine (its ``ops`` package imports ``torch._dynamo``),
paid by every endpoint worker at cold start and by every ``predict``, though serving needs nothing from it but this
network and a resize. This is torchvision's ``resnet50`` (V1.5: the stride on the 3x3 convolution) written out: the same
``state_dict`` keys and shapes, the same forward, and the same draws from torch's RNG in the same order when built, so
a seeded ``--weights none`` run starts from the same weights as before (tests/core/test_resnet.py compares all three
against torchvision). torchvision's ImageNet checkpoints and any torchvision ``resnet50`` state_dict load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's resnet50: Bottleneck blocks per stage, and each stage's width (the block outputs 4x).
RESNET50_LAYERS = (3, 4, 6, 3)
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
FEATURES = STAGE_WIDTHS[-1] * EXPANSION  # what the pooled backbone hands the classifier: 2048


def conv3x3(in_planes: int, out_planes: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here) -> 1x1 (x4 channels), plus the identity or a projection of it."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * EXPANSION)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet50 with a ``num_classes`` classifier ``fc``; attribute names are torchvision's (conv1 ... layer4, fc)."""

    def __init__(self, num_classes: int, layers: tuple[int, ...] = RESNET50_LAYERS) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(STAGE_WIDTHS[0], layers[0])
        self.layer2 = self._make_layer(STAGE_WIDTHS[1], layers[1], stride=2)
        self.layer3 = self._make_layer(STAGE_WIDTHS[2], layers[2], stride=2)
        self.layer4 = self._make_layer(STAGE_WIDTHS[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(FEATURES, num_classes)
        if self.fc.weight.is_meta:  # shapes only, every tensor is assigned later (load_artifact); initialising meta
            return  # tensors would import torch._dynamo (torch._refs.normal_), ~1.3 s of a worker's cold start
        for m in self.modules():  # torchvision's initialisation, in its order
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        # Every stage's first block changes the channel count (64 -> 256, 256 -> 512, 512 -> 1024, 1024 -> 2048), so
        # in ResNet50 each one has a projection (torchvision's condition, stride != 1 or a channel change, always holds)
        downsample = nn.Sequential(conv1x1(self.inplanes, planes * EXPANSION, stride),
                                   nn.BatchNorm2d(planes * EXPANSION))
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * EXPANSION
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
