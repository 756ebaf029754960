"""The network: a ResNet50 (torchvision's, written out in :mod:`dogbreed.core.resnet`) with a new head, its backbone
weights, and the fine-tuning split.

Torch only: torchvision is not imported. The LightningModule that trains it lives in :mod:`dogbreed.training.module`;
serving rebuilds the same network from the artifact without Lightning.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
from torch import nn

from dogbreed.core.errors import WeightsError, state_dict_mismatch, torch_load_reason
from dogbreed.core.resnet import FEATURES, ResNet

# torchvision's ResNet50_Weights.IMAGENET1K_V2 and _V1 (tests/core/test_resnet.py checks them against torchvision).
IMAGENET_WEIGHTS_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"
# --weights names of torchvision's two ImageNet ResNet50 checkpoints ("imagenet" is V2: 80.9% top-1 vs 76.1%).
IMAGENET_WEIGHTS_URLS = {"imagenet": IMAGENET_WEIGHTS_URL, "imagenet-v2": IMAGENET_WEIGHTS_URL,
                         "imagenet-v1": "https://download.pytorch.org/models/resnet50-0676ba61.pth"}
HEAD_PREFIX = "fc."


def build_resnet50(num_classes: int) -> ResNet:
    """A ResNet50 whose classifier is replaced by a ``num_classes`` head (built as torchvision builds it, then
    a fresh head: the same draws from torch's RNG as ``torchvision.models.resnet50()`` followed by a new ``fc``)."""
    net = ResNet(1000)
    net.fc = nn.Linear(FEATURES, num_classes)
    return net


def download_imagenet_state_dict(url: str = IMAGENET_WEIGHTS_URL) -> dict[str, torch.Tensor]:
    """Fetch (or take from the torch hub cache) the ImageNet ResNet50 weights, hash-checked."""
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsError(
            f"could not download the ImageNet ResNet50 weights from {url} ({exc}). Without internet, "
            "pass --weights none --finetune full to train from scratch, or --weights PATH to a local resnet50 "
            "state_dict (or copy the file into the torch hub cache, $TORCH_HOME/hub/checkpoints)"
        ) from exc


def load_backbone_state_dict(weights: str) -> dict[str, torch.Tensor] | None:
    """Resolve ``--weights``: 'imagenet' (= 'imagenet-v2'), 'imagenet-v1', 'none' or a path to a state_dict."""
    keyword = weights.strip().lower()
    if keyword == "none":
        return None
    if keyword in IMAGENET_WEIGHTS_URLS:
        return download_imagenet_state_dict(IMAGENET_WEIGHTS_URLS[keyword])
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"--weights {weights}: no such file. Use imagenet (V2), imagenet-v1, none or a path to "
                           "a state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"--weights {path}: cannot load it as a state_dict ({torch_load_reason(exc)})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"--weights {path}: expected a state_dict (a dict of tensors), got {type(state).__name__}")
    return state


def apply_backbone_weights(net: ResNet, state: dict[str, torch.Tensor]) -> None:
    """Copy every backbone tensor from ``state``; the head keeps its fresh initialisation."""
    backbone = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    try:
        missing, unexpected = net.load_state_dict(backbone, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise WeightsError(f"backbone weights do not fit ResNet50 ({state_dict_mismatch(exc)}). "
                           "Pass a torchvision resnet50 state_dict") from exc
    missing = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if missing or unexpected:
        raise WeightsError(
            f"backbone weights do not fit ResNet50: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Pass a torchvision resnet50 state_dict"
        )


def backbone_parameters(net: ResNet) -> list[nn.Parameter]:
    return [p for name, p in net.named_parameters() if not name.startswith(HEAD_PREFIX)]


def head_parameters(net: ResNet) -> list[nn.Parameter]:
    return list(net.fc.parameters())


def freeze_backbone(net: ResNet) -> None:
    """The 'head' policy: no gradient through the backbone (BatchNorm: see :func:`freeze_backbone_batchnorm`)."""
    for param in backbone_parameters(net):
        param.requires_grad_(False)


def freeze_backbone_batchnorm(net: ResNet) -> None:
    """Put every backbone BatchNorm in eval mode, so a frozen backbone's running statistics never drift."""
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(HEAD_PREFIX.rstrip(".")):
            module.eval()
