"""The SageMaker training-container contract, exercised with each launcher's own code: SDK v3's driver
(``ModelTrainer`` jobs) and the legacy training toolkit (tuning child jobs)."""

import json
import logging
import re
from pathlib import Path

import pytest
import torch

from dogbreed.config.parser import option_names, parse_config, split_launcher_options
from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.environment import config_defaults, distributed_settings
from dogbreed.training.metric_lines import METRIC_DEFINITIONS, OBJECTIVE_METRIC
from tests.helpers.option_lists import TRAIN_OPTIONS
from tests.helpers.toolkit import run_like_sagemaker, run_like_v3_driver, v3_driver_env_and_argv

# The acceptance hyperparameters, in this order (v3 keeps dict order).
V3_HYPERPARAMETERS = {"epochs": 1, "image-size": 32, "batch-size": 8, "weights": "none", "finetune": "full",
                      "calibrate": False, "_tuning_objective_metric": "val_acc"}

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


def test_every_default_dir_follows_the_job_layout_and_a_job_name_alone_means_opt_ml(tmp_path):
    root = tmp_path / "ml"
    defaults = config_defaults({"SM_MODEL_DIR": str(root / "model"), "SM_OUTPUT_DATA_DIR": str(root / "output/data")})
    assert defaults == {"model_dir": root / "model", "output_dir": root / "output" / "data",
                        "cache_dir": root / "feature_cache", "profile_dir": root / "output" / "tensorboard"}
    assert config_defaults({"TRAINING_JOB_NAME": "dogbreed-job"}) == {  # SageMaker's fixed layout
        "model_dir": Path("/opt/ml/model"), "cache_dir": Path("/opt/ml/feature_cache"),
        "profile_dir": Path("/opt/ml/output/tensorboard")}


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


def test_v3_driver_argv_and_environment(tmp_path):
    ml = tmp_path / "ml"
    (ml / "input").mkdir(parents=True)
    env, argv = v3_driver_env_and_argv(ml, V3_HYPERPARAMETERS, ["training", "code", "sm_drivers"])
    assert argv == ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--weights", "none",
                    "--finetune", "full", "--calibrate", "false", "--_tuning_objective_metric", "val_acc"]
    assert env["SM_CHANNEL_TRAINING"] == str(ml / "input" / "data" / "training")
    assert env["SM_MODEL_DIR"] == str(ml / "model") and env["SM_ENTRY_SCRIPT"] == "train.py"
    assert json.loads(env["SM_CHANNELS"]) == ["training", "code", "sm_drivers"]
    defaults = config_defaults(env)  # the code and sm_drivers channels are no data
    assert defaults["data_dir"] == ml / "input" / "data" / "training" and "train_dir" not in defaults


@pytest.mark.parametrize("argv,kept,dropped", [
    (["--epochs", "1", "--_tuning_objective_metric", "val_acc"], ["--epochs", "1"], ["--_tuning_objective_metric"]),
    (["--sagemaker_program", "train.py", "--lr", "0.1", "--sagemaker_submit_directory", "s3://b/k.tar.gz"],
     ["--lr", "0.1"], ["--sagemaker_program", "--sagemaker_submit_directory"]),
    (["--_objective=val_acc", "--demo", "--calibrate", "false"], ["--demo", "--calibrate", "false"], ["--_objective"]),
    (["--sagemaker_flag", "--epochs", "2"], ["--epochs", "2"], ["--sagemaker_flag"]),  # a launcher key without value
    (["--learning_rate", "0.1", "--sagemaker-program", "x"], ["--learning_rate", "0.1", "--sagemaker-program", "x"],
     []),
])
def test_launcher_options_are_split_off(argv, kept, dropped):
    assert split_launcher_options(argv) == (kept, dropped)


def test_v3_argv_parses_with_one_logged_line(caplog, tmp_path):
    argv = ["--calibrate", "false", "--sagemaker_program", "train.py", "--epochs", "3", "--demo", "true",
            "--_tuning_objective_metric", "val_acc"]
    with caplog.at_level(logging.INFO, logger="dogbreed.config.parser"):
        config = parse_config(argv, environment_defaults={"data_dir": tmp_path})
    assert config.optimisation.epochs == 3 and config.calibration.calibrate is False and config.data.demo is True
    lines = [r.getMessage() for r in caplog.records if r.name == "dogbreed.config.parser"]
    assert lines == ["ignored --sagemaker_program --_tuning_objective_metric (added by the SageMaker launcher, "
                     "not options of python -m entry_points.train)"]


def test_a_users_misspelled_option_is_still_refused():
    with pytest.raises(ConfigError) as refused:
        parse_config(["--_tuning_objective_metric", "val_acc", "--learning_rate", "0.1"])
    assert str(refused.value) == (
        f"unknown option(s) --learning_rate (did you mean --lr?). Options of python -m entry_points.train: "
        f"{TRAIN_OPTIONS} (hyphens or underscores)")
    assert "_tuning_objective_metric" not in str(refused.value)


@pytest.mark.slow
def test_training_job_runs_as_the_v3_driver_starts_it(tmp_path, learnable_tree):
    proc, ml = run_like_v3_driver(tmp_path, V3_HYPERPARAMETERS, {"training": learnable_tree})
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert torch.load(ml / "model" / "model.pth", weights_only=True)["fc.weight"].shape == (3, 2048)
    model_config = json.loads((ml / "model" / "model_config.json").read_text())
    assert model_config["hyperparameters"]["batch_size"] == 8 and model_config["hyperparameters"]["epochs"] == 1
    assert model_config["temperature"] == 1.0  # --calibrate false reached the script
    assert proc.stdout.count("ignored --_tuning_objective_metric") == 1
    # Each metric regex parses exactly the values in metrics.json from the driver's re-logged output.
    metrics = json.loads((ml / "output" / "data" / "metrics.json").read_text())
    expected = {"train_loss": metrics["history"][0]["train_loss"], "train_acc": metrics["history"][0]["train_acc"],
                "val_loss": metrics["history"][0]["val_loss"], "val_acc": metrics["history"][0]["val_acc"],
                "val_f1_macro": metrics["history"][0]["val_f1_macro"], "test_loss": metrics["test"]["loss"],
                "test_acc": metrics["test"]["acc"]}
    for definition in METRIC_DEFINITIONS:
        pattern = re.compile(definition["Regex"])
        found = [float(m.group(1)) for line in proc.stdout.splitlines() if (m := pattern.search(line))]
        assert found == pytest.approx([expected[definition["Name"]]], abs=1e-6), definition["Name"]
