"""The one preprocessing definition. Its parameters travel inside the model artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from dogbreed.core.augment import TrainTransform
from dogbreed.core.constants import (
    DEFAULT_CROP_SCALE,
    DEFAULT_IMAGE_SIZE,
    EVAL_RESIZE_RATIO,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from dogbreed.core.image_policy import DECODE_POLICY, ImagePolicy
from dogbreed.core.images import ImageSource, open_image

# JPEG draft decoding keeps at least this multiple of the eval resize size (see draft_size).
DRAFT_OVERSAMPLE = 2


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
    # Training only: the area range RandomResizedCrop samples (evaluation and serving never crop at random).
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if not self.resize_size:
            object.__setattr__(self, "resize_size", eval_resize_size(self.image_size))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        low, high = (float(v) for v in self.crop_scale)
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        object.__setattr__(self, "crop_scale", (low, high))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eval_dict(self) -> dict[str, Any]:
        """The fields that shape evaluation and serving inputs (everything but the training crop range)."""
        return {k: v for k, v in self.to_dict().items() if k != "crop_scale"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        keys = ("image_size", "resize_size", "mean", "std", "interpolation", "crop_scale")
        return cls(**{k: data[k] for k in keys if k in data})

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest size JPEG draft decoding may reduce to without losing needed detail.

        Twice the resize size: the DCT-scaled decode then stays within ~0.003 mean abs diff
        (normalised units) of a full decode; a 1600x1200 JPEG decodes at 800x600, ~4x faster
        (tests/core/test_fast_decode.py, bench/bench_decode.py).
        """
        return (DRAFT_OVERSAMPLE * self.resize_size, DRAFT_OVERSAMPLE * self.resize_size)


def _interpolation(name: str) -> T.InterpolationMode:
    return T.InterpolationMode(name)


class ToNormalizedTensor:
    """PIL RGB image -> normalised float CHW tensor: ``ToTensor`` + ``Normalize`` in one NumPy pass.

    Same values as the torchvision pair (within float rounding, ~1e-6), but per-image torch
    element-wise ops pay an intra-op thread wake-up each; with num_workers=0 on a busy 2-core
    machine that cost ~45 ms per 224px image against ~0.6 ms here (bench/bench_decode.py). With a
    single torch thread (DataLoader workers) the torch pair is slightly faster (0.17 vs 0.38 ms).
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32) * 255.0
        self.scale = 1.0 / (np.asarray(std, dtype=np.float32) * 255.0)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = np.asarray(image, dtype=np.float32)
        if array.ndim == 2:
            array = np.repeat(array[..., None], len(self.mean), axis=2)
        chw = ((array - self.mean) * self.scale).transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(chw))


def _normalize(pre: Preprocessing) -> list[Callable]:
    return [ToNormalizedTensor(pre.mean, pre.std)]


def decode_eval_image(source: ImageSource, pre: Preprocessing, *, policy: ImagePolicy = DECODE_POLICY) -> Image.Image:
    """Decode for evaluation and serving (the one shared definition): JPEGs much larger than
    needed are decoded at a reduced DCT scale, never below ``pre.draft_size``. The ``policy`` is checked on the
    header first (serving passes the served one: strict, its formats and limits)."""
    return open_image(source, draft_size=pre.draft_size, strict=policy.strict, policy=policy)


def build_train_transform(pre: Preprocessing, *, scale: tuple[float, float] | None = None) -> TrainTransform:
    """Training: random-resized-crop to ``image_size`` (area share in ``scale``, default ``pre.crop_scale``) and
    horizontal flip, then normalise. Call it on a decoded image, or ``.load(path)`` to draw the crop before decoding
    (JPEG draft decoding at the scale the crop allows: :mod:`dogbreed.core.augment`)."""
    return TrainTransform(pre.image_size, mean=pre.mean, std=pre.std, interpolation=pre.interpolation,
                          scale=scale or pre.crop_scale)


def build_eval_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation and serving: resize the short side to ``resize_size``, centre-crop, normalise."""
    return T.Compose(
        [
            T.Resize(pre.resize_size, interpolation=_interpolation(pre.interpolation), antialias=True),
            T.CenterCrop(pre.image_size),
            *_normalize(pre),
        ]
    )
