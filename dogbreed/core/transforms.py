"""The one preprocessing definition. Its parameters travel inside the model artifact.

Evaluation and serving preprocess with Pillow and NumPy only: torchvision's ``Resize`` + ``CenterCrop`` on a PIL
image, written out (:func:`resize_short_side`, :func:`center_crop`; tests/core/test_preprocessing_recipe.py checks
them pixel for pixel against torchvision), so that serving never imports torchvision (about 1.3 s of an endpoint
worker's cold start). Training's augmentation is torchvision ``transforms.v2`` (:mod:`dogbreed.core.augment`,
imported when a training transform is built).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from dogbreed.core.constants import (
    AUGMENT_POLICIES,
    DEFAULT_CROP_SCALE,
    DEFAULT_IMAGE_SIZE,
    EVAL_RESIZE_RATIO,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from dogbreed.core.image_policy import DECODE_POLICY, ImagePolicy
from dogbreed.core.images import ImageSource, open_image

# Preprocessing fields that only shape training inputs.
TRAINING_ONLY_FIELDS = ("crop_scale", "crop_min_side", "augment", "random_erasing")
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
    # Training only (evaluation and serving never augment): the area range RandomResizedCrop samples, the share of
    # image_size a crop keeps of a small image's short side (0 = off), the policy and the RandomErasing probability.
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE
    crop_min_side: float = 0.0
    augment: str = "default"
    random_erasing: float = 0.0

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
        if self.augment not in AUGMENT_POLICIES:
            raise ValueError(f"augment must be one of {', '.join(AUGMENT_POLICIES)}, got {self.augment!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eval_dict(self) -> dict[str, Any]:
        """The fields that shape evaluation and serving inputs (everything but the training augmentation)."""
        return {k: v for k, v in self.to_dict().items() if k not in TRAINING_ONLY_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        keys = ("image_size", "resize_size", "mean", "std", "interpolation", *TRAINING_ONLY_FIELDS)
        return cls(**{k: data[k] for k in keys if k in data})

    @property
    def draft_size(self) -> tuple[int, int]:
        """Smallest size JPEG draft decoding may reduce to without losing needed detail.

        Twice the resize size: the DCT-scaled decode then stays within ~0.003 mean abs diff
        (normalised units) of a full decode; a 1600x1200 JPEG decodes at 800x600, ~4x faster
        (tests/core/test_fast_decode.py, bench/bench_decode.py).
        """
        return (DRAFT_OVERSAMPLE * self.resize_size, DRAFT_OVERSAMPLE * self.resize_size)


# torchvision's InterpolationMode value -> the Pillow filter its PIL resize uses (torchvision's pil_modes_mapping).
PIL_FILTERS = {"nearest": Image.Resampling.NEAREST, "nearest-exact": Image.Resampling.NEAREST,
               "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
               "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING, "lanczos": Image.Resampling.LANCZOS}


def resize_short_side(image: Image.Image, size: int, interpolation: str = "bilinear") -> Image.Image:
    """torchvision's ``Resize(size)`` on a PIL image: the short side becomes ``size``, the long side
    ``int(size * long / short)`` (truncated); an image already that size is returned as it is."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size == (width, height):
        return image
    return image.resize(new_size, PIL_FILTERS[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """torchvision's ``CenterCrop(size)`` on a PIL image: the offsets round half to even; a side shorter than
    ``size`` is padded with zeros (the extra pixel, when odd, on the right or bottom)."""
    width, height = image.size
    if size == width == height:
        return image
    pad_left = (size - width) // 2 if size > width else 0
    pad_top = (size - height) // 2 if size > height else 0
    padded_width, padded_height = max(width, size), max(height, size)
    left = int(round((padded_width - size) / 2.0)) - pad_left
    top = int(round((padded_height - size) / 2.0)) - pad_top
    return image.crop((left, top, left + size, top + size))  # Pillow fills outside the image with zeros


class EvalTransform:
    """PIL image -> normalised tensor: short side to ``resize_size``, centre crop ``crop_size``, normalise."""

    def __init__(self, resize_size: int, crop_size: int, pre: "Preprocessing") -> None:
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.interpolation = pre.interpolation
        self.normalize = ToNormalizedTensor(pre.mean, pre.std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.normalize(self.crop(image))

    def crop(self, image: Image.Image) -> Image.Image:
        """The resized and cropped PIL image, before normalisation."""
        return center_crop(resize_short_side(image, self.resize_size, self.interpolation), self.crop_size)


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


def decode_eval_image(source: ImageSource, pre: Preprocessing, *, policy: ImagePolicy = DECODE_POLICY) -> Image.Image:
    """Decode for evaluation and serving (the one shared definition): JPEGs much larger than
    needed are decoded at a reduced DCT scale, never below ``pre.draft_size``. The ``policy`` is checked on the
    header first (serving passes the served one: strict, its formats and limits)."""
    return open_image(source, draft_size=pre.draft_size, strict=policy.strict, policy=policy)


def build_train_transform(pre: Preprocessing, *,
                          scale: tuple[float, float] | None = None) -> Callable[[Any], torch.Tensor]:
    """Training: random-resized-crop to ``image_size`` (area share in ``scale``, default ``pre.crop_scale``, raised
    for small images by ``pre.crop_min_side``) and horizontal flip, ``pre.augment``'s policy, normalise,
    ``pre.random_erasing``. Call it on a decoded image, or ``.load(path)`` to draw the crop before decoding (JPEG draft
    decoding at the scale the crop allows: :mod:`dogbreed.core.augment`). ``augment="none"``: the eval transform."""
    if pre.augment == "none":
        return build_eval_transform(pre)
    from dogbreed.core.augment import TrainTransform  # torchvision: training only

    return TrainTransform(pre.image_size, mean=pre.mean, std=pre.std, interpolation=pre.interpolation,
                          scale=scale or pre.crop_scale, min_side=pre.crop_min_side, policy=pre.augment,
                          erasing=pre.random_erasing)


def build_eval_transform(pre: Preprocessing) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation and serving: resize the short side to ``resize_size``, centre-crop, normalise."""
    return EvalTransform(pre.resize_size, pre.image_size, pre)
