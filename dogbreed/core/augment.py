"""The training augmentation, fast per core: RandomResizedCrop + horizontal flip + normalise.

torchvision's recipe (``RandomResizedCrop(size, scale, ratio)``, then ``RandomHorizontalFlip()``), with the same
random draws in the same order, done where it is cheap (``bench/bench_pipeline.py`` measures it per core):

- **The crop is drawn from the header, before decoding.** A JPEG is then decoded at the smallest DCT scale
  (1/8, 1/4, 1/2) at which the crop still has at least ``size`` pixels in both directions, so the final resize
  stays a reduction and the crop sees, at the output size, what it would see in a full decode. This holds for any
  configured ``scale``: it is decided per drawn crop (a crop of 8% of the image decodes at full scale).
- **Crop, resize (antialiased), flip and normalisation run on uint8 tensors**: torch's vectorised uint8 resize,
  and a single conversion to float at the output size.

On an already decoded image (``transform(image)``) it is torchvision's ``transforms.v2`` recipe on a uint8 tensor
(``tests/core/test_train_augment.py`` checks that equality).

Options on top, all torchvision ``transforms.v2``: a policy on the uint8 crop (``TrivialAugmentWide``,
``RandAugment``: ``--augment``), ``RandomErasing`` on the normalised tensor (``--random-erasing``), and a smallest
crop that follows the source image's size (``min_side``: a crop keeps at least ``min_side * size`` pixels of the
image's short side, so a 32 px scan is not cut to 9 px and blown up; images at least ``size / min_side`` keep the
configured ``scale``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from dogbreed.core.constants import AUGMENT_POLICIES, DEFAULT_CROP_SCALE
from dogbreed.core.images import ImageSource, open_image

# torchvision's RandomResizedCrop aspect-ratio range.
DEFAULT_CROP_RATIO: tuple[float, float] = (3 / 4, 4 / 3)
# DCT scale reductions a JPEG decoder offers (libjpeg: 1/8, 1/4, 1/2), largest first.
JPEG_REDUCTIONS = (8, 4, 2)
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112

CropBox = tuple[int, int, int, int]  # (top, left, height, width), torchvision's order


def sample_crop_box(width: int, height: int, scale: tuple[float, float],
                    ratio: tuple[float, float] = DEFAULT_CROP_RATIO) -> CropBox:
    """``RandomResizedCrop.get_params`` of torchvision: the same draws from torch's RNG, the same box."""
    area = height * width
    low, high = torch.log(torch.tensor(ratio)).tolist()  # float32 logs, as torchvision computes them
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(low, high)).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    in_ratio = width / height  # fallback: the central crop within the ratio range
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def jpeg_reduction(crop_height: int, crop_width: int, size: int) -> int:
    """The largest DCT reduction (8, 4, 2, else 1) at which a crop keeps at least ``size`` pixels both ways."""
    return next((r for r in JPEG_REDUCTIONS if min(crop_height, crop_width) >= r * size), 1)


def oriented_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header (nothing is decoded)."""
    width, height = image.size
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


class _CropPlan:
    """Draws the crop when the header is read and asks for the matching JPEG draft size."""

    def __init__(self, transform: "TrainTransform") -> None:
        self.transform = transform
        self.full_size: tuple[int, int] | None = None
        self.box: CropBox | None = None

    def __call__(self, image: Image.Image) -> tuple[int, int] | None:
        """open_image's ``draft_size`` hook: the stored-orientation size to decode at, or None (full size)."""
        self.full_size = oriented_size(image)
        self.box = self.transform.sample_box(*self.full_size)
        reduction = jpeg_reduction(self.box[2], self.box[3], self.transform.size)
        if reduction == 1:
            return None
        width, height = image.size  # stored orientation: the decoder's frame
        return width // reduction, height // reduction

    def box_on(self, decoded: Image.Image) -> CropBox:
        """The drawn box on the decoded (possibly reduced) image, in whole pixels."""
        if self.box is None or self.full_size is None or not _same_shape(decoded.size, self.full_size):
            # The hook did not run, or the decoder oriented the image otherwise than the header said: draw now.
            self.full_size = decoded.size
            self.box = self.transform.sample_box(*decoded.size)
        if decoded.size == self.full_size:
            return self.box
        sx, sy = decoded.width / self.full_size[0], decoded.height / self.full_size[1]
        top, left, h, w = self.box
        # Edges rounded half up to the reduced grid: at most half a reduced pixel off, and a crop that needed
        # ``size`` pixels (h * sy >= size) keeps them (floor(a + b) - floor(a) >= floor(b)).
        y0, x0 = math.floor(top * sy + 0.5), math.floor(left * sx + 0.5)
        y1, x1 = math.floor((top + h) * sy + 0.5), math.floor((left + w) * sx + 0.5)
        return y0, x0, max(1, min(y1, decoded.height) - y0), max(1, min(x1, decoded.width) - x0)


class TrainTransform:
    """RandomResizedCrop(size, scale, ratio) + RandomHorizontalFlip(p) [+ policy] + normalise [+ RandomErasing]:
    image -> float CHW tensor.

    ``transform(image)`` takes a decoded PIL image (or a uint8 CHW tensor); ``transform.load(path_or_bytes)``
    decodes it itself, drawing the crop first so a large JPEG decodes at a reduced DCT scale.
    """

    def __init__(self, size: int, *, mean: tuple[float, ...], std: tuple[float, ...],
                 interpolation: str = "bilinear", scale: tuple[float, float] = DEFAULT_CROP_SCALE,
                 ratio: tuple[float, float] = DEFAULT_CROP_RATIO, flip_p: float = 0.5, min_side: float = 0.0,
                 policy: str = "default", erasing: float = 0.0) -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {scale}")
        if policy not in AUGMENT_POLICIES or policy == "none":
            raise ValueError(f"policy must be one of {AUGMENT_POLICIES[1:]}, got {policy!r}")
        self.min_side, self.policy_name, self.erasing_p = float(min_side), policy, float(erasing)
        self.policy = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment}.get(policy)
        if self.policy is not None:
            self.policy = self.policy(interpolation=InterpolationMode(interpolation))
        self.erasing = v2.RandomErasing(p=erasing, value=0) if erasing > 0 else None  # 0: the mean colour
        self.size = size
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip_p = flip_p
        self.interpolation = InterpolationMode(interpolation)
        self.mean = torch.tensor(mean, dtype=torch.float32).mul(255).view(-1, 1, 1)
        self.inv_std = torch.tensor(std, dtype=torch.float32).mul(255).reciprocal().view(-1, 1, 1)

    def crop_scale_for(self, width: int, height: int) -> tuple[float, float]:
        """The area range for an image of this size: ``scale``, raised so the crop keeps ``min_side * size`` pixels
        of the short side (at most the whole image)."""
        if self.min_side <= 0:
            return self.scale
        needed = min(1.0, (self.min_side * self.size / max(1, min(width, height))) ** 2)
        low = min(self.scale[1], max(self.scale[0], needed))
        return low, self.scale[1]

    def sample_box(self, width: int, height: int) -> CropBox:
        return sample_crop_box(width, height, self.crop_scale_for(width, height), self.ratio)

    def __call__(self, image: Any) -> torch.Tensor:
        """A decoded image (PIL, or a uint8 CHW tensor) -> the augmented, normalised tensor; a path or bytes
        is decoded by :meth:`load`."""
        if isinstance(image, torch.Tensor):
            return self._finish(image, self.sample_box(image.shape[-1], image.shape[-2]))
        if not isinstance(image, Image.Image):
            return self.load(image)
        top, left, h, w = self.sample_box(*image.size)
        return self._finish(_uint8_chw(image.crop((left, top, left + w, top + h))), (0, 0, h, w))

    def load(self, source: ImageSource) -> torch.Tensor:
        """Decode (EXIF-oriented RGB, as :func:`open_image`) at the smallest scale the drawn crop allows, then
        crop, resize, flip and normalise."""
        plan = _CropPlan(self)
        image = open_image(source, draft_size=plan)
        top, left, h, w = plan.box_on(image)
        return self._finish(_uint8_chw(image.crop((left, top, left + w, top + h))), (0, 0, h, w))

    def _finish(self, image: torch.Tensor, box: CropBox) -> torch.Tensor:
        top, left, h, w = box
        crop = image[..., top:top + h, left:left + w]
        out = F.resize(crop, [self.size, self.size], interpolation=self.interpolation, antialias=True)
        if torch.rand(1).item() < self.flip_p:
            out = out.flip(-1)
        if self.policy is not None:
            out = self.policy(out)
        result = torch.empty(out.shape, dtype=torch.float32)  # contiguous CHW, whatever the input layout
        result.copy_(out)
        result = result.sub_(self.mean).mul_(self.inv_std)
        return self.erasing(result) if self.erasing is not None else result

    def __repr__(self) -> str:
        return (f"TrainTransform(size={self.size}, scale={self.scale}, ratio={self.ratio}, flip_p={self.flip_p}, "
                f"interpolation={self.interpolation.value}, min_side={self.min_side}, policy={self.policy_name}, "
                f"erasing={self.erasing_p})")


def _same_shape(decoded: tuple[int, int], full: tuple[int, int]) -> bool:
    """Whether ``decoded`` is ``full`` decoded at one of the DCT scales (in the same orientation)."""
    return any(decoded == (-(-full[0] // r), -(-full[1] // r)) for r in (1, *JPEG_REDUCTIONS))


def _uint8_chw(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 CHW view of its HWC pixels (channels-last: torch's fast uint8 resize path)."""
    array = np.array(image)  # a writable copy: torch refuses read-only buffers
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(array).permute(2, 0, 1)
