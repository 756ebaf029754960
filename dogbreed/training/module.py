"""The LightningModule: loss, torchmetrics per stage, optimiser and schedule around the core network, and the
accuracy recipe's batch mixing (MixUp/CutMix on training batches, ``torchvision.transforms.v2``)."""

from __future__ import annotations

import math
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score
from torchvision.transforms import v2

from dogbreed.core.constants import FINETUNE_MODES
from dogbreed.core.network import (
    backbone_parameters,
    build_resnet50,
    freeze_backbone_batchnorm,
    head_parameters,
)

WARMUP_START = 0.01  # --warmup-epochs ramps the learning rate linearly from 1% of its value
BatchMix = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def build_batch_mix(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> BatchMix | None:
    """MixUp, CutMix, or one of the two at random per batch; None when both alphas are 0.

    Takes (images, integer labels) and returns (mixed images, soft targets of shape (N, num_classes)).
    """
    choices: list[v2.Transform] = []
    if mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)


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
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        warmup_epochs: int = 0,
        freeze_epochs: int = 0,
    ) -> None:
        super().__init__()
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        self.save_hyperparameters()
        # channels-last: 1.3-1.9x faster ResNet50 steps on CPU (bench/RESULTS.md) and on tensor cores.
        self.net = build_resnet50(num_classes).to(memory_format=torch.channels_last)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # MixUp/CutMix: training batches only; the loss takes the soft targets they produce.
        self.batch_mix = build_batch_mix(num_classes, mixup_alpha, cutmix_alpha)
        self._backbone_frozen = False
        if finetune in ("head", "gradual"):  # gradual: the head first (GradualUnfreeze unfreezes the backbone)
            self.set_backbone_trainable(False)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_metrics", _stage_metrics(num_classes, f"{stage}/"))
            setattr(self, f"{stage}_loss", MeanMetric())
        self.test_confmat = MulticlassConfusionMatrix(num_classes)
        self.test_confusion: torch.Tensor | None = None
        # Per test image, in loader order: loss, target, predicted index and the probabilities of both (reports).
        self.test_samples: dict[str, torch.Tensor] = {}
        self._test_parts: list[dict[str, torch.Tensor]] = []
        self.train()

    @property
    def backbone_frozen(self) -> bool:
        return self._backbone_frozen

    def set_backbone_trainable(self, trainable: bool) -> None:
        """Freeze (no gradients, BatchNorm statistics kept) or unfreeze the backbone; the optimiser must be rebuilt
        after (``configure_optimizers`` sees trainable parameters only)."""
        self._backbone_frozen = not trainable
        for param in backbone_parameters(self.net):
            param.requires_grad_(trainable)
        if not trainable:
            freeze_backbone_batchnorm(self.net)
        elif self.training:
            self.net.train()

    def per_batch_module(self) -> nn.Module:
        """The nn.Module whose forward runs exactly once per batch (what smdebug hooks register)."""
        return self.net

    def train(self, mode: bool = True) -> DogBreedClassifier:
        """Keep every backbone BatchNorm in eval mode when the backbone is frozen."""
        super().train(mode)
        if mode and self.backbone_frozen:
            freeze_backbone_batchnorm(self.net)
        return self

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning restores saved per-module modes after validation without calling train(),
        # so the frozen-BN policy is re-applied before every step (cheap: a walk over ~170 modules).
        if self.backbone_frozen:
            freeze_backbone_batchnorm(self.net)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of images (N, 3, H, W), or of pooled backbone features (N, D): the head phase of a
        gradual run trains on cached features (:mod:`dogbreed.training.gradual`), where only the head runs."""
        if inputs.dim() == 2:
            return self.net.fc(inputs)
        return self.net(inputs.contiguous(memory_format=torch.channels_last))  # like the network

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, targets = batch
        loss_targets = targets
        if stage == "train" and self.batch_mix is not None:
            images, loss_targets = self.batch_mix(images, targets)
            targets = loss_targets.argmax(dim=1)  # accuracy/F1 against each mixed image's dominant label
        logits = self(images)
        loss = self.loss_fn(logits, loss_targets)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        loss_mean: MeanMetric = getattr(self, f"{stage}_loss")
        metrics.update(logits, targets)
        # The epoch loss is a true per-sample mean: each batch mean is weighted by its size.
        loss_mean.update(loss.detach(), weight=targets.numel())
        self.log(f"{stage}/loss", loss_mean, on_step=False, on_epoch=True, batch_size=targets.numel())
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=targets.numel())
        if stage == "test":
            self.test_confmat.update(logits, targets)
            self._keep_test_samples(logits.detach(), targets)
        return loss

    def _keep_test_samples(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        probabilities = torch.softmax(logits.float(), dim=1)
        predicted = probabilities.argmax(dim=1)
        rows = torch.arange(len(targets), device=targets.device)
        self._test_parts.append({
            "loss": nn.functional.cross_entropy(logits.float(), targets, reduction="none").cpu(),
            "target": targets.cpu(), "predicted": predicted.cpu(),
            "predicted_probability": probabilities[rows, predicted].cpu(),
            "target_probability": probabilities[rows, targets].cpu(),
        })

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self._test_parts = []

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.test_confmat.compute().cpu()
        self.test_confmat.reset()
        parts, self._test_parts = self._test_parts, []
        self.test_samples = {key: torch.cat([part[key] for part in parts]) for key in parts[0]} if parts else {}

    def configure_optimizers(self) -> Any:
        head = head_parameters(self.net)
        groups = [{"params": head, "lr": self.hparams["lr"]}]
        backbone = [p for p in backbone_parameters(self.net) if p.requires_grad]
        if backbone:
            groups.append({"params": backbone, "lr": self.hparams["lr"] * self.hparams["backbone_lr_scale"]})
        optimizer = torch.optim.AdamW(groups, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"])
        steps, warmup = self._schedule_steps()
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup))
        scheduler: torch.optim.lr_scheduler.LRScheduler = cosine
        if warmup > 0:
            ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=WARMUP_START, total_iters=warmup)
            scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _schedule_steps(self) -> tuple[int, int]:
        """(optimiser steps, warm-up steps) of the schedule being built: the whole run, or with ``gradual`` the
        head phase (``freeze_epochs``) or the rest (a fresh schedule when the backbone is unfrozen)."""
        estimated = float(self.trainer.estimated_stepping_batches) if self._trainer else 1.0
        total = max(1, int(estimated)) if math.isfinite(estimated) else 1
        epochs = max(1, int(self.trainer.max_epochs or 1)) if self._trainer else 1
        span = epochs
        if self.hparams["finetune"] == "gradual":
            freeze = min(int(self.hparams["freeze_epochs"]), epochs - 1)
            span = freeze if self.backbone_frozen else epochs - freeze
        steps = max(1, round(total * span / epochs))
        warmup = min(steps // 2, round(total * int(self.hparams["warmup_epochs"]) / epochs))
        return steps, warmup
