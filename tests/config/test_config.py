import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from dogbreed.config.options import TrainConfig
from dogbreed.config.parser import build_parser, option_names, parse_config
from dogbreed.core.errors import ConfigError
from tests.helpers.option_lists import TRAIN_OPTIONS

# Every option, as the dataclass declares it: each field of TrainConfig is a section, each section's field an option.
OPTIONS = [f.name for section in fields(TrainConfig) for f in fields(getattr(TrainConfig(), section.name))]

REPO = Path(__file__).resolve().parents[2]


def test_unknown_hyperparameter_is_rejected_with_valid_names():
    with pytest.raises(ConfigError) as err:
        parse_config(["--learning_rate", "0.01", "--epochs", "2"])
    assert str(err.value) == (
        f"unknown option(s) --learning_rate (did you mean --lr?). Options of python -m entry_points.train: "
        f"{TRAIN_OPTIONS} (hyphens or underscores)")


def test_the_original_projects_tuner_keys_reach_the_config():
    # The seed's argparse dropped --lr/--batch-size silently; here they must arrive.
    config = parse_config(["--batch-size", "64", "--lr", "0.0059", "--epochs", "5"])
    assert (config.optimisation.batch_size, config.optimisation.lr, config.optimisation.epochs) == (64, 0.0059, 5)


@pytest.mark.parametrize("flag", ["--batch-size", "--batch_size"])
def test_hyphen_and_underscore_spellings_are_equivalent(flag):
    assert parse_config([flag, "17"]).optimisation.batch_size == 17


def test_every_option_has_both_spellings():
    help_text = build_parser().format_help()
    for name in OPTIONS:
        assert f"--{name.replace('_', '-')}" in help_text
        assert f"--{name}" in help_text


def test_abbreviated_option_is_rejected():
    with pytest.raises(ConfigError) as refused:
        parse_config(["--batch", "64"])
    assert str(refused.value) == (
        f"unknown option(s) --batch (did you mean --batch-size?). Options of python -m entry_points.train: "
        f"{TRAIN_OPTIONS} (hyphens or underscores)")


@pytest.mark.parametrize("text,expected", [("True", True), ("False", False), ("true", True), ("0", False)])
def test_sagemaker_boolean_strings(text, expected):
    assert parse_config(["--skip-bad-images", text]).data.skip_bad_images is expected


def test_bare_boolean_flag_means_true():
    assert parse_config(["--skip-bad-images"]).data.skip_bad_images is True


def test_bad_boolean_is_an_error():
    with pytest.raises(ConfigError) as refused:
        parse_config(["--demo", "maybe"])
    assert str(refused.value) == ("argument --demo: expected a boolean (true/false), got 'maybe' "
                                  "(see python -m entry_points.train --help)")


def test_demo_presets_apply_but_explicit_options_win():
    config = parse_config(["--demo", "--epochs", "2"])
    assert config.optimisation.epochs == 2
    assert config.optimisation.weights == "none" and config.data.image_size == 64
    assert parse_config([]).optimisation.weights == "imagenet"


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    # -1 is --lr auto's stored value: refused while parsing, in the range check's words, not argparse's type name
    (["--lr", "-1"], "argument --lr: must be a positive finite number (or auto: the learning-rate finder), got -1 "
                     "(see python -m entry_points.train --help)"),
    (["--lr", "fast"], "argument --lr: expected a number or auto, got 'fast' (see python -m entry_points.train "
                       "--help)"),
])
def test_out_of_range_values_are_rejected(argv, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(argv)
    assert str(refused.value) == message


def test_option_names_match_the_dataclass():
    assert option_names() == [name.replace("_", "-") for name in OPTIONS]


def test_cli_help_shows_every_option_with_default():
    out = subprocess.run([sys.executable, "-m", "entry_points.train", "--help"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    for name in OPTIONS:
        assert f"--{name.replace('_', '-')}" in out
    assert "(default: 32)" in out and "(default: imagenet)" in out


def test_cli_unknown_option_exits_nonzero_naming_it():
    proc = subprocess.run([sys.executable, "-m", "entry_points.train", "--bogus-flag", "1"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "--bogus-flag" in proc.stderr


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_cli_without_data_says_how_to_get_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "entry_points.train", "--weights", "none", "--finetune", "full"],
                          cwd=tmp_path,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "--data-dir" in proc.stderr and "--download" in proc.stderr and "--demo" in proc.stderr
