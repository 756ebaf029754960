"""The best epoch is what is tested and exported; early stopping stops and says so; both survive a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError, RunInterrupted
from dogbreed.training.callbacks import EMAWeights
from dogbreed.training.run import train
from dogbreed.training.selection import BestEpoch, logged_name
from tests.helpers.builders import fast_config, write_tree
from tests.helpers.stopping import StopAfter


class ValidatedWeights(Callback):
    """The network's weights as validated in each epoch (the EMA average when EMA is on), by epoch from 1."""

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        ema = next((c for c in trainer.callbacks if isinstance(c, EMAWeights)), None)
        net = ema._average_model.module.net if ema is not None else pl_module.net
        self.by_epoch[trainer.current_epoch + 1] = {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("best") / "data", {"train": 10, "valid": 4, "test": 2}, seed=3)


def _first_best(history: list[dict], key: str, mode: str = "max") -> int:
    values = [record[key] for record in history]
    best = max(values) if mode == "max" else min(values)
    return values.index(best) + 1


def _exported(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pth", weights_only=True)


def test_monitor_names_the_logged_metric_and_the_options_are_checked():
    assert [logged_name(m) for m in ("val_acc", "val_loss", "val_f1_macro")] == ["val/acc", "val/loss",
                                                                                  "val/f1_macro"]
    config = parse_config(["--monitor", "val_loss", "--early-stopping", "3", "--max-time", "01:02:03"])
    assert (config.stopping.monitor, config.stopping.early_stopping, config.stopping.max_time) == \
        ("val_loss", 3, "01:02:03")
    assert config.to_dict()["monitor"] == "val_loss"  # -> the run's hyperparameters record
    assert parse_config([]).stopping.monitor == "val_acc" and parse_config([]).stopping.early_stopping == 0
    with pytest.raises(ConfigError) as refused:
        parse_config(["--early-stopping", "-1"])
    assert str(refused.value) == "--early-stopping must be >= 0 (epochs of patience; 0 = off), got -1"
    for max_time in ("90", "00:61:00"):
        with pytest.raises(ConfigError) as refused:
            parse_config(["--max-time", max_time])
        assert str(refused.value) == f"--max-time must be HH:MM:SS (e.g. 00:30:00) and more than zero, got '{max_time}'"
    with pytest.raises(ConfigError) as refused:
        parse_config(["--monitor", "train_acc"])
    assert str(refused.value) == ("argument --monitor: invalid choice: 'train_acc' (choose from 'val_acc', 'val_loss', "
                                  "'val_f1_macro') (see python -m entry_points.train --help)")


def test_best_epoch_keeps_the_first_best_value_and_its_record():
    best = BestEpoch("val_loss")
    assert best.record() is None and best.restore(torch.nn.Linear(2, 2)) is False
    best.load_state_dict({"epoch": 3, "value": 0.25, "weights": {"weight": torch.ones(2, 2)}})
    assert best.record() == {"epoch": 3, "monitor": "val_loss", "value": 0.25}
    layer = torch.nn.Linear(2, 2)
    assert best.restore(layer) and torch.equal(layer.weight, torch.ones(2, 2))


@pytest.mark.slow  # training runs
def test_early_stopping_stops_and_exports_the_best_epochs_weights(tree, tmp_path, capsys):
    config = fast_config(tmp_path, tree, epochs=20, early_stopping=2, lr=3e-3, seed=7)
    recorder = ValidatedWeights()
    result = train(config, extra_callbacks=[recorder])
    epochs = len(result.history)
    assert epochs < 20
    best_epoch = _first_best(result.history, "val_acc")
    assert epochs == best_epoch + 2  # patience 2: two epochs without improvement, then stop
    out = capsys.readouterr().out
    best_value = result.history[best_epoch - 1]["val_acc"]
    assert (f"early stopping: val_acc did not improve for 2 epoch(s) (best {best_value:.4f}): stopped after epoch "
            f"{epochs} of 20") in out
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    assert metrics["best"] == {"epoch": best_epoch, "monitor": "val_acc",
                               "value": pytest.approx(result.history[best_epoch - 1]["val_acc"])}
    assert len(metrics["history"]) == epochs
    exported = _exported(config.outputs.model_dir)
    for name, value in recorder.by_epoch[best_epoch].items():
        assert torch.equal(exported[name], value), name
    assert not torch.equal(exported["fc.weight"], recorder.by_epoch[epochs]["fc.weight"])  # not the last epoch
    model_config = json.loads((config.outputs.model_dir / "model_config.json").read_text())
    assert model_config["metrics"]["best"]["epoch"] == best_epoch
    assert model_config["hyperparameters"]["early_stopping"] == 2
    assert f"best epoch: {best_epoch} (val_acc=" in "\n".join(result.summary)


def test_issue_22_acceptance_a_flat_tree_splits_stops_early_and_exports_the_best_epoch(tmp_path, capsys, caplog):
    """The issue's acceptance run in one: a flat tree of 3 classes, --valid-pct 0.2 --test-pct 0.2
    --early-stopping 2 --epochs 20: stops before epoch 20, writes splits.json and metrics.json["best"], and the
    exported weights are the best epoch's."""
    flat = write_tree(tmp_path / "flat", {"": 10}, seed=2)  # class folders only: 10 images each
    config = fast_config(tmp_path, flat, epochs=20, early_stopping=2, valid_pct=0.2, test_pct=0.2, lr=3e-3, seed=7)
    recorder = ValidatedWeights()
    with caplog.at_level("INFO", logger="dogbreed.training.run"):
        result = train(config, extra_callbacks=[recorder])
    epochs = len(result.history)
    best_epoch = _first_best(result.history, "val_acc")
    assert epochs < 20 and epochs == best_epoch + 2
    best_value = result.history[best_epoch - 1]["val_acc"]
    assert f"testing and exporting epoch {best_epoch} (val_acc={best_value:.4f})" in caplog.messages
    splits = json.loads((config.outputs.output_dir / "splits.json").read_text())
    assert splits["carved"] == ["valid", "test"] and splits["seed"] == 7
    assert [sum(splits["counts"][split].values()) for split in ("train", "valid", "test")] == [18, 6, 6]
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    assert metrics["best"] == {"epoch": best_epoch, "monitor": "val_acc",
                               "value": pytest.approx(result.history[best_epoch - 1]["val_acc"])}
    exported = _exported(config.outputs.model_dir)
    for name, value in recorder.by_epoch[best_epoch].items():
        assert torch.equal(exported[name], value), name
    assert not torch.equal(exported["fc.weight"], recorder.by_epoch[epochs]["fc.weight"])
    assert f"stopped after epoch {epochs} of 20" in capsys.readouterr().out


@pytest.mark.slow
def test_head_only_cached_run_with_ema_exports_the_best_epochs_average(tree, tmp_path):
    config = fast_config(tmp_path, tree, epochs=4, finetune="head", cached_views=1, ema_decay=0.5, lr=0.05,
                         monitor="val_loss", seed=1)
    recorder = ValidatedWeights()
    result = train(config, extra_callbacks=[recorder])
    best_epoch = _first_best(result.history, "val_loss", mode="min")
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    assert metrics["best"]["epoch"] == best_epoch and metrics["best"]["monitor"] == "val_loss"
    exported = _exported(config.outputs.model_dir)
    assert torch.equal(exported["fc.weight"], recorder.by_epoch[best_epoch]["fc.weight"])
    assert torch.equal(exported["fc.bias"], recorder.by_epoch[best_epoch]["fc.bias"])


@pytest.mark.slow
def test_a_resumed_run_still_knows_its_best_epoch(tree, tmp_path):
    values = dict(epochs=4, finetune="head", cached_views=1, monitor="val_loss", lr=0.05, seed=2)
    config = fast_config(tmp_path, tree, checkpoint_dir=tmp_path / "ckpt", **values)
    reference = fast_config(tmp_path / "whole", tree, **values)
    whole = train(reference)
    with pytest.raises(RunInterrupted):
        train(config, extra_callbacks=[StopAfter(2)])
    resumed = train(config)
    assert [round(h["val_loss"], 5) for h in resumed.history] == [round(h["val_loss"], 5) for h in whole.history]
    best = json.loads((config.outputs.output_dir / "metrics.json").read_text())["best"]
    assert best["epoch"] == _first_best(whole.history, "val_loss", mode="min")
    torch.testing.assert_close(_exported(config.outputs.model_dir), _exported(reference.outputs.model_dir))
