"""Where each option value comes from (explicit > SageMaker environment > --demo preset > default) and every
range check of ``validate_config``, each at its boundary. Expected values are written out here on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.environment import config_defaults


def sagemaker_env(ml: Path, **extra: str) -> dict[str, str]:
    """What the training toolkit sets in a job whose data arrives on the 'training' channel."""
    return {"SM_MODEL_DIR": str(ml / "model"), "SM_OUTPUT_DATA_DIR": str(ml / "output" / "data"),
            "SM_CHANNEL_TRAINING": str(ml / "input" / "data" / "training"), **extra}


def test_sagemaker_environment_fills_the_dirs_nobody_gave(tmp_path):
    config = parse_config([], environment_defaults=config_defaults(sagemaker_env(tmp_path)))
    assert config.outputs.model_dir == tmp_path / "model"
    assert config.outputs.output_dir == tmp_path / "output" / "data"
    assert config.data.data_dir == tmp_path / "input" / "data" / "training"
    assert config.cache.cache_dir == tmp_path / "feature_cache"


def test_explicit_options_beat_the_sagemaker_environment(tmp_path):
    argv = ["--model-dir", "/explicit/model", "--output_dir", "/explicit/reports", "--data-dir", "/explicit/data",
            "--cache-dir", "/explicit/cache"]
    config = parse_config(argv, environment_defaults=config_defaults(sagemaker_env(tmp_path)))
    assert config.outputs.model_dir == Path("/explicit/model")
    assert config.outputs.output_dir == Path("/explicit/reports")
    assert config.data.data_dir == Path("/explicit/data")
    assert config.cache.cache_dir == Path("/explicit/cache")


def test_split_channels_come_from_the_environment_unless_given(tmp_path):
    env = {"SM_MODEL_DIR": str(tmp_path / "model"), "SM_CHANNEL_TRAIN": "/ch/train", "SM_CHANNEL_VALID": "/ch/valid",
           "SM_CHANNEL_TEST": "/ch/test"}
    config = parse_config(["--valid-dir", "/mine/valid"], environment_defaults=config_defaults(env))
    data = config.data
    assert (data.train_dir, data.valid_dir, data.test_dir) == (Path("/ch/train"), Path("/mine/valid"), Path("/ch/test"))
    assert config.data.data_dir is None


def test_outside_sagemaker_the_environment_adds_nothing():
    assert config_defaults({"HOME": "/root", "PATH": "/usr/bin"}) == {}
    config = parse_config([], environment_defaults=config_defaults({}))
    assert (config.outputs.model_dir, config.outputs.output_dir, config.data.data_dir) == (Path("outputs/model"),
                                                                      Path("outputs/reports"), None)


@pytest.mark.parametrize("argv, environment, expected_epochs", [
    ([], {}, 5),                                  # the field default
    (["--demo"], {}, 4),                          # the --demo preset beats the default
    (["--demo"], {"epochs": 9}, 9),               # the environment beats the preset
    ([], {"epochs": 9}, 9),
    (["--demo", "--epochs", "2"], {"epochs": 9}, 2),  # explicit beats everything
    (["--epochs", "2"], {"epochs": 9}, 2),
])
def test_precedence_explicit_environment_demo_default(argv, environment, expected_epochs):
    assert parse_config(argv, environment_defaults=environment).optimisation.epochs == expected_epochs


def test_demo_preset_values_written_out():
    config = parse_config(["--demo"])
    opt, data = config.optimisation, config.data
    assert (opt.weights, data.image_size, opt.epochs, opt.batch_size, opt.finetune, opt.lr,
            opt.backbone_lr_scale, data.crop_scale) == ("none", 64, 4, 16, "full", 0.002, 1.0, 0.35)
    plain = parse_config([])
    opt, data = plain.optimisation, plain.data
    assert (opt.weights, data.image_size, opt.epochs, opt.batch_size, opt.finetune, opt.lr,
            opt.backbone_lr_scale, data.crop_scale) == ("imagenet", 224, 5, 32, "head", 0.001, 0.1, 0.08)


def test_demo_false_from_sagemaker_applies_no_preset():
    config = parse_config(["--demo", "False"])
    assert (config.data.demo, config.optimisation.weights, config.data.image_size) == (False, "imagenet", 224)


def test_explicit_option_equal_to_the_default_still_beats_the_preset():
    config = parse_config(["--demo", "--image-size", "224", "--weights", "imagenet"])
    assert (config.data.image_size, config.optimisation.weights, config.optimisation.epochs) == (224, "imagenet", 4)


# One case per range check: the last accepted value and the first rejected one, with the exact message.
RANGE_CHECKS = [
    ("--epochs", "1", "0", "--epochs must be at least 1, got 0"),
    ("--batch-size", "1", "0", "--batch-size must be at least 1, got 0"),
    ("--lr", "1e-12", "0", "--lr must be a positive finite number (or auto: the learning-rate finder), got 0.0"),
    ("--weight-decay", "0", "-1e-09", "--weight-decay must be a finite number >= 0, got -1e-09"),
    ("--image-size", "32", "31", "--image-size must be between 32 and 2048, got 31"),
    ("--image-size", "2048", "2049", "--image-size must be between 32 and 2048, got 2049"),
    ("--label-smoothing", "0", "-0.01", "--label-smoothing must be in [0, 1), got -0.01"),
    ("--label-smoothing", "0.999", "1", "--label-smoothing must be in [0, 1), got 1.0"),
    ("--top-k", "1", "0", "--top-k must be at least 1, got 0"),
    ("--cached-views", "0", "-1", "--cached-views must be >= 0 (0 disables the feature cache), got -1"),
    ("--weight-decay", "0", "-inf", "--weight-decay must be a finite number >= 0, got -inf"),  # a value too
    ("--backbone-lr-scale", "0", "-NaN", "--backbone-lr-scale must be a finite number >= 0, got nan"),
]


@pytest.mark.parametrize("flag, accepted, rejected, message", RANGE_CHECKS, ids=[
    f"{c[0]}={c[2]}" for c in RANGE_CHECKS])
def test_range_check_boundary(flag, accepted, rejected, message):
    config = parse_config([f"{flag}={accepted}"])
    assert config.to_dict()[flag[2:].replace("-", "_")] == float(accepted)
    for argv in ([f"{flag}={rejected}"], [flag, rejected]):  # "--weight-decay -1e-09" too: a value, not an option
        with pytest.raises(ConfigError) as caught:
            parse_config(argv)
        assert str(caught.value) == message


def test_range_checks_apply_to_environment_values_too():
    with pytest.raises(ConfigError) as refused:
        parse_config([], environment_defaults={"batch_size": 0})
    assert str(refused.value) == "--batch-size must be at least 1, got 0"
