"""The LightningModule's wiring that a short run does not show: which stages mix their batches and what the metrics
are scored against, the exact learning-rate curve of warm-up then cosine, and BatchNorm's mode when a gradual run
unfreezes the backbone. Expected values are written out by hand."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dogbreed.training.module import DogBreedClassifier

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


class FixedLogits(nn.Module):
    """Stands in for the ResNet50: the same logits whatever the images."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits.clone()


class RecordingLoss(nn.Module):
    """Records the targets the loss is given (a zero loss: nothing is trained here)."""

    def __init__(self, seen: list[torch.Tensor]) -> None:
        super().__init__()
        self.seen = seen

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.seen.append(targets.clone())
        return logits.sum() * 0


@pytest.fixture
def model() -> DogBreedClassifier:
    return DogBreedClassifier(num_classes=3, finetune="head")


# The network predicts 1, 0, 2, 2; the integer labels are 0, 1, 2, 0; the mix makes labels 1, 0, 2, 1 dominant.
LOGITS = torch.tensor([[0.0, 4.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 4.0]])
LABELS = torch.tensor([0, 1, 2, 0])
SOFT = torch.tensor([[0.3, 0.7, 0.0], [0.6, 0.4, 0.0], [0.0, 0.2, 0.8], [0.45, 0.55, 0.0]])


def _wired(model: DogBreedClassifier) -> tuple[list, list]:
    mixes: list[torch.Tensor] = []
    losses: list[torch.Tensor] = []

    def mix(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixes.append(targets.clone())
        return images, SOFT.clone()

    model.net = FixedLogits(LOGITS)
    model.batch_mix = mix
    model.loss_fn = RecordingLoss(losses)
    return mixes, losses


def test_only_training_batches_are_mixed_and_the_loss_takes_their_soft_targets(model):
    mixes, losses = _wired(model)
    images = torch.zeros(4, 3, 8, 8)
    model.validation_step((images, LABELS), 0)
    model.on_test_epoch_start()
    model.test_step((images, LABELS), 0)
    assert mixes == []  # validation and test see the images as they are
    assert [t.tolist() for t in losses] == [[0, 1, 2, 0], [0, 1, 2, 0]]
    model.training_step((images, LABELS), 0)
    assert [t.tolist() for t in mixes] == [[0, 1, 2, 0]]
    assert torch.equal(losses[-1], SOFT)


def test_training_metrics_score_the_dominant_label_of_each_mixed_image(model):
    _wired(model)
    model.training_step((torch.zeros(4, 3, 8, 8), LABELS), 0)
    values = {k: float(v) for k, v in model.train_metrics.compute().items()}
    # predicted 1, 0, 2, 2 against dominant 1, 0, 2, 1: 3 of 4 (against the integer labels 0, 1, 2, 0: 1 of 4;
    # against the least likely label, argmin: 2, 2, 0, 2, 1 of 4)
    assert values["train/acc"] == pytest.approx(0.75)
    model.validation_step((torch.zeros(4, 3, 8, 8), LABELS), 0)
    assert float(model.val_metrics.compute()["val/acc"]) == pytest.approx(0.25)  # the labels themselves


def test_a_test_pass_starts_from_nothing_even_after_one_that_was_interrupted(model):
    _wired(model)
    images = torch.zeros(4, 3, 8, 8)
    model.on_test_epoch_start()
    model.test_step((images, torch.tensor([2, 2, 2, 2])), 0)  # a pass stopped here: no epoch end
    model.on_test_epoch_start()
    model.test_step((images, LABELS), 0)
    model.on_test_epoch_end()
    assert model.test_samples["target"].tolist() == [0, 1, 2, 0]  # the stale batch's targets are gone
    assert model.test_samples["predicted"].tolist() == [1, 0, 2, 2]


def _lrs(model: DogBreedClassifier, total: int, epochs: int) -> list[list[float]]:
    """The lr of every parameter group before each of ``total`` optimiser steps and after the last."""
    model._trainer = SimpleNamespace(estimated_stepping_batches=total, max_epochs=epochs)
    try:
        configured = model.configure_optimizers()
    finally:
        model._trainer = None
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scheduler.step() without optimizer.step()
        for _ in range(total):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            scheduler.step()
    seen.append([group["lr"] for group in optimizer.param_groups])
    return seen


def test_warmup_ramps_from_one_percent_then_the_cosine_reaches_zero_at_the_last_step():
    model = DogBreedClassifier(num_classes=3, finetune="full", lr=1.0, backbone_lr_scale=0.1, warmup_epochs=1)
    seen = _lrs(model, total=10, epochs=5)  # 2 steps an epoch: 2 warm-up steps, then 8 of cosine
    head = [lrs[0] for lrs in seen]
    expected = [0.01, 0.505,  # linear from 1% (0.01 + 0.99 / 2)
                *[0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(9)]]  # 1.0 ... 0.0 over the 8 other steps
    assert head == pytest.approx(expected, abs=1e-9)
    assert head[-1] == pytest.approx(0.0, abs=1e-12)
    assert [lrs[1] for lrs in seen] == pytest.approx([0.1 * v for v in expected], abs=1e-10)  # the backbone's


def test_without_warmup_the_cosine_spans_every_step():
    model = DogBreedClassifier(num_classes=3, finetune="head", lr=0.2)
    head = [lrs[0] for lrs in _lrs(model, total=4, epochs=2)]
    assert head == pytest.approx([0.2, 0.2 * (1 + math.cos(math.pi / 4)) / 2, 0.1,
                                  0.2 * (1 + math.cos(3 * math.pi / 4)) / 2, 0.0], abs=1e-9)


def _batchnorm_modes(model: DogBreedClassifier) -> set[bool]:
    return {m.training for m in model.net.modules() if isinstance(m, nn.BatchNorm2d)}


def test_unfreezing_puts_the_backbone_batchnorm_back_in_training_mode_only_while_training():
    model = DogBreedClassifier(num_classes=3, finetune="gradual").train()
    assert model.backbone_frozen and _batchnorm_modes(model) == {False}  # frozen: running statistics kept
    model.set_backbone_trainable(True)
    assert _batchnorm_modes(model) == {True}  # the backbone learns again, statistics included
    assert all(p.requires_grad for p in model.net.parameters())
    evaluated = DogBreedClassifier(num_classes=3, finetune="gradual").eval()
    evaluated.set_backbone_trainable(True)
    assert _batchnorm_modes(evaluated) == {False} and not evaluated.net.training  # an eval-mode model stays so


def test_a_frozen_backbone_batchnorm_is_put_back_in_eval_mode_before_every_training_step():
    model = DogBreedClassifier(num_classes=3, finetune="head").train()
    model.net.train()  # what Lightning's restore of saved module modes after validation can leave
    assert _batchnorm_modes(model) == {True}
    model.on_train_batch_start(None, 0)
    assert _batchnorm_modes(model) == {False}  # running statistics of the frozen backbone must not drift
    full = DogBreedClassifier(num_classes=3, finetune="full").train()
    full.on_train_batch_start(None, 0)
    assert _batchnorm_modes(full) == {True}
