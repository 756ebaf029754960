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
# Ranges that depend on another option: (options, last accepted, first refused) for the first option named.
DEPENDENT: list[tuple[str, dict, float, float]] = [
    ("batch_size", {"finetune": "full"}, 2, 1),
    ("freeze_epochs", {"finetune": "gradual"}, 1, 0),
    ("freeze_epochs", {"finetune": "gradual"}, 4, 5),
    ("test_pct", {"valid_pct": 0.5}, 0.49, 0.5),  # together below 1
    ("random_erasing", {"augment": "none"}, 0.0, UP),  # erasing augments: not with --augment none
    ("batch_size", {"finetune": "gradual"}, 2, 1),
    ("cached_views", {"finetune": "head", "mixup_alpha": 0.2}, 0, 1),  # mixing needs images, not features
    ("finetune", {"weights": "none"}, "full", "head"),  # a linear head on a random frozen backbone
]
# How each dependent message ends: the values given, or what to do.
DEPENDENT_ENDS = {"batch_size": "use --batch-size 2 or more", "freeze_epochs": "with --epochs 5",
                  "test_pct": "something must be left to train on", "random_erasing": "choose one",
                  "cached_views": "or use --finetune full", "finetune": "(imagenet or a PATH to a resnet50 state_dict)"}
# Where a refusal's message starts: its own check ("--valid-pct must ..."), not another that also refuses the value.
SHARED = "--debug-train-interval and --debug-eval-interval must"
OWN_MESSAGE = {"debug_train_interval": SHARED, "debug_eval_interval": SHARED}
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


@pytest.mark.parametrize("name", NUMERIC)
def test_range_check_at_its_boundary(name):
    if name not in BOUNDS:
        pytest.fail(f"--{name.replace('_', '-')} has no range boundaries in BOUNDS")
    pairs, others = BOUNDS[name]
    for accepted, refused in pairs:
        assert _refusal(name, accepted, others) is None, f"--{name} {accepted} refused"
        error = _refusal(name, refused, others)
        assert error is not None, f"--{name} {refused} accepted"
        assert str(error).startswith(OWN_MESSAGE.get(name, f"--{name.replace('_', '-')} must")), str(error)


@pytest.mark.parametrize("name,others,accepted,refused", DEPENDENT)
def test_dependent_range_at_its_boundary(name, others, accepted, refused):
    assert _refusal(name, accepted, others) is None
    error = _refusal(name, refused, others)
    assert error is not None and str(error).startswith("--") and str(error).endswith(DEPENDENT_ENDS[name])
    assert f"--{name.replace('_', '-')}" in str(error)


@pytest.mark.parametrize("accepted,refused", MAX_TIME)
def test_max_time_at_its_boundary(accepted, refused):
    assert _refusal("max_time", accepted, {}) is None
    error = _refusal("max_time", refused, {})
    assert error is not None and str(error).startswith("--max-time must be HH:MM:SS")


def test_profile_dir_inside_the_model_dir_is_refused(tmp_path):
    model = tmp_path / "model"
    for inside in (model, model / "profile"):
        error = _refusal("profile_dir", inside, {"model_dir": model})
        assert error is not None and str(error).startswith(f"--profile-dir {inside} is inside --model-dir {model}")
        assert str(error).endswith("(default: <output-dir>/profile)")
    assert _refusal("profile_dir", tmp_path / "profile", {"model_dir": model}) is None  # beside it
