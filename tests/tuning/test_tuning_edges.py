"""Tuning edges: the results table column for column, a trial's own checkpoint dir, what the reproducible config
leaves out, and a command line that a shell reads back."""

from __future__ import annotations

import shlex
from pathlib import Path

import optuna

from dogbreed.config.options import TrainConfig
from dogbreed.tuning.local import _apply, _table, command_line, reproducible_config

DISTRIBUTIONS = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
                 "batch-size": optuna.distributions.CategoricalDistribution([16, 32, 64])}


def test_the_results_table_is_aligned_under_its_header_with_4_decimals_and_3_significant_digits():
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.25, params={"lr": 0.001234, "batch-size": 32},
                                              distributions=DISTRIBUTIONS))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              params={"lr": 0.0456789, "batch-size": 16}, distributions=DISTRIBUTIONS))
    study.add_trial(optuna.trial.create_trial(value=0.51237, params={"lr": 0.01, "batch-size": 64},
                                              distributions=DISTRIBUTIONS))
    assert _table(study, ["lr", "batch-size"]).splitlines() == [
        "trial  state     val_acc  lr       batch-size",
        "1      COMPLETE  0.2500   0.00123  32        ",
        "2      PRUNED             0.0457   16        ",
        "3      COMPLETE  0.5124   0.01     64        ",
    ]


def test_each_trial_checkpoints_into_its_own_subdir_of_checkpoint_dir(tmp_path):
    base = TrainConfig(data_dir=tmp_path / "data", checkpoint_dir=tmp_path / "ckpt")
    config = _apply(base, {"lr": 0.01, "batch-size": 32}, tmp_path / "hpo" / "trials" / "trial_007")
    assert config.checkpoints.checkpoint_dir == tmp_path / "ckpt" / "trial_007"
    assert config.outputs.model_dir == tmp_path / "hpo" / "trials" / "trial_007" / "model"
    assert config.outputs.output_dir == tmp_path / "hpo" / "trials" / "trial_007" / "reports"
    assert (config.optimisation.lr, config.optimisation.batch_size) == (0.01, 32)
    no_checkpoints = _apply(TrainConfig(data_dir=tmp_path / "data"), {}, tmp_path / "hpo" / "trials" / "trial_001")
    assert no_checkpoints.checkpoints.checkpoint_dir is None


def test_the_reproducible_config_leaves_out_empty_and_unset_options():
    config = reproducible_config(TrainConfig(data_dir=Path("data")), base=TrainConfig())
    unset = {"dataset_url", "max_time", "train_dir", "valid_dir", "test_dir", "valid_pct", "test_pct", "ood_dir",
             "log_dir"}  # "" or None by default
    assert unset.isdisjoint(config), unset & set(config)
    assert "" not in config.values() and None not in config.values()


def test_the_command_line_quotes_what_a_shell_would_split():
    config = reproducible_config(TrainConfig(data_dir=Path("my photos/dogs"), lr=0.02), base=TrainConfig())
    line = command_line(config)
    assert line == "python -m entry_points.train --data-dir 'my photos/dogs' --lr 0.02"
    assert shlex.split(line)[3:] == ["--data-dir", "my photos/dogs", "--lr", "0.02"]
