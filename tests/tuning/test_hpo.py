"""The shared search space (SageMaker ranges and Optuna distributions) and the local Optuna sweep."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from dogbreed.config.parser import option_names
from dogbreed.sagemaker.tuning import hyperparameter_ranges as sagemaker_ranges
from dogbreed.tuning.search_space import SEARCH_SPACE, optuna_distributions, parameter_names, without

REPO = Path(__file__).resolve().parents[2]


def test_every_tuned_name_is_a_training_option():
    assert set(parameter_names()) <= set(option_names())


def test_sagemaker_ranges_render_the_space():
    ranges = {name: r.as_tuning_range(name) for name, r in sagemaker_ranges().items()}
    assert ranges["lr"] == {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}
    assert ranges["batch-size"] == {"Name": "batch-size", "Values": ["16", "32", "64"]}
    assert ranges["epochs"] == {"Name": "epochs", "MinValue": "5", "MaxValue": "10", "ScalingType": "Auto"}


def test_optuna_distributions_render_the_same_space():
    dists = optuna_distributions()
    assert dists["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["batch-size"] == optuna.distributions.CategoricalDistribution([16, 32, 64])
    assert dists["epochs"] == optuna.distributions.IntDistribution(5, 10)
    assert list(dists) == parameter_names()


def test_explicit_options_are_removed_from_the_search():
    assert [p.name for p in without(["epochs", "batch_size"])] == \
        [p.name for p in SEARCH_SPACE if p.name not in ("epochs", "batch-size")]


@pytest.mark.slow
def test_local_sweep_writes_best_params_and_model(tmp_path, tiny_tree):
    cmd = [sys.executable, "-m", "entry_points.hpo", "--local", "--trials", "3", "--tuning-dir", str(tmp_path / "hpo"),
           "--data-dir", str(tiny_tree), "--weights", "none", "--epochs", "2", "--image-size", "32",
           "--finetune", "full", "--num-workers", "0", "--accelerator", "cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((tmp_path / "hpo" / "best_hyperparameters.json").read_text())
    assert best["objective"] == "val_acc" and 0 <= best["value"] <= 1
    assert "epochs" not in best["hyperparameters"]  # fixed on the command line, so not searched
    assert set(best["hyperparameters"]) == {"lr", "batch-size", "weight-decay", "label-smoothing"}
    best_trial_model = tmp_path / "hpo" / "trials" / f"trial_{best['trial']:03d}" / "model"
    # The best trial's weights (re-saved with the final test metrics: equal tensors, not equal bytes).
    exported = torch.load(tmp_path / "hpo" / "best_model" / "model.pth", weights_only=True)
    trial = torch.load(best_trial_model / "model.pth", weights_only=True)
    assert exported.keys() == trial.keys() and all(torch.equal(exported[k], trial[k]) for k in trial)
    model_config = json.loads((tmp_path / "hpo" / "best_model" / "model_config.json").read_text())
    assert model_config["hyperparameters"]["lr"] == pytest.approx(best["hyperparameters"]["lr"])
    table = proc.stdout
    assert "trial" in table and "val_acc" in table and table.count("COMPLETE") + table.count("PRUNED") == 3
