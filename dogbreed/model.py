"""ResNet50 factory, backbone weights, the fine-tuning policy and the LightningModule."""

from __future__ import annotations

import logging
import math
import urllib.error
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score
from torchvision.models import ResNet, ResNet50_Weights, resnet50

from dogbreed.errors import WeightsError

logger = logging.getLogger(__name__)

IMAGENET_WEIGHTS_URL = ResNet50_Weights.IMAGENET1K_V2.url
FINETUNE_MODES = ("head", "full")
HEAD_PREFIX = "fc."


def build_resnet50(num_classes: int) -> ResNet:
    """A torchvision ResNet50 whose classifier is replaced by a ``num_classes`` head."""
    net = resnet50(weights=None)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def download_imagenet_state_dict(url: str = IMAGENET_WEIGHTS_URL) -> dict[str, torch.Tensor]:
    """Fetch (or take from the torch hub cache) the ImageNet ResNet50 weights, hash-checked."""
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise WeightsError(
            f"could not download the ImageNet ResNet50 weights from {url} ({exc}). Without internet, "
            "pass --weights none to train from scratch, or --weights PATH to a local resnet50 state_dict "
            "(or copy the file into the torch hub cache, $TORCH_HOME/hub/checkpoints)"
        ) from exc


def load_backbone_state_dict(weights: str) -> dict[str, torch.Tensor] | None:
    """Resolve ``--weights``: 'imagenet', 'none' or a path to a ResNet50 state_dict file."""
    if weights.lower() == "none":
        return None
    if weights.lower() == "imagenet":
        return download_imagenet_state_dict()
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"--weights {weights}: no such file. Use imagenet, none or a path to a state_dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the path
        raise WeightsError(f"--weights {path}: cannot load it as a state_dict ({exc})") from exc
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
        raise WeightsError(f"backbone weights do not fit ResNet50 ({exc}). Pass a torchvision resnet50 state_dict") from exc
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
    """The 'head' policy: no gradient through the backbone. BN stats are kept by :meth:`train`."""
    for param in backbone_parameters(net):
        param.requires_grad_(False)


def _stage_metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "acc_top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
        # Compute groups share state between metrics whose states look equal after the first update; an
        # all-correct first batch made macro F1 share top-5 accuracy's state (F1 reported as 1.0).
        compute_groups=False,
    )


class DogBreedClassifier(pl.LightningModule):
    """ResNet50 classifier. Hyperparameters are scalars, so ``load_from_checkpoint(path)`` just works."""

    def __init__(
        self,
        num_classes: int,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        finetune: str = "head",
        backbone_lr_scale: float = 0.1,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        self.save_hyperparameters()
        # channels-last: 1.3-1.9x faster ResNet50 steps on CPU (bench/RESULTS.md) and on tensor cores.
        self.net = build_resnet50(num_classes).to(memory_format=torch.channels_last)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        if finetune == "head":
            freeze_backbone(self.net)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_metrics", _stage_metrics(num_classes, f"{stage}/"))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        self.test_confusion: torch.Tensor | None = None
        self.train()

    @property
    def backbone_frozen(self) -> bool:
        return self.hparams.finetune == "head"

    def _freeze_backbone_batchnorm(self) -> None:
        for name, module in self.net.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith("fc"):
                module.eval()

    def train(self, mode: bool = True) -> "DogBreedClassifier":
        """Keep every backbone BatchNorm in eval mode when the backbone is frozen."""
        super().train(mode)
        if mode and self.backbone_frozen:
            self._freeze_backbone_batchnorm()
        return self

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Lightning restores saved per-module modes after validation without calling train(),
        # so the frozen-BN policy is re-applied before every step (cheap: a walk over ~170 modules).
        if self.backbone_frozen:
            self._freeze_backbone_batchnorm()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.contiguous(memory_format=torch.channels_last))  # like the network

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        loss = self.loss_fn(logits, targets)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        loss_mean: MeanMetric = getattr(self, f"{stage}_loss")
        metrics.update(logits, targets)
        # The epoch loss is a true per-sample mean: each batch mean is weighted by its size.
        loss_mean.update(loss.detach(), weight=targets.numel())
        self.log(f"{stage}/loss", loss_mean, on_step=False, on_epoch=True, batch_size=targets.numel())
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=targets.numel())
        if stage == "test":
            self.test_confmat.update(logits, targets)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.test_confmat.compute().cpu()
        self.test_confmat.reset()

    def configure_optimizers(self):
        head = head_parameters(self.net)
        groups = [{"params": head, "lr": self.hparams.lr}]
        backbone = [p for p in backbone_parameters(self.net) if p.requires_grad]
        if backbone:
            groups.append({"params": backbone, "lr": self.hparams.lr * self.hparams.backbone_lr_scale})
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        estimated = float(self.trainer.estimated_stepping_batches) if self._trainer else 1.0
        total_steps = max(1, int(estimated)) if math.isfinite(estimated) else 1
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
