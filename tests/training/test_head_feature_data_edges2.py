"""How a head-only run asks the feature cache for each split, and what the cached head leaves behind: only the
training split gets ``--cached-views`` augmented views (validation and test are scored on the one eval view, like
serving), and the single intra-op thread of a cached fit is given back when it ends."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dogbreed.config.sections import CacheOptions
from dogbreed.core.transforms import Preprocessing
from dogbreed.training import head_training
from dogbreed.training.head_training import CachedFeatures, FeatureHeadClassifier, build_feature_data
from dogbreed.training.module import DogBreedClassifier


def test_only_the_training_split_is_extracted_with_several_augmented_views(tmp_path, monkeypatch):
    asked: dict[str, dict] = {}

    def fake_cache(cache_dir, split, net, samples, **kwargs):
        asked[split] = {"cache_dir": Path(cache_dir), "samples": list(samples), **kwargs}
        return CachedFeatures(torch.zeros(len(samples), kwargs["views"], 4), torch.zeros(len(samples))), split == "test"

    monkeypatch.setattr(head_training, "cached_split_features", fake_cache)
    samples = {name: [(tmp_path / f"{name}{i}.jpg", i % 2) for i in range(count)]
               for name, count in (("train", 4), ("valid", 2), ("test", 3))}
    images = SimpleNamespace(datasets={name: SimpleNamespace(samples=s) for name, s in samples.items()},
                             preprocessing=Preprocessing(image_size=32), num_workers=0, skip_bad_images=True,
                             class_names=["a", "b"])
    data = build_feature_data(images, torch.nn.Linear(2, 2), cache=CacheOptions(cached_views=3),  # type: ignore[arg-type]
                              output_dir=tmp_path / "run" / "reports", seed=5, batch_size=2, accelerator="cpu",
                              precision="bf16-mixed")
    assert {split: a["views"] for split, a in asked.items()} == {"train": 3, "valid": 1, "test": 1}
    assert {a["seed"] for a in asked.values()} == {5}
    assert {a["cache_dir"] for a in asked.values()} == {tmp_path / "run" / "feature_cache"}
    assert {a["autocast_dtype"] for a in asked.values()} == {torch.bfloat16}
    assert all(a["skip_bad_images"] for a in asked.values())
    assert asked["valid"]["samples"] == samples["valid"]
    assert data.cache_hits == {"train": False, "valid": False, "test": True}
    assert [data.features[s].views for s in ("train", "valid", "test")] == [3, 1, 1]
    asked.clear()
    build_feature_data(images, torch.nn.Linear(2, 2), cache=CacheOptions(cached_views=3),  # type: ignore[arg-type]
                       output_dir=tmp_path, seed=5, batch_size=2, accelerator="cpu", splits=("valid",))
    assert list(asked) == ["valid"]


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def test_a_cached_fit_runs_on_one_thread_and_gives_the_others_back(two_threads):
    model = FeatureHeadClassifier.from_classifier(DogBreedClassifier(num_classes=3, finetune="head"))
    model.setup("fit")
    assert torch.get_num_threads() == 1
    model.teardown("fit")
    assert torch.get_num_threads() == 2  # the test pass, calibration and export get both threads again
    model.setup("test")
    model.teardown("test")
    assert torch.get_num_threads() == 2
