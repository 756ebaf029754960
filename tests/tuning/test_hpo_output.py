"""Local tuning as a user sees it: quiet Optuna, one line per trial, no test split inside trials (the best model
is tested once), best_hyperparameters.json that `train --config` reproduces, one feature cache with train."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dogbreed.config.options import TrainConfig
from dogbreed.tuning.local import command_line, reproducible_config
from tests.helpers.builders import write_tree

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_the_reproducible_config_keeps_what_shaped_the_model_and_the_command_line_the_non_defaults():
    trial = TrainConfig(data_dir=Path("data"), model_dir=Path("hpo/trials/trial_003/model"),
                        output_dir=Path("hpo/trials/trial_003/reports"), cache_dir=Path("outputs/feature_cache"),
                        lr=0.0123, batch_size=16, weights="none", finetune="full", backbone_lr_scale=1.0)
    config = reproducible_config(trial, base=TrainConfig())
    assert {"model_dir", "output_dir", "cache_dir", "checkpoint_dir", "debug_dir", "profiler"}.isdisjoint(config)
    assert config["lr"] == 0.0123 and config["batch_size"] == 16 and config["data_dir"] == "data"
    assert config["seed"] == 42 and config["epochs"] == 5  # defaults are written out too
    assert command_line(config) == ("python -m entry_points.train --data-dir data --batch-size 16 --lr 0.0123 "
                                    "--weights none --finetune full")  # 1.0 is the lr scale's default with none
    user_cache = reproducible_config(trial, base=TrainConfig(cache_dir=Path("outputs/feature_cache")))
    assert user_cache["cache_dir"] == "outputs/feature_cache"  # chosen by the user: kept


@pytest.mark.slow
def test_local_search_is_quiet_tests_once_and_train_config_reproduces_the_best(tmp_path):
    write_tree(tmp_path / "data", {"train": 8, "valid": 4, "test": 4}, seed=3)
    from dogbreed.core.network import build_resnet50

    torch.manual_seed(0)
    torch.save(build_resnet50(10).state_dict(), tmp_path / "backbone.pth")
    common = ["--data-dir", "data", "--weights", "backbone.pth", "--epochs", "3", "--image-size", "32",
              "--num-workers", "0", "--accelerator", "cpu"]
    hpo = _run("entry_points.hpo", "--local", "--trials", "2", "--tuning-dir", "hpo", *common, cwd=tmp_path)
    assert hpo.returncode == 0, hpo.stderr[-3000:]
    assert "Trial 0 finished" not in hpo.stderr and not re.search(r"^\[I ", hpo.stderr, re.M)  # Optuna quiet
    trial_lines = [line for line in hpo.stderr.splitlines() if line.startswith("trial ")]
    assert [line.split()[:3] for line in trial_lines] == [["trial", "1/2", "COMPLETE"], ["trial", "2/2", "COMPLETE"]]
    assert "ETA" in trial_lines[0] and "(best " in trial_lines[1]
    assert not [line for line in hpo.stdout.splitlines() if line.startswith(("test:", "epoch="))]
    hpo_dir = tmp_path / "hpo"
    for trial in ("trial_001", "trial_002"):  # counted from 1, as the lines do; never touching the test split
        reports = hpo_dir / "trials" / trial / "reports"
        assert json.loads((reports / "metrics.json").read_text())["test"] == {}
        assert not (reports / "confusion_matrix.png").exists()
    best = json.loads((hpo_dir / "best_hyperparameters.json").read_text())
    assert set(best) == {"objective", "value", "trial", "hyperparameters", "test", "config", "command"}
    assert set(best["test"]) == {"loss", "acc", "acc_top5", "f1_macro"}
    assert f"best model tested once: test_loss={best['test']['loss']:.4f}" in hpo.stdout
    model_config = json.loads((hpo_dir / "best_model" / "model_config.json").read_text())
    assert model_config["metrics"]["test"] == best["test"]
    assert (hpo_dir / "best_reports" / "confusion_matrix.png").is_file()
    assert (hpo_dir / "best_reports" / "most_confused.csv").is_file()
    assert (hpo_dir / "best_reports" / "calibration.png").is_file()
    assert best["trial"] in (1, 2) and f"testing the best model (trial {best['trial']})" in hpo.stderr
    for name, value in best["hyperparameters"].items():
        assert best["config"][name.replace("-", "_")] == value
    assert best["config"]["weights"] == "backbone.pth" and best["config"]["epochs"] == 3
    assert "python -m entry_points.train --config hpo/best_hyperparameters.json" in hpo.stdout

    again = _run("entry_points.train", "--config", "hpo/best_hyperparameters.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    last_epoch = [line for line in again.stdout.splitlines() if line.startswith("epoch=3 ")][0]
    assert f"val_acc={best['value']:.6f}" in last_epoch  # the best trial, reproduced exactly
    test_line = [line for line in again.stdout.splitlines() if line.startswith("test: ")][0]
    assert f"test_acc={best['test']['acc']:.6f}" in test_line
    # the same default cache as hpo: every split comes from it, no backbone pass
    assert "feature cache" in again.stdout and "every split from the cache" in again.stdout
