"""Images that are not dogs, to fit and measure abstention: generated (noise, gradients, clouds, shapes), or
read from a folder the user gives (``--ood-dir``: photos of cats, people, cars...).

Two disjoint sets come out: one to choose the abstention score with (alongside the validation split) and one
to report AUROC on (alongside the test split), so the reported number is not measured on what chose it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dogbreed.core.constants import IMAGE_EXTENSIONS
from dogbreed.core.errors import DataError

GENERATED_PER_SET = 32
KINDS = ("noise", "gradient", "clouds", "shapes")


def _noise(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def _gradient(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    t = (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)) / max(size)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    image = start + (end - start) * ((t - t.min()) / max(float(np.ptp(t)), 1e-6))[..., None]
    return Image.fromarray(image.astype(np.uint8), "RGB")


def _clouds(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    small = rng.integers(0, 256, (max(2, size[1] // 16), max(2, size[0] // 16), 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))


def _shapes(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        x1, y1 = x0 + int(rng.integers(8, size[0])), y0 + int(rng.integers(8, size[1]))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return image


DRAW = {"noise": _noise, "gradient": _gradient, "clouds": _clouds, "shapes": _shapes}


def generated_ood_images(count: int = GENERATED_PER_SET, *, seed: int = 0) -> list[Image.Image]:
    """``count`` RGB images cycling through noise, gradients, blurred "clouds" and flat shapes, 64-192 px."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        size = (int(rng.integers(64, 193)), int(rng.integers(64, 193)))
        images.append(DRAW[KINDS[i % len(KINDS)]](rng, size))
    return images


def folder_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), sorted."""
    if not folder.is_dir():
        raise DataError(f"--ood-dir {folder}: no such folder. Give a folder of images that are not dogs")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(paths) < 2:
        raise DataError(f"--ood-dir {folder} holds {len(paths)} image(s): it needs at least 2 (one to choose the "
                        "abstention score, one to measure it); a few dozen give a meaningful AUROC")
    return paths


GENERATED_DESCRIPTION = ("generated noise/texture images: the easy case (real non-dog photos are harder to tell "
                         "from dogs; measure with --ood-dir before trusting the rule with real traffic)")


def ood_sets(ood_dir: Path | None, *, seed: int, count: int = GENERATED_PER_SET) -> tuple[list, list, str]:
    """(selection set, report set, description): ``count`` generated images each, or a folder split alternately
    into the two (disjoint) sets."""
    if ood_dir is None:
        selection = generated_ood_images(count, seed=seed * 2 + 1)
        report = generated_ood_images(count, seed=seed * 2 + 2)
        return selection, report, f"{count} + {count} {GENERATED_DESCRIPTION}"
    paths = folder_images(Path(ood_dir))
    return paths[0::2], paths[1::2], f"{ood_dir} ({len(paths)} images: {len(paths[0::2])} to choose and check the " \
                                     f"rule, {len(paths[1::2])} to report on)"
