"""Shared pieces of the benchmarks: the generated photo-like JPEG dataset, timing, machine info."""

from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
DATASET_VERSION = 2
MARKER = ".bench_dataset.json"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux) or platform as a fallback."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """What a number was measured on."""
    import PIL
    import torchvision

    return {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def print_machine() -> dict[str, Any]:
    info = machine_info()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    return info


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t['s']`` holds the elapsed seconds."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - start


def write_result(name: str, result: dict[str, Any], out_dir: Path = OUT_DIR) -> Path:
    """Save a benchmark's numbers as JSON under bench/out/ (gitignored)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- the generated dataset

# Per class: a dominant hue, a texture orientation (radians) and a texture frequency band.
def _class_style(label: int, num_classes: int) -> tuple[np.ndarray, float, float]:
    hue = label / num_classes
    base = np.array([np.cos(2 * np.pi * (hue + k / 3)) for k in range(3)]) * 70 + 128
    return base, np.pi * label / num_classes, 18.0 + 9.0 * (label % 3)


def draw_photo_like(label: int, num_classes: int, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A photo-like image: smooth lighting gradient, a class-specific oriented texture on a soft
    blob ("the dog"), a random background texture, and sensor noise."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x, y = x / width, y / height
    base, angle, freq = _class_style(label, num_classes)
    light = 0.75 + 0.35 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
    background = (rng.uniform(80, 180) + rng.uniform(-15, 15, 3)) * light[..., None]  # greyish scene
    background += 12 * np.sin((x * rng.uniform(3, 9) + y * rng.uniform(3, 9)) * 2 * np.pi)[..., None]
    cx, cy = rng.uniform(0.35, 0.65, 2)
    radius = rng.uniform(0.3, 0.42)
    blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2)) ** 2)[..., None]
    along = (x * np.cos(angle) + y * np.sin(angle)) * freq * rng.uniform(0.85, 1.15)
    texture = 0.5 + 0.5 * np.sin(2 * np.pi * along + rng.uniform(0, 2 * np.pi))
    colour = (base + rng.integers(-12, 13, 3)) * (0.6 + 0.5 * texture[..., None]) * light[..., None]
    image = blob * colour + (1 - blob) * background + rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def random_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """Landscape or portrait 4:3, long side in [min_side*4/3, max_side]."""
    long_side = int(rng.integers(int(min_side * 4 / 3), max_side + 1))
    short_side = long_side * 3 // 4
    return (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)


def make_dataset(
    root: Path,
    *,
    num_classes: int = 5,
    per_split: dict[str, int] | None = None,
    min_side: int = 300,
    max_side: int = 1600,
    seed: int = 0,
) -> Path:
    """ImageFolder tree of JPEGs (quality 85-95), generated once: re-running with the same
    arguments reuses it (a marker file records them)."""
    per_split = per_split or {"train": 40, "valid": 10}
    spec = {"version": DATASET_VERSION, "num_classes": num_classes, "per_split": per_split,
            "min_side": min_side, "max_side": max_side, "seed": seed}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return root
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        for label in range(num_classes):
            out = root / split / f"{label + 1:03d}.Class_{label + 1}"
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = draw_photo_like(label, num_classes, random_size(rng, min_side, max_side), rng)
                image.save(out / f"{i:04d}.jpg", quality=int(rng.integers(85, 96)))
    marker.write_text(json.dumps(spec))
    return root
