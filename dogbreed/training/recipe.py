"""The accuracy recipe's training-time parts, built on what the libraries provide: an exponential moving
average of the weights (Lightning's ``WeightAveraging`` over ``torch.optim.swa_utils.AveragedModel`` with
``get_ema_multi_avg_fn``) and MixUp/CutMix on training batches (``torchvision.transforms.v2``)."""

from __future__ import annotations

from typing import Callable

import torch
from pytorch_lightning.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torchvision.transforms import v2

BatchMix = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class EMAWeights(WeightAveraging):
    """EMA of every parameter and buffer (BatchNorm statistics too), updated after each optimiser step:
    ``ema = decay * ema + (1 - decay) * weights`` (the first update copies the weights).

    Lightning swaps the average in for validation and copies it into the model when training ends, so the
    test pass, calibration and the exported artifact all use the averaged weights; checkpoints keep both.
    """

    def __init__(self, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay


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
