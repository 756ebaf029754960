"""Test inputs built on the spot: tiny learnable ImageFolder trees, single images and fast training configs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from dogbreed.config.options import TrainConfig
from dogbreed.data.demo import BREEDS, draw_breed_image

BREED_DIRS = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


def write_tree(root: Path, per_split: dict[str, int], breed_dirs=BREED_DIRS, seed: int = 0) -> Path:
    """ImageFolder tree of learnable synthetic images: JPEG and PNG, odd sizes, some grayscale."""
    rng = np.random.default_rng(seed)
    for split, count in per_split.items():
        for label, breed in enumerate(breed_dirs):
            out = root / split / breed
            out.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = draw_breed_image(label % len(BREEDS), rng)
                if i % 4 == 3:
                    image.save(out / f"{i:03d}.png")
                elif i % 5 == 4:
                    image.convert("L").save(out / f"{i:03d}.jpg")
                else:
                    image.save(out / f"{i:03d}.jpg", quality=90)
    return root


def fast_config(tmp_path: Path, data_dir: Path, **overrides) -> TrainConfig:
    values = dict(
        data_dir=data_dir, model_dir=tmp_path / "model", output_dir=tmp_path / "reports",
        epochs=1, batch_size=8, image_size=32, weights="none", finetune="full", num_workers=0,
        lr=2e-3, backbone_lr_scale=1.0, accelerator="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


def save_image(path: Path, size=(40, 30), mode="RGB", color=(200, 30, 30), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode != "L" else 128).save(path, format=fmt)
    return path


def pickle_of_a_gone_class() -> bytes:
    """``torch.save`` of ``{"fc.weight": gone_module.Thing()}``, whose module no process can import: a weights file
    that holds a pickled object (refused by a weights-only load; unpickling it fails with ModuleNotFoundError)."""
    import io
    import sys
    import types

    import torch

    gone = types.ModuleType("gone_module")
    exec("class Thing:\n    pass\n", gone.__dict__)
    gone.Thing.__module__ = "gone_module"
    sys.modules["gone_module"] = gone
    try:
        buffer = io.BytesIO()
        torch.save({"fc.weight": gone.Thing()}, buffer)
    finally:
        del sys.modules["gone_module"]
    return buffer.getvalue()


MODEL_WRITTEN = 1_780_000_000  # 2026-05-28 20:26:40 UTC: the mtime model_of_another_run gives model.pth


def model_of_another_run(model_dir: Path, **hyperparameters) -> Path:
    """A model dir another run wrote: stand-in weights, a model_config.json with ``hyperparameters``, written at
    :data:`MODEL_WRITTEN`."""
    model_dir.mkdir(parents=True)
    (model_dir / "model.pth").write_bytes(b"weights")
    (model_dir / "model_config.json").write_text(json.dumps({"hyperparameters": hyperparameters}))
    os.utime(model_dir / "model.pth", (MODEL_WRITTEN, MODEL_WRITTEN))
    return model_dir
