"""The one preprocessing definition. Its parameters travel inside the model artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from PIL import Image
from torchvision import transforms as T

from dogbreed.constants import DEFAULT_IMAGE_SIZE, EVAL_RESIZE_RATIO, IMAGENET_MEAN, IMAGENET_STD


def eval_resize_size(image_size: int) -> int:
    """Short-side resize before the centre crop: torchvision's 232/224 ratio, scaled."""
    return round(image_size * EVAL_RESIZE_RATIO)


@dataclass(frozen=True)
class Preprocessing:
    """Everything that defines how an image becomes a model input."""

    image_size: int = DEFAULT_IMAGE_SIZE
    resize_size: int = field(default=0)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if not self.resize_size:
            object.__setattr__(self, "resize_size", eval_resize_size(self.image_size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return cls(**{k: data[k] for k in ("image_size", "resize_size", "mean", "std", "interpolation") if k in data})

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest size JPEG draft decoding may reduce to without losing needed detail."""
        return (self.resize_size, self.resize_size)


def _interpolation(name: str) -> T.InterpolationMode:
    return T.InterpolationMode(name)


def _normalize(pre: Preprocessing) -> list[Callable]:
    return [T.ToTensor(), T.Normalize(pre.mean, pre.std)]


def build_train_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Training: random-resized-crop to ``image_size`` and horizontal flip, then normalise."""
    return T.Compose(
        [
            T.RandomResizedCrop(pre.image_size, interpolation=_interpolation(pre.interpolation), antialias=True),
            T.RandomHorizontalFlip(),
            *_normalize(pre),
        ]
    )


def build_eval_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation and serving: resize the short side to ``resize_size``, centre-crop, normalise."""
    return T.Compose(
        [
            T.Resize(pre.resize_size, interpolation=_interpolation(pre.interpolation), antialias=True),
            T.CenterCrop(pre.image_size),
            *_normalize(pre),
        ]
    )
