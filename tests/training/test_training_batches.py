"""Batches a training run really sees: no 1-image last batch (BatchNorm), a frozen backbone's BatchNorm stays
frozen across every validation boundary, and atomic writes never expose a half-written file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn

from dogbreed.core.fileio import atomic_write
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import build_trainer, train
from tests.helpers.builders import fast_config, write_tree


@pytest.fixture
def nine_train_images(tmp_path) -> Path:
    """3 breeds x 3 train images = 9 = 2 x 4 + 1: with batch size 4 the last batch would hold one image."""
    return write_tree(tmp_path / "data", {"train": 3, "valid": 2, "test": 1})


def batch_sizes(loader) -> list[int]:
    return [len(targets) for _, targets in loader]


def test_a_one_image_last_training_batch_is_dropped_but_no_eval_image_is(nine_train_images):
    dm = DogBreedDataModule(SplitDirs.from_data_dir(nine_train_images), preprocessing=Preprocessing(image_size=32),
                            batch_size=4, num_workers=0)
    dm.setup()
    assert batch_sizes(dm.train_dataloader()) == [4, 4]
    assert batch_sizes(dm.val_dataloader()) == [4, 2]
    assert batch_sizes(dm.test_dataloader()) == [3]


def test_a_train_split_no_larger_than_a_batch_is_kept_whole(nine_train_images):
    dm = DogBreedDataModule(SplitDirs.from_data_dir(nine_train_images), preprocessing=Preprocessing(image_size=32),
                            batch_size=9, num_workers=0)
    dm.setup()
    assert batch_sizes(dm.train_dataloader()) == [9]


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_full_finetuning_on_k_batches_plus_one_image_trains(tmp_path, nine_train_images):
    # At 32 px, layer4 is 1x1: a batch of one image would give BatchNorm a single value per channel and fail.
    result = train(fast_config(tmp_path, nine_train_images, batch_size=4, finetune="full", epochs=1))
    assert [row["epoch"] for row in result.history] == [1]
    assert result.test_metrics["acc"] == pytest.approx(result.test_metrics["acc"])  # not NaN


class NetworkBackToTrainMode(Callback):
    """Puts the whole network in training mode after every validation, bypassing ``LightningModule.train()``:
    what any code calling ``net.train()`` does (Lightning 2.6 itself restores the modes it saved before
    validation, so without this the per-step re-freeze is a second guard behind ``train()``)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.net.train()


@pytest.mark.filterwarnings("ignore:Found .* module\\(s\\) in eval mode")
@pytest.mark.parametrize("callbacks", [[], [NetworkBackToTrainMode()]], ids=["lightning", "net.train-between-epochs"])
def test_frozen_backbone_batchnorm_stays_frozen_across_validation_boundaries(tmp_path, tiny_tree, callbacks):
    model = DogBreedClassifier(num_classes=3, finetune="head", lr=0.05)
    backbone_bns = {name: m for name, m in model.net.named_modules() if isinstance(m, nn.BatchNorm2d)}
    modes_in_training_steps: list[bool] = []

    def record(module: nn.Module, _inputs) -> None:
        if model.training:  # a training step (validation runs with the whole model in eval mode)
            modes_in_training_steps.append(any(bn.training for bn in backbone_bns.values()))

    model.net.register_forward_pre_hook(record)
    stats = {name: (bn.running_mean.clone(), bn.running_var.clone()) for name, bn in backbone_bns.items()}
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=Preprocessing(image_size=32),
                            batch_size=4, num_workers=0)
    # Sanity validation, then 3 epochs of 2 steps with a validation after each: 3 boundaries before a step.
    trainer = build_trainer(fast_config(tmp_path, tiny_tree), callbacks, max_epochs=3, limit_train_batches=2,
                            limit_val_batches=1, num_sanity_val_steps=1)
    trainer.fit(model, datamodule=dm)
    assert modes_in_training_steps == [False] * 6
    assert model.net.fc.training  # the head itself trains
    for name, bn in backbone_bns.items():
        mean, var = stats[name]
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var), name
        assert int(bn.num_batches_tracked) == 0, name


def test_atomic_write_never_exposes_a_half_written_file(tmp_path, monkeypatch):
    path = tmp_path / "model_config.json"
    path.write_bytes(b"old content")
    events: list[str] = []
    seen_during_write: list[bytes] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append("replace"), real_replace(src, dst))[1])

    def write(handle) -> None:
        handle.write(b"new ")
        handle.flush()
        seen_during_write.append(path.read_bytes())
        temp = [p.name for p in tmp_path.iterdir() if p != path]  # the temp file, in the same dir (same filesystem)
        assert len(temp) == 1 and temp[0].startswith(".model_config.json.")
        assert (tmp_path / temp[0]).read_bytes() == b"new "
        handle.write(b"content")

    atomic_write(path, write)
    assert seen_during_write == [b"old content"]  # readers see the old file until the rename
    assert path.read_bytes() == b"new content"
    assert events.index("fsync") < events.index("replace")  # the data is on disk before the name points at it
    assert [p.name for p in tmp_path.iterdir()] == ["model_config.json"]  # no temp file left


def test_atomic_write_of_a_new_file_shows_nothing_until_complete(tmp_path):
    path = tmp_path / "sub" / "model.pth"
    existed: list[bool] = []
    atomic_write(path, lambda handle: (handle.write(b"weights"), existed.append(path.exists())))
    assert existed == [False]
    assert path.read_bytes() == b"weights"
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]
