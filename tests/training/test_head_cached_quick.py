"""The head-only run on cached features, end to end but tiny (make test-quick has no other run of this path): the
backbone runs once per image into the cache, the head trains on it, the artifact serves, a second run reuses it."""

from __future__ import annotations

import re

import torch

from dogbreed.serving.artifact import load_artifact
from dogbreed.training import head_training
from dogbreed.training.run import train
from tests.helpers.builders import fast_config


def test_autocast_dtypes_for_feature_extraction_are_pinned():
    assert head_training._AUTOCAST_DTYPES == {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
    assert head_training._AUTOCAST_DTYPES.get("32-true") is None


def test_a_tiny_head_only_run_caches_features_once_and_reuses_them(tiny_tree, tmp_path, caplog):
    config = fast_config(tmp_path / "a", tiny_tree, finetune="head", epochs=2, cached_views=1, calibrate=False,
                         logger="none", cache_dir=tmp_path / "cache")
    with caplog.at_level("INFO", logger="dogbreed"):
        first = train(config)
    assert [m for m in caplog.messages if m.startswith("feature cache")] == [
        "feature cache miss: extracting 12 image(s) x 1 view(s) of train",
        "feature cache miss: extracting 6 image(s) x 1 view(s) of valid",
        "feature cache miss: extracting 6 image(s) x 1 view(s) of test",
        f"feature cache {tmp_path / 'cache'}: train built, valid built, test built"]
    assert [h["epoch"] for h in first.history] == [1, 2]
    net, model_config = load_artifact(tmp_path / "a" / "model")
    assert model_config.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert net.fc.out_features == 3
    caplog.clear()
    with caplog.at_level("INFO", logger="dogbreed"):
        train(fast_config(tmp_path / "b", tiny_tree, finetune="head", epochs=2, cached_views=1, calibrate=False,
                          logger="none", cache_dir=tmp_path / "cache"))
    # Each hit names its file, called by a hash the cache picks: that name is the only part left open.
    cached = [m for m in caplog.messages if m.startswith("feature cache")]
    assert len(cached) == 4 and cached[3] == f"feature cache {tmp_path / 'cache'}: train hit, valid hit, test hit"
    assert all(re.fullmatch(rf"feature cache hit: {re.escape(str(tmp_path / 'cache'))}/features-[0-9a-f]+\.pt", m)
               for m in cached[:3]), cached
