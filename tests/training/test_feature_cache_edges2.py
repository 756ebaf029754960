"""The feature cache's key, file check and the data served from it, on hand-made inputs (no backbone runs): each
image's label is part of the key and of the file's checksum, the crop range counts for augmented views only, every
cached view can be drawn, and the batch policy of the training and evaluation loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dogbreed.core.transforms import Preprocessing
from dogbreed.training.head_training import (
    CachedFeatures,
    FeatureDataModule,
    _FeatureViews,
    cache_key,
    load_features,
    save_features,
)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for index, path in enumerate(paths):
        path.write_bytes(bytes([index]) * 10)
    return paths


def _key(samples, *, pre=Preprocessing(image_size=32), views=1, seed=0) -> str:
    return cache_key(samples, backbone="0" * 64, preprocessing=pre, views=views, augmented=views > 1, seed=seed)


def test_the_same_files_under_other_labels_get_another_key(files):
    # A class folder added or renamed can move a file to another label with the file itself unchanged: its cached
    # features would then train the head with the old labels.
    a, b = files
    assert _key([(a, 0), (b, 1)]) == _key([(a, 0), (b, 1)])
    assert _key([(a, 0), (b, 1)]) != _key([(a, 1), (b, 0)])
    assert _key([(a, 0), (b, 1)]) != _key([(a, 0), (b, 2)])


def test_the_crop_range_and_the_seed_count_for_augmented_views_only(files):
    samples = [(files[0], 0), (files[1], 1)]
    narrow, wide = Preprocessing(image_size=32, crop_scale=(0.5, 1.0)), Preprocessing(image_size=32)
    assert _key(samples, pre=narrow) == _key(samples, pre=wide)  # the eval view never crops at random
    assert _key(samples, pre=narrow, seed=3) == _key(samples, pre=wide, seed=4)
    assert _key(samples, pre=narrow, views=2) != _key(samples, pre=wide, views=2)
    assert _key(samples, views=2, seed=3) != _key(samples, views=2, seed=4)
    assert _key(samples, pre=Preprocessing(image_size=40)) != _key(samples)  # what the eval view depends on


def _views(count: int, views: int) -> CachedFeatures:
    """Feature value = 10 * image + view, so each draw says which view it came from."""
    features = torch.tensor([[[10.0 * i + v] * 2 for v in range(views)] for i in range(count)], dtype=torch.float16)
    return CachedFeatures(features=features, labels=torch.arange(count) % 3)


def test_training_draws_every_cached_view_and_evaluation_only_the_first():
    torch.manual_seed(0)
    drawn = _FeatureViews(_views(2, 3), random_view=True)
    seen = {int(drawn[1][0][0]) - 10 for _ in range(120)}
    assert seen == {0, 1, 2}  # views 0, 1 and 2 of image 1 (not only the first two)
    feature, label = drawn[1]
    assert feature.dtype == torch.float32 and feature.shape == (2,) and label == 1
    fixed = _FeatureViews(_views(2, 3), random_view=False)
    assert {float(fixed[1][0][0]) for _ in range(20)} == {10.0}


def _module(train: int, batch_size: int) -> FeatureDataModule:
    features = {"train": _views(train, 2), "valid": _views(5, 1), "test": _views(5, 1)}
    return FeatureDataModule(features, class_names=["a", "b", "c"], preprocessing=Preprocessing(image_size=32),
                             batch_size=batch_size, cache_hits={"train": True, "valid": True, "test": True})


@pytest.mark.parametrize(("train", "batch_size", "sizes"), [
    (10, 4, [4, 4]),  # a last partial batch of 2 is dropped while training
    (5, 8, [5]),  # fewer images than one batch: that one batch is kept (else no step at all)
    (8, 8, [8]),  # exactly one batch
])
def test_the_training_loader_drops_a_partial_last_batch_unless_it_is_the_only_one(train, batch_size, sizes):
    module = _module(train, batch_size)
    assert [len(labels) for _, labels in module.train_dataloader()] == sizes


def test_evaluation_loaders_keep_every_image_in_order():
    module = _module(10, 4)
    for loader in (module.val_dataloader(), module.test_dataloader()):
        labels = torch.cat([batch_labels for _, batch_labels in loader])
        assert labels.tolist() == [0, 1, 2, 0, 1]


def test_a_cache_file_whose_labels_changed_is_rebuilt(tmp_path, caplog):
    path = tmp_path / "features.pt"
    save_features(path, "k" * 64, _views(4, 2))
    assert load_features(path, "k" * 64, 4, 2) is not None
    payload = torch.load(path, weights_only=True)
    payload["labels"][2] = 0  # was 2: same count and shape, features untouched
    torch.save(payload, path)
    with caplog.at_level("WARNING", logger="dogbreed.training.head_training"):
        assert load_features(path, "k" * 64, 4, 2) is None
    assert caplog.messages == [f"feature cache {path} does not match (checksum): rebuilding it"]
