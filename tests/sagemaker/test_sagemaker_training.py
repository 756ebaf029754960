"""The SageMaker training-container contract, exercised with the training toolkit's own code."""

import json
import re

import pytest
import torch

from dogbreed.config.parser import option_names
from dogbreed.sagemaker.environment import config_defaults, distributed_settings
from dogbreed.training.metric_lines import METRIC_DEFINITIONS, OBJECTIVE_METRIC
from tests.helpers.toolkit import run_like_sagemaker

HYPERPARAMETERS = {"epochs": 2, "batch-size": 8, "lr": 0.002, "weights": "none", "image-size": 32,
                   "finetune": "full", "num-workers": 0, "skip-bad-images": False, "backbone-lr-scale": 1.0}


def _split_channels(tree):
    return {"train": tree / "train", "valid": tree / "valid", "test": tree / "test"}


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["training", "split"])
def test_training_job_runs_as_the_toolkit_starts_it(tmp_path, learnable_tree, layout):
    channels = {"training": learnable_tree} if layout == "training" else _split_channels(learnable_tree)
    proc, ml = run_like_sagemaker(tmp_path, HYPERPARAMETERS, channels)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(ml / "model" / "model.pth", weights_only=True)["fc.weight"].shape == (3, 2048)
    model_config = json.loads((ml / "model" / "model_config.json").read_text())
    # Every hyperparameter reached the script (the original project's tuner silently lost lr/batch size).
    assert model_config["hyperparameters"]["batch_size"] == 8
    assert model_config["hyperparameters"]["lr"] == 0.002
    assert model_config["class_names"] == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    metrics = json.loads((ml / "output" / "data" / "metrics.json").read_text())
    assert len(metrics["history"]) == 2
    assert "\r" not in proc.stdout and "\r" not in proc.stderr  # no progress bar in a job

    # Each metric regex parses exactly the values in metrics.json from the job's real stdout.
    lines = proc.stdout.splitlines()
    expected = {
        "train_loss": [h["train_loss"] for h in metrics["history"]],
        "train_acc": [h["train_acc"] for h in metrics["history"]],
        "val_loss": [h["val_loss"] for h in metrics["history"]],
        "val_acc": [h["val_acc"] for h in metrics["history"]],
        "val_f1_macro": [h["val_f1_macro"] for h in metrics["history"]],
        "test_loss": [metrics["test"]["loss"]],
        "test_acc": [metrics["test"]["acc"]],
    }
    for definition in METRIC_DEFINITIONS:
        pattern = re.compile(definition["Regex"])
        found = [float(m.group(1)) for line in lines if (m := pattern.search(line))]
        assert found == pytest.approx(expected[definition["Name"]], abs=1e-6), definition["Name"]


@pytest.mark.slow
def test_unknown_hyperparameter_fails_the_job_at_once(tmp_path, tiny_tree):
    proc, ml = run_like_sagemaker(tmp_path, {**HYPERPARAMETERS, "learning_rate": 0.01}, {"training": tiny_tree})
    assert proc.returncode != 0
    assert "--learning_rate" in proc.stderr and "--lr" in proc.stderr
    assert not (ml / "model" / "model.pth").exists()
    assert "epoch=" not in proc.stdout


def test_objective_is_a_validation_metric():
    names = [d["Name"] for d in METRIC_DEFINITIONS]
    assert OBJECTIVE_METRIC in names and OBJECTIVE_METRIC.startswith("val_")
    assert all(len(d["Regex"]) <= 500 for d in METRIC_DEFINITIONS)  # SageMaker's limit


def test_regexes_do_not_confuse_similar_names():
    line = "epoch=4 train_loss=0.500000 train_acc=0.250000 val_loss=0.750000 val_acc=0.125000 val_acc_top5=0.900000"
    values = {d["Name"]: re.search(d["Regex"], line) for d in METRIC_DEFINITIONS}
    assert float(values["val_acc"].group(1)) == 0.125
    assert float(values["train_acc"].group(1)) == 0.25
    assert values["test_acc"] is None


def test_environment_defaults_map_channels_and_dirs(tmp_path):
    (tmp_path / "ml" / "checkpoints").mkdir(parents=True)
    env = {"SM_MODEL_DIR": str(tmp_path / "ml" / "model"), "SM_OUTPUT_DATA_DIR": "/o",
           "SM_CHANNEL_TRAIN": "/t", "SM_CHANNEL_VALID": "/v", "SM_NUM_CPUS": "8"}
    defaults = config_defaults(env)
    assert str(defaults["train_dir"]) == "/t" and str(defaults["valid_dir"]) == "/v"
    assert "test_dir" not in defaults and "data_dir" not in defaults
    assert defaults["checkpoint_dir"] == tmp_path / "ml" / "checkpoints"
    assert config_defaults({}) == {}


@pytest.mark.parametrize("env,expected", [
    ({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"},
     {"devices": 4, "num_nodes": 2, "strategy": "ddp"}),
    ({"SM_MODEL_DIR": "/m", "SM_NUM_GPUS": "4", "SM_HOSTS": '["algo-1"]'},
     {"devices": 4, "num_nodes": 1, "strategy": "ddp"}),
    ({"SM_MODEL_DIR": "/m", "SM_NUM_GPUS": "0", "SM_HOSTS": '["algo-1"]'}, {"devices": 1, "num_nodes": 1}),
    ({}, {}),
])
def test_distributed_settings_from_the_environment(env, expected):
    assert distributed_settings(env) == expected


def test_hyperparameter_names_are_script_options():
    for name in HYPERPARAMETERS:
        assert name in option_names()
