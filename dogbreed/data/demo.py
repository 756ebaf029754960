"""The embedded demo: a small, learnable dataset of synthetic "breeds" drawn procedurally.

Each breed is a pattern family (stripes, rings, checks, ...) with its own palette; every image
varies frequency, phase, colours, noise, size and file format, so the model must generalise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

Pattern = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]

BREEDS: list[tuple[str, Pattern, tuple[int, int, int], tuple[int, int, int]]] = [
    ("001.Zebra_Terrier", lambda x, y, f, p: np.sin(y * f + p), (40, 40, 40), (235, 235, 220)),
    ("002.Picket_Pointer", lambda x, y, f, p: np.sin(x * f + p), (200, 60, 40), (250, 220, 180)),
    ("003.Checkered_Collie", lambda x, y, f, p: np.sin(x * f + p) * np.sin(y * f + p), (30, 90, 200), (230, 230, 90)),
    ("004.Ringed_Retriever", lambda x, y, f, p: np.sin(np.hypot(x - 0.5, y - 0.5) * f * 2 + p),
     (40, 150, 60), (240, 200, 230)),
    ("005.Spotted_Spaniel", lambda x, y, f, p: (np.sin(x * f + p) * np.sin(y * f - p)) ** 2 - 0.4,
     (120, 60, 20), (200, 240, 250)),
]
SPLIT_SIZES = {"train": 36, "valid": 10, "test": 12}
HOLDOUT_PER_BREED = 1
MARKER = ".dogbreed_demo.json"
DEMO_VERSION = 1


def draw_breed_image(breed_index: int, rng: np.random.Generator) -> Image.Image:
    """One image of a breed: its pattern at a random scale/phase, jittered palette, noise, random size."""
    _, pattern, fg, bg = BREEDS[breed_index]
    width, height = int(rng.integers(72, 180)), int(rng.integers(72, 180))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / max(width, height), y / max(width, height)
    freq = float(rng.uniform(14, 30))
    mask = (pattern(x, y, freq, float(rng.uniform(0, 2 * np.pi))) > 0).astype(np.float32)[..., None]
    jitter = lambda c: np.clip(np.array(c) + rng.integers(-30, 31, 3), 0, 255)  # noqa: E731
    image = mask * jitter(fg) + (1 - mask) * jitter(bg)
    image = image + rng.normal(0, 18, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def _save(image: Image.Image, path_stem: Path, rng: np.random.Generator) -> None:
    """JPEG or PNG, sometimes grayscale or with alpha: the decoder must handle them all."""
    roll = rng.random()
    if roll < 0.55:
        image.save(path_stem.with_suffix(".jpg"), quality=int(rng.integers(70, 95)))
    elif roll < 0.85:
        image.save(path_stem.with_suffix(".png"))
    elif roll < 0.93:
        rgba = image.convert("RGBA")
        rgba.putalpha(255)
        rgba.save(path_stem.with_suffix(".png"))
    else:
        image.convert("L").convert("RGB").save(path_stem.with_suffix(".jpeg"), quality=90)


def generate_demo_dataset(root: Path | str, *, seed: int = 0) -> Path:
    """Write train/ valid/ test/ holdout/ under ``root``; reused when already generated with this seed."""
    root = Path(root)
    marker = root / MARKER
    expected = {"version": DEMO_VERSION, "seed": seed, "splits": SPLIT_SIZES}
    if marker.is_file() and json.loads(marker.read_text()) == expected:
        logger.info("reusing the demo data in %s (seed %d); delete that folder to generate it again", root, seed)
        return root
    logger.info("generating the demo data in %s (seed %d)", root, seed)
    rng = np.random.default_rng(seed)
    for split, count in {**SPLIT_SIZES, "holdout": HOLDOUT_PER_BREED}.items():
        for index, (dir_name, *_rest) in enumerate(BREEDS):
            out = root / split / dir_name if split != "holdout" else root / split
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # holdout files are named after their true breed (no dots: the suffix is added later)
                stem = f"{dir_name.replace('.', '_')}_{i:03d}" if split == "holdout" else f"img_{i:03d}"
                _save(draw_breed_image(index, rng), out / stem, rng)
    marker.write_text(json.dumps(expected))
    return root


def holdout_images(root: Path | str) -> list[Path]:
    return sorted(p for p in (Path(root) / "holdout").iterdir() if p.is_file())
