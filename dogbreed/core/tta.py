"""Test-time augmentation: several views of each preprocessed image, one forward, logits averaged.

Modes (stored in the artifact as ``"tta"``, chosen at training with ``--tta``):

- ``none``: the evaluation view (resize to ``resize_size``, centre crop ``image_size``).
- ``flip``: the evaluation view and its horizontal mirror (2 forwards per image).
- ``tencrop``: the four corner crops and the centre crop of the image resized to ``round(image_size * 256/224)``
  (the classic ResNet evaluation scale, so the corners differ from the centre), each also mirrored
  (torchvision's ``ten_crop``, written out in :func:`ten_crop`; 10 forwards per image).

Logits (not probabilities) are averaged, and temperature scaling then applies to the averaged logits: the
temperature is fitted on exactly what serving computes.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from dogbreed.core.constants import TTA_MODES
from dogbreed.core.transforms import EvalTransform, Preprocessing, build_eval_transform

__all__ = ["TTA_MODES", "average_views", "build_tta_transform", "tta_logits", "tta_views", "views_per_image"]
VIEWS = {"none": 1, "flip": 2, "tencrop": 10}
TENCROP_RESIZE_RATIO = 256 / 224


def check_tta_mode(mode: object, where: str = "tta") -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"{where} must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    return str(mode)


def views_per_image(mode: str) -> int:
    return VIEWS[check_tta_mode(mode)]


def canvas_size(pre: Preprocessing, mode: str) -> int:
    """Side of the tensor :func:`build_tta_transform` produces (the views are cut from it)."""
    return round(pre.image_size * TENCROP_RESIZE_RATIO) if mode == "tencrop" else pre.image_size


def build_tta_transform(pre: Preprocessing, mode: str) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> the normalised tensor the views are cut from: the evaluation view itself for ``none`` and
    ``flip`` (so those modes preprocess exactly like evaluation), a larger square canvas for ``tencrop``."""
    if check_tta_mode(mode) != "tencrop":
        return build_eval_transform(pre)
    side = canvas_size(pre, mode)
    return EvalTransform(side, side, pre)


def _five_crop(batch: torch.Tensor, size: int) -> list[torch.Tensor]:
    height, width = batch.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop size {size} is bigger than the canvas ({height}x{width})")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return [batch[..., :size, :size], batch[..., :size, width - size:], batch[..., height - size:, :size],
            batch[..., height - size:, width - size:], batch[..., top:top + size, left:left + size]]


def ten_crop(batch: torch.Tensor, size: int) -> list[torch.Tensor]:
    """torchvision's ``ten_crop`` on (..., H, W): top-left, top-right, bottom-left, bottom-right and centre crops,
    then the same five of the horizontally mirrored canvas."""
    return _five_crop(batch, size) + _five_crop(batch.flip(-1), size)


def tta_views(batch: torch.Tensor, mode: str, image_size: int) -> torch.Tensor:
    """(N, C, H, W) canvases -> (N * V, C, image_size, image_size) views, the V views of an image adjacent."""
    mode = check_tta_mode(mode)
    if mode == "none":
        return batch
    if mode == "flip":
        return torch.stack([batch, batch.flip(-1)], dim=1).flatten(0, 1)
    return torch.stack(ten_crop(batch, image_size), dim=1).flatten(0, 1)


def average_views(logits: torch.Tensor, views: int) -> torch.Tensor:
    """(N * V, C) logits -> (N, C): the mean over each image's V views."""
    return logits if views == 1 else logits.reshape(-1, views, logits.shape[-1]).mean(dim=1)


def tta_logits(net: torch.nn.Module, batch: torch.Tensor, mode: str, image_size: int) -> torch.Tensor:
    """Logits (N, C) of ``net`` averaged over the views of each canvas in ``batch`` (float32)."""
    views = tta_views(batch, mode, image_size).contiguous(memory_format=torch.channels_last)
    return average_views(net(views).float(), views_per_image(mode))
