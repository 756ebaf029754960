"""Fixtures: tiny generated ImageFolder trees, a trained model dir shared by the slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

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


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "data", {"train": 4, "valid": 2, "test": 2})


@pytest.fixture(scope="session")
def learnable_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("learnable") / "data", {"train": 24, "valid": 8, "test": 8}, seed=1)


def fast_config(tmp_path: Path, data_dir: Path, **overrides) -> TrainConfig:
    values = dict(
        data_dir=data_dir, model_dir=tmp_path / "model", output_dir=tmp_path / "reports",
        epochs=1, batch_size=8, image_size=32, weights="none", finetune="full", num_workers=0,
        lr=2e-3, backbone_lr_scale=1.0, accelerator="cpu",
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, learnable_tree):
    """One short real training run, shared by the artifact, predict and CLI tests."""
    from dogbreed.training.run import train

    out = tmp_path_factory.mktemp("trained")
    # 6 epochs, not 4: after 4 the test accuracy ranged 0.63-1.0 over seeds (main included), so a 1e-4 change in
    # preprocessing could fail test_short_training_learns_fake_data; by epoch 5-6 validation has converged.
    config = fast_config(out, learnable_tree, epochs=6, image_size=48)
    result = train(config)
    return config, result


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A servable model dir in about a second: a randomly initialised ResNet50 for the three fixture breeds at
    32 px. For tests of request handling, packaging and loading, where accuracy does not matter."""
    import torch

    from dogbreed.core.network import build_resnet50
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.serving.artifact import ModelConfig, save_artifact

    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("tiny_model") / "model"
    config = ModelConfig(class_names=["Affenpinscher", "Afghan hound", "Airedale terrier"],
                         preprocessing=Preprocessing(image_size=32))
    return save_artifact(model_dir, build_resnet50(3).eval(), config)


def save_image(path: Path, size=(40, 30), mode="RGB", color=(200, 30, 30), fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode != "L" else 128).save(path, format=fmt)
    return path


def pytest_collection_modifyitems(config, items) -> None:
    """``gpu``-marked tests run where CUDA is present and are skipped without it (the only accepted skip)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
