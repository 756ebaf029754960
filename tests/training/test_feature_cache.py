"""Feature cache: hits, misses on every key change, corruption, and equivalence with the slow path."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing, build_eval_transform
from dogbreed.data import datamodule as data_module
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import load_artifact
from dogbreed.serving.predictor import Predictor
from dogbreed.training.head_training import (
    backbone_digest,
    build_split_features,
    cached_split_features,
    feature_extractor,
)
from dogbreed.training.run import build_model, train
from tests.helpers.builders import fast_config

CPU = torch.device("cpu")
PRE = Preprocessing(image_size=32)


def _samples(tree: Path, split: str = "train") -> list[tuple[Path, int]]:
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tree), preprocessing=PRE)
    dm.setup()
    return dm.datasets[{"train": "train", "valid": "valid"}[split]].samples


def _net(seed: int = 0):
    torch.manual_seed(seed)
    return build_resnet50(3)


def _cached(cache_dir: Path, net, samples, *, pre=PRE, views=1, seed=0):
    return cached_split_features(cache_dir, "train", net, samples, pre=pre, views=views, seed=seed,
                                 batch_size=8, num_workers=0, device=CPU)


def test_second_lookup_is_a_hit_with_identical_features(tiny_tree, tmp_path):
    net, samples = _net(), _samples(tiny_tree)
    first, hit_first = _cached(tmp_path, net, samples)
    second, hit_second = _cached(tmp_path, net, samples)
    assert (hit_first, hit_second) == (False, True)
    assert first.features.dtype == torch.float16 and first.features.shape == (len(samples), 1, 2048)
    assert torch.equal(first.features, second.features) and torch.equal(first.labels, second.labels)
    assert len(list(tmp_path.glob("features-*.pt"))) == 1 and not list(tmp_path.glob(".*"))


def test_the_miss_and_the_hit_are_logged_with_the_image_and_view_counts(tiny_tree, tmp_path, caplog):
    net, samples = _net(), _samples(tiny_tree)  # 3 classes x 4 training images
    with caplog.at_level("INFO", logger="dogbreed.training.head_training"):
        _cached(tmp_path, net, samples, views=2)
        _cached(tmp_path, net, samples, views=2)
    (path,) = tmp_path.glob("features-*.pt")
    assert re.fullmatch(r"features-[0-9a-f]{24}\.pt", path.name)  # named by the key's first 24 hex digits
    assert [m for m in caplog.messages if m.startswith("feature cache")] == [
        "feature cache miss: extracting 12 image(s) x 2 view(s) of train", f"feature cache hit: {path}"]


def _touch(samples):
    path = samples[0][0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    return {}


def _rewrite(samples):
    path = samples[1][0]
    path.write_bytes(path.read_bytes() + b"\0")  # size changes too
    return {}


KEY_CHANGES = {
    "file_mtime": _touch,
    "file_content": _rewrite,
    "backbone_weights": lambda samples: {"net": _net(seed=1)},
    "preprocessing": lambda samples: {"pre": Preprocessing(image_size=40)},
    "views": lambda samples: {"views": 2},
}


@pytest.mark.parametrize("change", sorted(KEY_CHANGES))
def test_each_key_change_rebuilds(change, tiny_tree, tmp_path):
    samples = _samples(tiny_tree)
    base = {"net": _net(), "pre": PRE, "views": 1, "seed": 0}
    _, hit = _cached(tmp_path, base.pop("net"), samples, **base)
    assert not hit
    changed = {"net": _net(), **base, **KEY_CHANGES[change](samples)}
    _, hit_after = _cached(tmp_path, changed.pop("net"), samples, **changed)
    assert not hit_after


def test_seed_counts_for_augmented_views_only(tiny_tree, tmp_path):
    net, samples = _net(), _samples(tiny_tree)
    assert not _cached(tmp_path, net, samples, views=1, seed=0)[1]
    assert _cached(tmp_path, net, samples, views=1, seed=7)[1]  # the eval view does not depend on the seed
    augmented, _ = _cached(tmp_path, net, samples, views=2, seed=0)
    assert not _cached(tmp_path, net, samples, views=2, seed=7)[1]
    again, hit = _cached(tmp_path, net, samples, views=2, seed=0)
    assert hit and torch.equal(augmented.features, again.features)
    assert not torch.equal(augmented.features[:, 0], augmented.features[:, 1])  # two different views


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "garbage"])
def test_corrupt_cache_file_is_detected_and_rebuilt(damage, tiny_tree, tmp_path):
    net, samples = _net(), _samples(tiny_tree)
    good, _ = _cached(tmp_path, net, samples)
    path = next(tmp_path.glob("features-*.pt"))
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a cache")
    else:  # a readable file whose feature bytes changed: only the checksum can tell
        payload = torch.load(path, weights_only=True)
        payload["features"][0, 0, :4] += 1
        torch.save(payload, path)
    rebuilt, hit = _cached(tmp_path, net, samples)
    assert not hit and torch.equal(rebuilt.features, good.features)
    assert _cached(tmp_path, net, samples)[1]


def test_extraction_uses_eval_mode_backbone_and_leaves_it_untouched(tiny_tree):
    net, samples = _net(), _samples(tiny_tree)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cached = build_split_features(net, samples, pre=PRE, views=1, seed=0, batch_size=4, num_workers=0, device=CPU)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    reference_net = feature_extractor(net, CPU)
    assert not any(m.training for m in reference_net.modules())
    dataset = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=PRE)
    dataset.setup()
    images = torch.stack([dataset.datasets["valid"].transform(dataset.datasets["valid"].decode(p)) for p, _ in samples])
    with torch.no_grad():
        expected = reference_net(images)
    torch.testing.assert_close(cached.features[:, 0].float(), expected, rtol=2e-3, atol=2e-3)


def _head_config(tmp_path: Path, tree: Path, **overrides):
    # val_loss: with lr 1e-4 it falls every epoch, so the exported best epoch is the last (val_acc ties at chance
    # would keep epoch 1)
    values = dict(finetune="head", epochs=3, batch_size=64, lr=1e-4, seed=5, monitor="val_loss")
    values.update(overrides)
    return fast_config(tmp_path, tree, **values)


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_cached_head_training_matches_the_uncached_path(tiny_tree, tmp_path, monkeypatch):
    # Full batches and the eval view for training on both paths: the same gradients up to fp16 rounding.
    cached = train(_head_config(tmp_path / "cached", tiny_tree, cached_views=1))
    monkeypatch.setattr(data_module, "build_train_transform", build_eval_transform)
    slow = train(_head_config(tmp_path / "slow", tiny_tree, cached_views=0))
    cached_net, _ = load_artifact(tmp_path / "cached" / "model")
    slow_net, _ = load_artifact(tmp_path / "slow" / "model")
    pl.seed_everything(5)
    initial = build_model(_head_config(tmp_path, tiny_tree), 3).net.fc.weight.detach()
    cached_step, slow_step = cached_net.fc.weight - initial, slow_net.fc.weight - initial
    # AdamW moves every weight by ~lr per step; fp16 features may flip a few near-zero gradients.
    assert slow_step.abs().mean() > 1e-4
    assert (cached_step - slow_step).norm() / slow_step.norm() < 0.1  # wrong features/labels/BN: ~1
    assert torch.nn.functional.cosine_similarity(cached_step.flatten(), slow_step.flatten(), dim=0) > 0.995
    assert cached.test_metrics["acc"] == slow.test_metrics["acc"]
    assert cached.test_metrics["loss"] == pytest.approx(slow.test_metrics["loss"], rel=1e-2)
    assert [set(h) for h in cached.history] == [set(h) for h in slow.history]
    assert backbone_digest(cached_net) == backbone_digest(slow_net)


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_cold_and_warm_cache_runs_train_identically(tiny_tree, tmp_path):
    config = _head_config(tmp_path, tiny_tree, cached_views=1, batch_size=4, epochs=2)
    cold = train(config)
    cold_fc = load_artifact(config.outputs.model_dir)[0].fc.weight
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "feature_cache").glob("features-*.pt")}
    assert len(files) == 3  # train, valid, test (default dir: next to the output dir)
    warm = train(config)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "feature_cache").glob("features-*.pt")} == files
    assert torch.equal(cold_fc, load_artifact(config.outputs.model_dir)[0].fc.weight)
    assert cold.history == warm.history


@pytest.mark.slow
def test_cached_artifact_serves_through_predictor(learnable_tree, tmp_path, capsys):
    config = _head_config(tmp_path, learnable_tree, cached_views=2, epochs=4, lr=3e-4, batch_size=16)
    result = train(config)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("epoch=", "test:"))]
    epochs = config.optimisation.epochs
    assert len(lines) == epochs + 1 and "val_acc=" in lines[0] and "test_acc=" in lines[-1]
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    assert len(metrics["history"]) == epochs and set(metrics["test"]) == {"loss", "acc", "acc_top5", "f1_macro",
                                                                            "acc_ci95", "f1_macro_ci95"}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    predictor = Predictor.from_model_dir(config.outputs.model_dir, device="cpu")
    test_samples = DogBreedDataModule(SplitDirs.from_data_dir(learnable_tree),
                                      preprocessing=predictor.config.preprocessing)
    test_samples.setup()
    paths = [p for p, _ in test_samples.datasets["test"].samples]
    labels = torch.tensor([label for _, label in test_samples.datasets["test"].samples])
    probabilities = predictor.predict_proba(predictor.preprocess(paths))
    accuracy = (probabilities.argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(result.test_metrics["acc"], abs=1.5 / len(paths))
    exported = torch.load(config.outputs.model_dir / "model.pth", weights_only=True)
    assert set(exported) == set(build_resnet50(3).state_dict())  # a plain ResNet50 state_dict, as the slow path


def test_local_tuning_trials_share_the_cache_dir_of_train(tmp_path, tiny_tree):
    from dogbreed.training.head_training import default_cache_dir
    from dogbreed.tuning.local import _apply

    base = _head_config(tmp_path, tiny_tree)
    trials = [_apply(base, {"lr": lr}, tmp_path / "hpo" / "trials" / f"trial_{i:03d}")
              for i, lr in enumerate((1e-3, 1e-2))]
    # train's default (<output-dir>/../feature_cache), not one under the tuning dir: train and hpo share it
    default = default_cache_dir(base.cache, base.outputs.output_dir)
    assert {t.cache.cache_dir for t in trials} == {tmp_path / "feature_cache"} == {default}
    explicit = fast_config(tmp_path, tiny_tree, cache_dir=tmp_path / "c")
    assert _apply(explicit, {}, tmp_path / "t" / "x").cache.cache_dir == tmp_path / "c"


@pytest.mark.slow  # a training run: make test
def test_compile_is_ignored_on_a_head_only_cached_run_and_says_so(tiny_tree, tmp_path, caplog, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *args, **kwargs: compiled.append(type(self).__name__))
    with caplog.at_level("INFO", logger="dogbreed.training.gradual"):
        train(_head_config(tmp_path, tiny_tree, cached_views=1, epochs=1, compile=True))
    assert "--compile ignored: with the feature cache only the linear head runs" in caplog.messages
    assert compiled == []  # only the linear head runs: nothing to compile


def test_a_library_caller_training_a_head_on_a_random_backbone_is_told_what_to_expect(tiny_tree, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="dogbreed.training.run"):
        build_model(_head_config(tmp_path, tiny_tree, weights="none"), 3)
        build_model(fast_config(tmp_path, tiny_tree, weights="none", finetune="full"), 3)  # from scratch: no warning
    assert caplog.messages == ["weights none with finetune head trains a linear head on a random frozen ResNet50: "
                               "expect chance-level accuracy (use finetune full to train from scratch)"]
