"""Every numeric option's range check at its boundary (issue 24): the last value accepted, the first refused, and
a message that names the option. The options come from the definitions (every int or float field); a new numeric
option without its boundaries here fails by name."""

from __future__ import annotations

import math

import pytest

from dogbreed.config.options import TrainConfig, option_fields, validate_config
from dogbreed.core.constants import MAX_IMAGE_SIZE
from dogbreed.core.errors import ConfigError

MAX_SEED = 4_294_967_295  # 2**32 - 1: what NumPy (and so seed_everything) accepts; written out, not imported
UP, DOWN = math.nextafter(0.0, 1.0), math.nextafter(0.0, -1.0)  # the floats next to 0
BELOW_ONE, ABOVE_ONE = math.nextafter(1.0, 0.0), math.nextafter(1.0, 2.0)
# option -> [(last accepted, first refused), ...] at each end of its range; then options the check needs.
FULL = {"finetune": "full"}  # weights imagenet (the default): mixing batches and BatchNorm-free checks allowed
BOUNDS: dict[str, tuple[list[tuple[float, float]], dict]] = {
    "valid_pct": ([(UP, 0.0), (BELOW_ONE, 1.0)], {}),
    "test_pct": ([(0.0, DOWN), (BELOW_ONE, 1.0)], {}),
    "image_size": ([(32, 31), (MAX_IMAGE_SIZE, MAX_IMAGE_SIZE + 1)], {}),
    "crop_scale": ([(UP, 0.0), (1.0, ABOVE_ONE)], {}),
    "crop_min_side": ([(0.0, DOWN), (1.0, ABOVE_ONE)], {}),
    "random_erasing": ([(0.0, DOWN), (1.0, ABOVE_ONE)], {}),
    "top_k": ([(1, 0), (1000, 1001)], {}),
    "epochs": ([(1, 0), (10_000, 10_001)], {}),
    "batch_size": ([(1, 0), (4096, 4097)], {}),  # head: batch 1 is allowed (2 with full: the next test)
    "lr": ([(UP, 0.0), (1e308, math.inf)], {}),
    "weight_decay": ([(0.0, DOWN), (1e308, math.inf)], {}),
    "backbone_lr_scale": ([(0.0, DOWN), (1e308, math.inf)], {}),
    "label_smoothing": ([(0.0, DOWN), (BELOW_ONE, 1.0)], {}),
    "freeze_epochs": ([(0, -1)], {}),
    "warmup_epochs": ([(0, -1), (4, 5)], {}),  # less than --epochs (5)
    "accumulate_grad_batches": ([(1, 0), (1024, 1025)], {}),
    "seed": ([(0, -1), (MAX_SEED, MAX_SEED + 1)], {}),
    "early_stopping": ([(0, -1), (10_000, 10_001)], {}),
    "ema_decay": ([(0.0, DOWN), (BELOW_ONE, 1.0)], {}),
    "mixup_alpha": ([(0.0, DOWN)], FULL),
    "cutmix_alpha": ([(0.0, DOWN)], FULL),
    "num_workers": ([(-1, -2), (256, 257)], {}),
    "cached_views": ([(0, -1), (100, 101)], {}),
    "accept_rate": ([(UP, 0.0), (1.0, ABOVE_ONE)], {}),
    "debug_train_interval": ([(1, 0), (1_000_000, 1_000_001)], {}),
    "debug_eval_interval": ([(1, 0), (1_000_000, 1_000_001)], {}),
    "monitor_interval_ms": ([(1, 0), (3_600_000, 3_600_001)], {}),
}
# The whole refusal for each first-refused value in BOUNDS, in the same order: its own check ("--valid-pct must ..."),
# not another that also refuses the value.
REFUSALS: dict[str, list[str]] = {
    "valid_pct": ["--valid-pct must be in (0, 1) (e.g. 0.2), got 0.0",
                  "--valid-pct must be in (0, 1) (e.g. 0.2), got 1.0"],
    "test_pct": ["--test-pct must be in [0, 1) (e.g. 0.1; 0 = test on the validation split), got -5e-324",
                 "--test-pct must be in [0, 1) (e.g. 0.1; 0 = test on the validation split), got 1.0"],
    "image_size": ["--image-size must be between 32 and 2048, got 31",
                   "--image-size must be between 32 and 2048, got 2049"],
    "crop_scale": ["--crop-scale must be in (0, 1] (the smallest share of the image a crop keeps), got 0.0",
                   "--crop-scale must be in (0, 1] (the smallest share of the image a crop keeps), got"
                   " 1.0000000000000002"],
    "crop_min_side": ["--crop-min-side must be in [0, 1] (a share of --image-size; 0 = off), got -5e-324",
                      "--crop-min-side must be in [0, 1] (a share of --image-size; 0 = off), got 1.0000000000000002"],
    "random_erasing": ["--random-erasing must be in [0, 1], got -5e-324",
                       "--random-erasing must be in [0, 1], got 1.0000000000000002"],
    "top_k": ["--top-k must be at least 1, got 0", "--top-k must be at most 1000 (breeds listed per image), got 1001"],
    "epochs": ["--epochs must be at least 1, got 0",
               "--epochs must be at most 10000 (a typo guard: no schedule here needs more), got 10001"],
    "batch_size": ["--batch-size must be at least 1, got 0",
                   "--batch-size must be at most 4096 (one batch of 4096 224-px images is 2.5 GB before the network"
                   " runs), got 4097"],
    "lr": ["--lr must be a positive finite number (or auto: the learning-rate finder), got 0.0",
           "--lr must be a positive finite number (or auto: the learning-rate finder), got inf"],
    "weight_decay": ["--weight-decay must be a finite number >= 0, got -5e-324",
                     "--weight-decay must be a finite number >= 0, got inf"],
    "backbone_lr_scale": ["--backbone-lr-scale must be a finite number >= 0, got -5e-324",
                          "--backbone-lr-scale must be a finite number >= 0, got inf"],
    "label_smoothing": ["--label-smoothing must be in [0, 1), got -5e-324",
                        "--label-smoothing must be in [0, 1), got 1.0"],
    "freeze_epochs": ["--freeze-epochs must be >= 0, got -1"],
    "warmup_epochs": ["--warmup-epochs must be >= 0 and less than --epochs, got --warmup-epochs -1 with --epochs 5",
                      "--warmup-epochs must be >= 0 and less than --epochs, got --warmup-epochs 5 with --epochs 5"],
    "accumulate_grad_batches": ["--accumulate-grad-batches must be at least 1, got 0",
                                "--accumulate-grad-batches must be at most 1024 (a typo guard), got 1025"],
    "seed": ["--seed must be between 0 and 4294967295, got -1",
             "--seed must be between 0 and 4294967295, got 4294967296"],
    "early_stopping": ["--early-stopping must be >= 0 (epochs of patience; 0 = off), got -1",
                       "--early-stopping must be at most 10000 epochs (as --epochs), got 10001"],
    "ema_decay": ["--ema-decay must be in [0, 1) (e.g. 0.999; 0 = off), got -5e-324",
                  "--ema-decay must be in [0, 1) (e.g. 0.999; 0 = off), got 1.0"],
    "mixup_alpha": ["--mixup-alpha must be >= 0 (0 = off), got -5e-324"],
    "cutmix_alpha": ["--cutmix-alpha must be >= 0 (0 = off), got -5e-324"],
    "num_workers": ["--num-workers must be >= 0, or -1 to pick from the CPU count, got -2",
                    "--num-workers must be at most 256 (each worker is a process with its own memory; more than twice"
                    " the CPUs is capped anyway), got 257"],
    "cached_views": ["--cached-views must be >= 0 (0 disables the feature cache), got -1",
                     "--cached-views must be at most 100 (each view is one backbone pass over every training image,"
                     " kept in memory and on disk), got 101"],
    "accept_rate": ["--accept-rate must be in (0, 1] (e.g. 0.95), got 0.0",
                    "--accept-rate must be in (0, 1] (e.g. 0.95), got 1.0000000000000002"],
    "debug_train_interval": ["--debug-train-interval and --debug-eval-interval must be at least 1, got"
                             " --debug-train-interval 0 and --debug-eval-interval 10",
                             "--debug-train-interval and --debug-eval-interval must be at most 1000000 steps (a typo"
                             " guard: nothing would be saved), got --debug-train-interval 1000001 and"
                             " --debug-eval-interval 10"],
    "debug_eval_interval": ["--debug-train-interval and --debug-eval-interval must be at least 1, got"
                            " --debug-train-interval 100 and --debug-eval-interval 0",
                            "--debug-train-interval and --debug-eval-interval must be at most 1000000 steps (a typo"
                            " guard: nothing would be saved), got --debug-train-interval 100 and --debug-eval-interval"
                            " 1000001"],
    "monitor_interval_ms": ["--monitor-interval-ms must be at least 1, got 0",
                            "--monitor-interval-ms must be at most 3600000 (one hour: nothing would be sampled), got"
                            " 3600001"],
}
# Ranges that depend on another option: (options, last accepted, first refused) for the first option named, and the
# whole refusal.
DEPENDENT: list[tuple[str, dict, float, float, str]] = [
    ("batch_size", {"finetune": "full"}, 2, 1,
     "--batch-size 1 with --finetune full: BatchNorm needs at least 2 images per batch; use --batch-size 2 or more"),
    ("freeze_epochs", {"finetune": "gradual"}, 1, 0,
     "--finetune gradual needs 1 <= --freeze-epochs < --epochs (head first, then everything), got --freeze-epochs 0"
     " with --epochs 5"),
    ("freeze_epochs", {"finetune": "gradual"}, 4, 5,
     "--finetune gradual needs 1 <= --freeze-epochs < --epochs (head first, then everything), got --freeze-epochs 5"
     " with --epochs 5"),
    ("test_pct", {"valid_pct": 0.5}, 0.49, 0.5,  # together below 1
     "--valid-pct and --test-pct together must stay below 1: something must be left to train on, got 0.5 + 0.5"),
    ("random_erasing", {"augment": "none"}, 0.0, UP,  # erasing augments: not with --augment none
     "--random-erasing augments training images, but --augment none turns augmentation off: choose one"),
    ("batch_size", {"finetune": "gradual"}, 2, 1,
     "--batch-size 1 with --finetune gradual: BatchNorm needs at least 2 images per batch; use --batch-size 2 or"
     " more"),
    ("cached_views", {"finetune": "head", "mixup_alpha": 0.2}, 0, 1,  # mixing needs images, not features
     "--mixup-alpha/--cutmix-alpha mix images, but --finetune head trains on cached features: add --cached-views 0"
     " or use --finetune full"),
    ("finetune", {"weights": "none"}, "full", "head",  # a linear head on a random frozen backbone
     "--weights none with --finetune head would train a linear head on a random, frozen ResNet50 (chance-level"
     " accuracy): pass --finetune full to train from scratch, or keep --finetune head with pretrained --weights"
     " (imagenet or a PATH to a resnet50 state_dict)"),
]
# A string option with a range: the time budget is more than zero seconds, and HH:MM:SS.
MAX_TIME = [("00:00:01", "00:00:00"), ("00:00:01", "soon"), ("01:00:00:00", "00:00:60")]
NUMERIC = [f.name for f in option_fields() if any(t in str(f.type) for t in ("int", "float"))]


def _refusal(name: str, value: float, others: dict) -> ConfigError | None:
    try:
        validate_config(TrainConfig(**others, **{name: value}))
    except ConfigError as error:
        return error
    return None


def test_every_numeric_option_has_its_boundaries():
    missing = sorted(set(NUMERIC) - set(BOUNDS))
    assert not missing, f"numeric options without range boundaries in BOUNDS: {', '.join(missing)}"
    unworded = sorted(set(NUMERIC) - set(REFUSALS))
    assert not unworded, f"numeric options without their refusals in REFUSALS: {', '.join(unworded)}"


@pytest.mark.parametrize("name", NUMERIC)
def test_range_check_at_its_boundary(name):
    if name not in BOUNDS:
        pytest.fail(f"--{name.replace('_', '-')} has no range boundaries in BOUNDS")
    pairs, others = BOUNDS[name]
    messages = REFUSALS.get(name, [])
    assert len(messages) == len(pairs), f"--{name}: one refusal in REFUSALS for each boundary in BOUNDS"
    for (accepted, refused), message in zip(pairs, messages):
        assert _refusal(name, accepted, others) is None, f"--{name} {accepted} refused"
        error = _refusal(name, refused, others)
        assert error is not None, f"--{name} {refused} accepted"
        assert str(error) == message


@pytest.mark.parametrize("name,others,accepted,refused,message", DEPENDENT)
def test_dependent_range_at_its_boundary(name, others, accepted, refused, message):
    assert _refusal(name, accepted, others) is None
    error = _refusal(name, refused, others)
    assert error is not None and str(error) == message


@pytest.mark.parametrize("accepted,refused", MAX_TIME)
def test_max_time_at_its_boundary(accepted, refused):
    assert _refusal("max_time", accepted, {}) is None
    error = _refusal("max_time", refused, {})
    assert error is not None
    assert str(error) == f"--max-time must be HH:MM:SS (e.g. 00:30:00) and more than zero, got '{refused}'"


def test_profile_dir_inside_the_model_dir_is_refused(tmp_path):
    model = tmp_path / "model"
    for inside in (model, model / "profile"):
        error = _refusal("profile_dir", inside, {"model_dir": model})
        assert error is not None and str(error) == (
            f"--profile-dir {inside} is --model-dir {model} or inside it: the model artifact would carry the profile;"
            " pass a dir outside it (default: <output-dir>/profile)")
    assert _refusal("profile_dir", tmp_path / "profile", {"model_dir": model}) is None  # beside it
