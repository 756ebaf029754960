"""Options that used to be silent traps: --weights none with a frozen backbone, a backbone learning rate meant
for pretrained weights, the fixed crop range; --config FILE; --help texts that say the real defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dogbreed.config.parser import build_parser, parse_command, parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.core.transforms import Preprocessing, build_train_transform
from dogbreed.sagemaker.environment import config_defaults

REPO = Path(__file__).resolve().parents[2]


def test_weights_none_with_a_frozen_backbone_is_refused_naming_the_fix():
    with pytest.raises(ConfigError) as err:
        parse_config(["--data-dir", "d", "--weights", "none"])  # --finetune head is the default
    assert str(err.value) == (
        "--weights none with --finetune head would train a linear head on a random, frozen ResNet50 "
        "(chance-level accuracy): pass --finetune full to train from scratch, or keep --finetune head with "
        "pretrained --weights (imagenet or a PATH to a resnet50 state_dict)")
    assert parse_config(["--weights", "none", "--finetune", "full"]).optimisation.finetune == "full"
    assert parse_config(["--weights", "NONE", "--finetune", "full"]).optimisation.weights == "none"  # the keyword


def test_the_refusal_also_reaches_sagemaker_hyperparameters():
    with pytest.raises(ConfigError) as refused:
        parse_config(["--epochs", "2", "--weights", "none"], environment_defaults=config_defaults(
            {"SM_MODEL_DIR": "/opt/ml/model", "SM_CHANNEL_TRAINING": "/opt/ml/input/data/training"}))
    assert str(refused.value) == (
        "--weights none with --finetune head would train a linear head on a random, frozen ResNet50 "
        "(chance-level accuracy): pass --finetune full to train from scratch, or keep --finetune head with "
        "pretrained --weights (imagenet or a PATH to a resnet50 state_dict)")


def test_the_offline_weights_message_suggests_the_working_combination(monkeypatch):
    import torch

    from dogbreed.core.errors import WeightsError
    from dogbreed.core.network import download_imagenet_state_dict

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as refused:
        download_imagenet_state_dict()
    assert str(refused.value) == (
        "could not download the ImageNet ResNet50 weights from https://download.pytorch.org/models/"
        "resnet50-11ad3fa6.pth (no network). Without internet, pass --weights none --finetune full to train from "
        "scratch, or --weights PATH to a local resnet50 state_dict (or copy the file into the torch hub cache, "
        "$TORCH_HOME/hub/checkpoints)")


@pytest.mark.parametrize("argv, expected", [
    (["--weights", "none", "--finetune", "full"], 1.0),
    (["--weights", "imagenet", "--finetune", "full"], 0.1),
    (["--weights", "some/backbone.pth", "--finetune", "full"], 0.1),
    (["--weights", "none", "--finetune", "full", "--backbone-lr-scale", "0.3"], 0.3),
    (["--weights", "imagenet", "--finetune", "full", "--backbone-lr-scale", "1.0"], 1.0),
    (["--demo"], 1.0),
])
def test_backbone_lr_scale_follows_weights_unless_given(argv, expected):
    assert parse_config(argv).optimisation.backbone_lr_scale == expected


def test_library_configs_follow_weights_too():
    from dogbreed.config.options import TrainConfig

    assert TrainConfig(weights="none", finetune="full").optimisation.backbone_lr_scale == 1.0
    assert TrainConfig().optimisation.backbone_lr_scale == 0.1
    assert TrainConfig(weights="none", backbone_lr_scale=0.5).optimisation.backbone_lr_scale == 0.5
    assert TrainConfig(weights="none", finetune="full").to_dict()["backbone_lr_scale"] == 1.0  # recorded resolved


def test_help_states_both_backbone_lr_defaults_once():
    text = build_parser().format_help().replace("\n", " ")
    helped = " ".join(text.split())
    assert "default: 0.1 with pretrained --weights, 1.0 with --weights none" in helped
    assert helped.count("(default:") == helped.count("(default: ")  # never "(default: )"
    assert "(default: 0.1)" not in helped  # no second, wrong default appended


@pytest.mark.parametrize("command", ["train", "hpo", "profiled_train"])
def test_every_option_states_its_default_at_most_once(command):
    from dogbreed.cli import hpo, profiled_train

    extra = {"hpo": dict(extra_options=hpo.HPO_OPTIONS), "profiled_train": dict(
        help_overrides=profiled_train.HELP_OVERRIDES)}.get(command, {})
    parser = build_parser(**extra)
    for action in parser._actions:
        if action.help:
            # statements of a default ("default: 5"), not the word: --augment's policy is called "default"
            assert len(re.findall(r"default(?: here)?:", action.help)) <= 1, (action.option_strings, action.help)
            assert "(default: )" not in action.help and "(default: None)" not in action.help


def test_crop_scale_is_an_option_reaching_the_transform_and_the_artifact():
    config = parse_config(["--crop-scale", "0.35", "--weights", "none", "--finetune", "full"])
    assert config.data.crop_scale == 0.35 and config.to_dict()["crop_scale"] == 0.35  # -> model_config hyperparameters
    assert parse_config([]).data.crop_scale == 0.08  # torchvision's ImageNet recipe stays the default
    transform = build_train_transform(Preprocessing(image_size=32, crop_scale=(0.35, 1.0)))
    assert transform.scale == (0.35, 1.0)
    for bad, shown in (("0", "0.0"), ("1.5", "1.5"), ("-0.2", "-0.2")):
        with pytest.raises(ConfigError) as refused:
            parse_config(["--crop-scale", bad])
        assert str(refused.value) == ("--crop-scale must be in (0, 1] (the smallest share of the image a crop keeps), "
                                      f"got {shown}")


def test_crop_scale_changes_only_augmented_feature_caches(tmp_path):
    from dogbreed.training.head_training import cache_key

    image = tmp_path / "x.jpg"
    image.write_bytes(b"x")
    samples = [(image, 0)]
    keys = {scale: [cache_key(samples, backbone="b", preprocessing=Preprocessing(image_size=32, crop_scale=(scale, 1)),
                              views=views, augmented=views > 1, seed=0) for views in (1, 4)]
            for scale in (0.08, 0.5)}
    assert keys[0.08][0] == keys[0.5][0]  # the eval view ignores the training crop range
    assert keys[0.08][1] != keys[0.5][1]  # augmented views depend on it


def test_config_file_sets_options_and_the_command_line_wins(tmp_path):
    path = tmp_path / "best_hyperparameters.json"
    path.write_text(json.dumps({"objective": "val_acc", "config": {
        "lr": 0.0123, "batch-size": "16", "finetune": "full", "weights": "none", "skip_bad_images": "True",
        "data_dir": "somewhere", "epochs": 3}}))
    parsed = parse_command(["--config", str(path), "--epochs", "7"])
    config = parsed.config
    opt = config.optimisation
    assert (opt.lr, opt.batch_size, opt.finetune, config.data.skip_bad_images) == (0.0123, 16, "full", True)
    assert config.data.data_dir == Path("somewhere") and config.optimisation.epochs == 7
    assert config.optimisation.backbone_lr_scale == 1.0  # follows the file's --weights none
    assert {"lr", "batch_size", "epochs", "data_dir"} <= parsed.explicit


@pytest.mark.parametrize("content, message", [
    ({"lr": 0.1, "bogus_option": 1},
     "--config {path}: unknown option(s) bogus-option; valid: data-dir, train-dir, valid-dir, test-dir, valid-pct, "
     "test-pct, image-size, crop-scale, crop-min-side, augment, random-erasing, skip-bad-images, allow-duplicates, "
     "demo, download, dataset-url, model-dir, output-dir, top-k, overwrite, epochs, batch-size, lr, lr-find, "
     "weight-decay, backbone-lr-scale, label-smoothing, weights, finetune, freeze-epochs, warmup-epochs, "
     "accumulate-grad-batches, seed, monitor, early-stopping, max-time, ema-decay, mixup-alpha, cutmix-alpha, "
     "num-workers, accelerator, precision, compile, checkpoint-dir, resume-anyway, cached-views, cache-dir, tta, "
     "calibrate, abstention-score, accept-rate, ood-dir, debug-dir, debug-train-interval, debug-eval-interval, "
     "profiler, monitor-interval-ms, show-batch, profile-dir, logger, log-dir"),
    ({"epochs": 2.5}, "--config {path}: option epochs: 2.5 is not an integer"),
    ({"epochs": [1, 2]}, "--config {path}: option epochs expects a single value, got [1, 2]"),
    ({"batch_size": {"a": 1}}, "--config {path}: option batch-size expects a single value, got {{'a': 1}}"),
    ({"batch_size": True}, "--config {path}: option batch-size expects a value, not True"),  # JSON true is not 1
    ({"image_size": None}, "--config {path}: option image-size cannot be null"),
    ({"batch_size": "many"}, "--config {path}: option batch-size: invalid literal for int() with base 10: 'many'"),
    ({"skip_bad_images": "sometimes"},
     "--config {path}: option skip-bad-images: expected a boolean (true/false), got 'sometimes'"),
    ([1, 2], "--config {path}: expected a JSON object of training options"),
])
def test_config_file_mistakes_name_the_file_and_option(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError) as err:
        parse_config(["--config", str(path)])
    assert str(err.value) == message.format(path=path)
    with pytest.raises(ConfigError) as missing:
        parse_config(["--config", str(tmp_path / "missing.json")])
    assert str(missing.value) == f"--config {tmp_path / 'missing.json'}: no such file"


def test_profiled_train_help_shows_its_own_defaults():
    proc = subprocess.run([sys.executable, "-m", "entry_points.profiled_train", "--help"], cwd=REPO,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "COLUMNS": "200"})
    assert proc.returncode == 0
    lines = " ".join(proc.stdout.split())
    assert "--profiler {,simple,advanced,pytorch} Lightning profiler: simple, advanced or pytorch " \
           "(default here: pytorch)" in lines
    assert "(default here: <output-dir>/debug-trial" in lines
    assert "(empty: off)" not in lines


@pytest.mark.parametrize("given, stored, scale", [
    (" None ", "none", 1.0), ("NONE", "none", 1.0), ("ImageNet", "imagenet", 0.1), ("IMAGENET-V1", "imagenet-v1", 0.1),
    ("Backbone.PTH", "Backbone.PTH", 0.1),  # a path keeps its spelling
])
def test_a_weights_keyword_in_any_case_is_stored_as_the_keyword(given, stored, scale):
    """One spelling everywhere: the record, the fingerprint, the scratch/pretrained decisions and the loader all see
    the keyword, so " None " cannot pass the config checks as none and then be looked for as a file."""
    config = parse_config(["--weights", given, "--finetune", "full"])
    assert config.optimisation.weights == stored and config.optimisation.backbone_lr_scale == scale
    assert config.to_dict()["weights"] == stored


def test_a_feature_cache_key_follows_the_torch_release_not_its_build(tmp_path, monkeypatch):
    """Features computed by another torch release may differ: a new key. The same release built for CPU or CUDA
    (2.14.1+cpu, 2.14.1+cu128) is the same computation: the same key."""
    import torch

    from dogbreed.training.head_training import cache_key

    image = tmp_path / "x.jpg"
    image.write_bytes(b"x")

    def key(version: str) -> str:
        monkeypatch.setattr(torch, "__version__", version)
        return cache_key([(image, 0)], backbone="b", preprocessing=Preprocessing(image_size=32), views=1,
                         augmented=False, seed=0)

    assert key("2.14.1+cpu") == key("2.14.1+cu128") == key("2.14.1")
    assert key("2.14.1") != key("2.13.0")
