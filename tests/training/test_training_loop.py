"""The loop's tools on real tiny runs: --show-batch, --lr-find / --lr auto, --max-time, --finetune gradual,
--warmup-epochs, --accumulate-grad-batches."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from pytorch_lightning.callbacks import Callback

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError, RunInterrupted
from dogbreed.core.network import backbone_parameters
from dogbreed.data.splits import SplitDirs
from dogbreed.training.run import build_datamodule, train, trainer_settings
from tests.helpers.builders import fast_config, write_tree
from tests.helpers.stopping import StopAfter


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("loop") / "data", {"train": 4, "valid": 2, "test": 2}, seed=4)


def _head(tmp_path: Path, tree: Path, **overrides):
    values = dict(finetune="head", cached_views=1, epochs=2, batch_size=4, lr=1e-3, seed=3)
    values.update(overrides)
    return fast_config(tmp_path, tree, **values)


def test_augmentation_options_reach_the_preprocessing(tree):
    config = parse_config(["--augment", "trivialaugment", "--random-erasing", "0.3", "--crop-min-side", "0.4",
                           "--image-size", "32"])
    pre = build_datamodule(config, SplitDirs.from_data_dir(tree), num_workers=0).preprocessing
    assert (pre.augment, pre.random_erasing, pre.crop_min_side, pre.crop_scale) == ("trivialaugment", 0.3, 0.4,
                                                                                     (0.08, 1.0))
    assert parse_config([]).data.crop_min_side == 0.5  # small images get gentler crops by default


def test_new_options_parse_with_range_checks_and_reach_the_record():
    config = parse_config(["--lr", "auto", "--finetune", "gradual", "--freeze-epochs", "2", "--epochs", "5",
                           "--warmup-epochs", "1", "--accumulate-grad-batches", "4", "--augment", "randaugment",
                           "--random-erasing", "0.25", "--crop-min-side", "0", "--show-batch", "--lr-find"])
    record = config.to_dict()
    assert {k: record[k] for k in ("lr", "finetune", "freeze_epochs", "warmup_epochs", "accumulate_grad_batches",
                                   "augment", "random_erasing", "crop_min_side", "show_batch", "lr_find")} == {
        "lr": -1.0, "finetune": "gradual", "freeze_epochs": 2, "warmup_epochs": 1, "accumulate_grad_batches": 4,
        "augment": "randaugment", "random_erasing": 0.25, "crop_min_side": 0.0, "show_batch": True,
        "lr_find": True}
    assert trainer_settings(config)["accumulate_grad_batches"] == 4
    bad = {("--finetune", "gradual", "--freeze-epochs", "5", "--epochs", "5"):
           "--finetune gradual needs 1 <= --freeze-epochs < --epochs (head first, then everything), got "
           "--freeze-epochs 5 with --epochs 5",
           ("--warmup-epochs", "5", "--epochs", "5"):
           "--warmup-epochs must be >= 0 and less than --epochs, got --warmup-epochs 5 with --epochs 5",
           ("--accumulate-grad-batches", "0"): "--accumulate-grad-batches must be at least 1, got 0",
           ("--random-erasing", "1.5"): "--random-erasing must be in [0, 1], got 1.5",
           ("--augment", "none", "--random-erasing", "0.5"):
           "--random-erasing augments training images, but --augment none turns augmentation off: choose one",
           ("--crop-min-side", "2"): "--crop-min-side must be in [0, 1] (a share of --image-size; 0 = off), got 2.0",
           ("--lr", "-2"): "--lr must be a positive finite number (or auto: the learning-rate finder), got -2.0",
           ("--lr", "-1"): "argument --lr: must be a positive finite number (or auto: the learning-rate finder), "
                           "got -1 (see python -m entry_points.train --help)"}
    for argv, message in bad.items():
        with pytest.raises(ConfigError) as refused:
            parse_config(list(argv))
        assert str(refused.value) == message, argv


@pytest.mark.slow
def test_show_batch_writes_a_grid_and_trains_as_without_it(tree, tmp_path, capsys):
    shown = train(_head(tmp_path / "shown", tree, epochs=1, show_batch=True, cached_views=0, finetune="full"))
    path = tmp_path / "shown" / "reports" / "batch.png"
    assert f"show batch: 4 augmented training inputs (--augment default, 32 px) in {path}" in capsys.readouterr().out
    with Image.open(path) as image:  # 4 images: one row of 4 panels of 2.4 x 2.6 inches at 100 dpi
        assert image.size == (960, 260)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100  # pictures, not an empty canvas
    plain = train(_head(tmp_path / "plain", tree, epochs=1, cached_views=0, finetune="full"))
    assert shown.history == plain.history  # the batch was drawn under a forked RNG


@pytest.mark.slow
def test_lr_find_writes_the_curve_prints_the_suggestion_and_stops(tree, tmp_path, capsys):
    result = train(_head(tmp_path, tree, lr_find=True))
    out = capsys.readouterr().out
    assert "lr finder: suggested --lr " in out and "--lr-find: stopped before training" in out
    assert (tmp_path / "reports" / "lr_find.png").stat().st_size > 10_000
    assert result.history == [] and not (tmp_path / "model" / "model.pth").exists()
    suggested = float(out.split("suggested --lr ")[1].split()[0])
    assert 1e-7 <= suggested <= 1.0


@pytest.mark.slow
def test_lr_auto_trains_with_the_finders_suggestion(tree, tmp_path, capsys):
    train(_head(tmp_path, tree, lr=-1.0))  # --lr auto
    out = capsys.readouterr().out
    suggested = float(out.split("suggested --lr ")[1].split()[0])
    record = json.loads((tmp_path / "model" / "model_config.json").read_text())["hyperparameters"]
    assert record["lr_auto"] is True and record["lr"] == pytest.approx(suggested, rel=5e-3)


@pytest.mark.slow
def test_max_time_stops_training_cleanly_and_still_exports(tree, tmp_path, capsys):
    config = fast_config(tmp_path, tree, epochs=200, max_time="00:00:02")
    result = train(config)
    assert len(result.history) < 200
    assert "time budget: --max-time 00:00:02 spent in epoch" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["best"]["epoch"] <= len(result.history) and set(metrics["test"]) >= {"acc", "loss"}
    assert (tmp_path / "model" / "model.pth").is_file()


class EpochProbe(Callback):
    """Per epoch (from 1): trainable backbone?, param-group learning rates at the first step, backbone weights."""

    def __init__(self) -> None:
        self.trainable: dict[int, bool] = {}
        self.first_lrs: dict[int, list[float]] = {}
        self.backbone: dict[int, torch.Tensor] = {}
        self.step_lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        epoch = trainer.current_epoch + 1
        self.step_lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        if epoch not in self.first_lrs:
            self.first_lrs[epoch] = [group["lr"] for group in trainer.optimizers[0].param_groups]
            self.trainable[epoch] = all(p.requires_grad for p in backbone_parameters(pl_module.net))

    def on_train_start(self, trainer, pl_module):
        self.backbone[0] = pl_module.net.conv1.weight.detach().clone()

    def on_train_epoch_end(self, trainer, pl_module):
        self.backbone[trainer.current_epoch + 1] = pl_module.net.conv1.weight.detach().clone()


@pytest.mark.slow
def test_gradual_trains_the_head_first_then_everything_with_a_fresh_schedule(tree, tmp_path, capsys):
    config = fast_config(tmp_path, tree, finetune="gradual", freeze_epochs=1, epochs=3, lr=2e-3,
                         backbone_lr_scale=0.1, seed=5)
    probe = EpochProbe()
    train(config, extra_callbacks=[probe])
    assert probe.trainable == {1: False, 2: True, 3: True}
    assert probe.first_lrs[1] == [pytest.approx(2e-3)]  # the head alone
    assert probe.first_lrs[2] == [pytest.approx(2e-3), pytest.approx(2e-4)]  # fresh: full lr again, backbone x0.1
    assert "gradual fine-tuning: from epoch 2 the whole network trains (head lr 0.002, backbone lr 0.0002" \
        in capsys.readouterr().out
    assert torch.equal(probe.backbone[0], probe.backbone[1])  # frozen in epoch 1
    assert not torch.equal(probe.backbone[1], probe.backbone[2])  # the backbone moves once unfrozen
    record = json.loads((tmp_path / "model" / "model_config.json").read_text())["hyperparameters"]
    assert (record["finetune"], record["freeze_epochs"]) == ("gradual", 1)


@pytest.mark.slow
def test_gradual_run_resumes_after_the_unfreeze(tree, tmp_path):
    values = dict(finetune="gradual", freeze_epochs=1, epochs=3, seed=6)
    whole = train(fast_config(tmp_path / "whole", tree, **values))
    config = fast_config(tmp_path / "parts", tree, checkpoint_dir=tmp_path / "ckpt", **values)
    with pytest.raises(RunInterrupted):
        train(config, extra_callbacks=[StopAfter(2)])  # after epoch 2: the backbone is already unfrozen
    resumed = train(config)
    assert [round(h["train_loss"], 4) for h in resumed.history] == [round(h["train_loss"], 4) for h in whole.history]
    exported = torch.load(tmp_path / "parts" / "model" / "model.pth", weights_only=True)
    reference = torch.load(tmp_path / "whole" / "model" / "model.pth", weights_only=True)
    torch.testing.assert_close(exported, reference)


@pytest.mark.slow
def test_warmup_ramps_the_learning_rate_then_decays_it(tree, tmp_path):
    probe = EpochProbe()
    train(_head(tmp_path, tree, epochs=3, warmup_epochs=1, lr=1e-2), extra_callbacks=[probe])
    # 12 training images, batches of 4: 3 steps per epoch, 9 in all; warm-up 3 steps from 1% of lr, cosine over 6
    ramp = [1e-2 * (0.01 + 0.99 * step / 3) for step in range(3)]
    cosine = [1e-2 * (1 + math.cos(math.pi * step / 6)) / 2 for step in range(6)]
    assert probe.step_lrs == pytest.approx(ramp + cosine, rel=1e-6)
