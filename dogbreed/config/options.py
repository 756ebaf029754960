"""TrainConfig: every training option, grouped in sections (:mod:`dogbreed.config.sections`); the --demo presets;
range checks; the list of sections and their options.

The command line stays flat (``--batch-size 64``, as SageMaker sends hyperparameters) and so does construction:
``TrainConfig(epochs=2, batch_size=8)`` puts each option in its section, ``config.replace(lr=0.01)`` (or
``dataclasses.replace``) changes some, and ``config.to_dict()`` is the flat record written into
``model_config.json`` and ``metrics.json``. Reading goes through the sections: ``config.optimisation.lr``,
``config.data.image_size``. Only the run (:mod:`dogbreed.training.run`), the CLI and the adapters that rebuild
runs (tuning, the diagnostics run policy) hold a whole TrainConfig; everything they call gets its section.

Standard library only: parsed from argv by :mod:`dogbreed.config.parser`.
"""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dogbreed.config.sections import (
    AUTO_LR,
    CacheOptions,
    CalibrationOptions,
    CheckpointOptions,
    DataOptions,
    DiagnosticsOptions,
    OptimisationOptions,
    OutputOptions,
    RecipeOptions,
    RuntimeOptions,
    StoppingOptions,
    TrackingOptions,
    max_time_seconds,
)
from dogbreed.core.constants import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from dogbreed.core.errors import ConfigError

MAX_SEED = 2**32 - 1  # what NumPy (and so seed_everything) accepts
# Upper bounds of the counts: each names why, so a typo (an extra zero or three) is one line, not a run that forks
# hundreds of processes or asks for terabytes. Far above any useful value.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 4096  # 4096 images at 224 px are 2.5 GB of input before the network's activations
MAX_NUM_WORKERS = 256  # each DataLoader worker is a process with its own copy of the dataset's state
MAX_TOP_K = 1000
MAX_CACHED_VIEWS = 100  # each view is one backbone pass over every training image, kept in memory and on disk
MAX_ACCUMULATE = 1024
MAX_DEBUG_INTERVAL = 1_000_000
MAX_MONITOR_INTERVAL_MS = 3_600_000  # one hour


def _upper_bound_checks(config: "TrainConfig") -> list[tuple[bool, str]]:
    """The counts' upper bounds, each message saying why it exists."""
    opt, diag = config.optimisation, config.diagnostics
    return [
        (opt.epochs <= MAX_EPOCHS, f"--epochs must be at most {MAX_EPOCHS} (a typo guard: no schedule here needs "
                                   f"more), got {opt.epochs}"),
        (opt.batch_size <= MAX_BATCH_SIZE, f"--batch-size must be at most {MAX_BATCH_SIZE} (one batch of "
                                           f"{MAX_BATCH_SIZE} 224-px images is 2.5 GB before the network runs), "
                                           f"got {opt.batch_size}"),
        (config.runtime.num_workers <= MAX_NUM_WORKERS,
         f"--num-workers must be at most {MAX_NUM_WORKERS} (each worker is a process with its own memory; more "
         f"than twice the CPUs is capped anyway), got {config.runtime.num_workers}"),
        (config.outputs.top_k <= MAX_TOP_K, f"--top-k must be at most {MAX_TOP_K} (breeds listed per image), got "
                                            f"{config.outputs.top_k}"),
        (config.cache.cached_views <= MAX_CACHED_VIEWS,
         f"--cached-views must be at most {MAX_CACHED_VIEWS} (each view is one backbone pass over every training "
         f"image, kept in memory and on disk), got {config.cache.cached_views}"),
        (opt.accumulate_grad_batches <= MAX_ACCUMULATE,
         f"--accumulate-grad-batches must be at most {MAX_ACCUMULATE} (a typo guard), got "
         f"{opt.accumulate_grad_batches}"),
        (config.stopping.early_stopping <= MAX_EPOCHS,
         f"--early-stopping must be at most {MAX_EPOCHS} epochs (as --epochs), got {config.stopping.early_stopping}"),
        (max(diag.debug_train_interval, diag.debug_eval_interval) <= MAX_DEBUG_INTERVAL,
         f"--debug-train-interval and --debug-eval-interval must be at most {MAX_DEBUG_INTERVAL} steps (a typo "
         f"guard: nothing would be saved), got --debug-train-interval {diag.debug_train_interval} and "
         f"--debug-eval-interval {diag.debug_eval_interval}"),
        (diag.monitor_interval_ms <= MAX_MONITOR_INTERVAL_MS,
         f"--monitor-interval-ms must be at most {MAX_MONITOR_INTERVAL_MS} (one hour: nothing would be sampled), "
         f"got {diag.monitor_interval_ms}"),
    ]


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Training options by section. Each field is a section; each section's fields are the options."""

    data: DataOptions = field(default_factory=DataOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    optimisation: OptimisationOptions = field(default_factory=OptimisationOptions)
    stopping: StoppingOptions = field(default_factory=StoppingOptions)
    recipe: RecipeOptions = field(default_factory=RecipeOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    checkpoints: CheckpointOptions = field(default_factory=CheckpointOptions)
    cache: CacheOptions = field(default_factory=CacheOptions)
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    diagnostics: DiagnosticsOptions = field(default_factory=DiagnosticsOptions)
    tracking: TrackingOptions = field(default_factory=TrackingOptions)

    def __init__(self, **options: Any) -> None:
        """Options by their flat names (``epochs=2``); a whole section may be given too (``data=DataOptions(...)``),
        and flat options then change it. An unset ``backbone_lr_scale`` follows ``weights``."""
        for section in fields(TrainConfig):
            given = options.pop(section.name, None)
            own = {f.name: options.pop(f.name) for f in _section_fields(section) if f.name in options}
            if given is None:
                value = _section_type(section)(**own)
            elif isinstance(given, _section_type(section)):
                value = replace(given, **own) if own else given
            else:
                raise TypeError(f"TrainConfig({section.name}=...) takes a {_section_type(section).__name__}, "
                                f"got {type(given).__name__}")
            object.__setattr__(self, section.name, value)
        if options:
            raise TypeError(f"unknown training option(s): {', '.join(sorted(options))}")

    def replace(self, **options: Any) -> TrainConfig:
        """A copy with some options changed, by their flat names: ``config.replace(profiler="simple")``."""
        return TrainConfig(**{s.name: getattr(self, s.name) for s in fields(TrainConfig)}, **options)

    def to_dict(self) -> dict[str, Any]:
        """The flat record ``{"option": value}`` (paths as strings), section by section."""
        values = {f.name: getattr(getattr(self, s.name), f.name) for s in fields(TrainConfig) for f in
                  _section_fields(s)}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def _section_type(section: Field) -> type[Any]:
    return section.default_factory  # type: ignore[return-value]  # each section field's factory is its class


def _section_fields(section: Field) -> tuple[Field, ...]:
    return fields(_section_type(section))


def option_fields() -> list[Field]:
    """Every option's dataclass field (name, type, default, help in ``metadata``), section by section."""
    return [option for section in fields(TrainConfig) for option in _section_fields(section)]


def option_sections() -> dict[str, list[str]]:
    """Section name -> its options as spelled on the command line, e.g. ``{"data": ["data-dir", ...], ...}``:
    what ``--help`` groups and an options reference lists."""
    return {section.name: [option.name.replace("_", "-") for option in _section_fields(section)]
            for section in fields(TrainConfig)}


def section_descriptions() -> dict[str, str]:
    """Section name -> its one-line description (the section class's docstring)."""
    return {section.name: " ".join((_section_type(section).__doc__ or "").split()) for section in fields(TrainConfig)}


# Options that --demo changes unless they are given explicitly.
DEMO_OVERRIDES: dict[str, Any] = {
    "weights": "none",
    "image_size": 64,
    # 4 epochs with gentler crops (0.983 test accuracy, seed 42) instead of 6 with ImageNet crops (0.95):
    # two thirds of the training time. With crop 0.08, 4 epochs gave 0.85.
    "epochs": 4,
    "crop_scale": 0.35,
    "batch_size": 16,
    "finetune": "full",
    "lr": 2e-3,
    "backbone_lr_scale": 1.0,
}


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _loop_checks(config: TrainConfig) -> list[tuple[bool, str]]:
    """The training loop's options: stopping, schedule, augmentation, gradual fine-tuning."""
    data, opt, stopping = config.data, config.optimisation, config.stopping
    return [
        (stopping.early_stopping >= 0,
         f"--early-stopping must be >= 0 (epochs of patience; 0 = off), got {stopping.early_stopping}"),
        (not stopping.max_time or (max_time_seconds(stopping.max_time) or 0) > 0,
         f"--max-time must be HH:MM:SS (e.g. 00:30:00) and more than zero, got {stopping.max_time!r}"),
        (0 <= opt.warmup_epochs < opt.epochs,
         f"--warmup-epochs must be >= 0 and less than --epochs, got --warmup-epochs {opt.warmup_epochs} with "
         f"--epochs {opt.epochs}"),
        (opt.accumulate_grad_batches >= 1,
         f"--accumulate-grad-batches must be at least 1, got {opt.accumulate_grad_batches}"),
        (_finite(data.crop_min_side) and 0 <= data.crop_min_side <= 1,
         f"--crop-min-side must be in [0, 1] (a share of --image-size; 0 = off), got {data.crop_min_side}"),
        (_finite(data.random_erasing) and 0 <= data.random_erasing <= 1,
         f"--random-erasing must be in [0, 1], got {data.random_erasing}"),
        (not (data.random_erasing > 0 and data.augment == "none"),
         "--random-erasing augments training images, but --augment none turns augmentation off: choose one"),
        (not (opt.finetune == "gradual" and not 1 <= opt.freeze_epochs < opt.epochs),
         f"--finetune gradual needs 1 <= --freeze-epochs < --epochs (head first, then everything), got "
         f"--freeze-epochs {opt.freeze_epochs} with --epochs {opt.epochs}"),
        (opt.freeze_epochs >= 0, f"--freeze-epochs must be >= 0, got {opt.freeze_epochs}"),
    ]


def validate_config(config: TrainConfig) -> None:
    """Range checks with messages that name the option. Floats must be finite: ``--lr inf`` or ``1e309`` (which
    parses as inf) or ``nan`` would train a model of NaNs."""
    data, opt, recipe, diag = config.data, config.optimisation, config.recipe, config.diagnostics
    checks = [
        (opt.epochs >= 1, f"--epochs must be at least 1, got {opt.epochs}"),
        (opt.batch_size >= 1, f"--batch-size must be at least 1, got {opt.batch_size}"),
        (_finite(opt.lr) and (opt.lr > 0 or opt.lr == AUTO_LR),
         f"--lr must be a positive finite number (or auto: the learning-rate finder), got {opt.lr}"),
        (_finite(opt.weight_decay) and opt.weight_decay >= 0,
         f"--weight-decay must be a finite number >= 0, got {opt.weight_decay}"),
        (opt.backbone_lr_scale is not None and _finite(opt.backbone_lr_scale) and opt.backbone_lr_scale >= 0,
         f"--backbone-lr-scale must be a finite number >= 0, got {opt.backbone_lr_scale}"),
        (MIN_IMAGE_SIZE <= data.image_size <= MAX_IMAGE_SIZE,
         f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}, got {data.image_size}"),
        (_finite(opt.label_smoothing) and 0 <= opt.label_smoothing < 1,
         f"--label-smoothing must be in [0, 1), got {opt.label_smoothing}"),
        (config.outputs.top_k >= 1, f"--top-k must be at least 1, got {config.outputs.top_k}"),
        (config.cache.cached_views >= 0,
         f"--cached-views must be >= 0 (0 disables the feature cache), got {config.cache.cached_views}"),
        (0 <= opt.seed <= MAX_SEED, f"--seed must be between 0 and {MAX_SEED}, got {opt.seed}"),
        (config.runtime.num_workers >= -1,
         f"--num-workers must be >= 0, or -1 to pick from the CPU count, got {config.runtime.num_workers}"),
        (diag.debug_train_interval >= 1 and diag.debug_eval_interval >= 1,
         f"--debug-train-interval and --debug-eval-interval must be at least 1, got --debug-train-interval "
         f"{diag.debug_train_interval} and --debug-eval-interval {diag.debug_eval_interval}"),
        (diag.monitor_interval_ms >= 1, f"--monitor-interval-ms must be at least 1, got {diag.monitor_interval_ms}"),
        (not (opt.finetune in ("full", "gradual") and opt.batch_size < 2),
         f"--batch-size 1 with --finetune {opt.finetune}: BatchNorm needs at least 2 images per batch; use "
         "--batch-size 2 or more"),
        (0 < data.crop_scale <= 1,
         f"--crop-scale must be in (0, 1] (the smallest share of the image a crop keeps), got {data.crop_scale}"),
        (data.valid_pct is None or (_finite(data.valid_pct) and 0 < data.valid_pct < 1),
         f"--valid-pct must be in (0, 1) (e.g. 0.2), got {data.valid_pct}"),
        (data.test_pct is None or (_finite(data.test_pct) and 0 <= data.test_pct < 1),
         f"--test-pct must be in [0, 1) (e.g. 0.1; 0 = test on the validation split), got {data.test_pct}"),
        ((data.valid_pct or 0) + (data.test_pct or 0) < 1,
         f"--valid-pct and --test-pct together must stay below 1: something must be left to train on, got "
         f"{data.valid_pct} + {data.test_pct}"),
        (0 <= recipe.ema_decay < 1, f"--ema-decay must be in [0, 1) (e.g. 0.999; 0 = off), got {recipe.ema_decay}"),
        (recipe.mixup_alpha >= 0, f"--mixup-alpha must be >= 0 (0 = off), got {recipe.mixup_alpha}"),
        (recipe.cutmix_alpha >= 0, f"--cutmix-alpha must be >= 0 (0 = off), got {recipe.cutmix_alpha}"),
        (0 < config.calibration.accept_rate <= 1,
         f"--accept-rate must be in (0, 1] (e.g. 0.95), got {config.calibration.accept_rate}"),
        (not (recipe.mixes_batches and opt.finetune == "head" and config.cache.cached_views >= 1),
         "--mixup-alpha/--cutmix-alpha mix images, but --finetune head trains on cached features: add "
         "--cached-views 0 or use --finetune full"),
        *_loop_checks(config),
        *_upper_bound_checks(config),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    _check_profile_dir(diag.profile_dir, config.outputs.model_dir)
    _check_output_dir(config.outputs.output_dir, config.outputs.model_dir)
    if opt.weights.strip().lower() == "none" and opt.finetune == "head":
        raise ConfigError(
            "--weights none with --finetune head would train a linear head on a random, frozen ResNet50 "
            "(chance-level accuracy): pass --finetune full to train from scratch, or keep --finetune head with "
            "pretrained --weights (imagenet or a PATH to a resnet50 state_dict)"
        )


def _inside(path: Path, directory: Path) -> bool:
    path, directory = Path(path).absolute(), Path(directory).absolute()
    return path == directory or directory in path.parents


def _check_output_dir(output_dir: Path, model_dir: Path) -> None:
    """Reports (plots, logs, metrics) must not mix into the artifact that gets packaged and served."""
    if _inside(output_dir, model_dir):
        raise ConfigError(f"--output-dir {output_dir} is --model-dir {model_dir} or inside it: the reports would "
                          "mix into the model artifact that gets packaged and served; pass a dir outside it "
                          "(default: outputs/reports)")


def _check_profile_dir(profile_dir: Path | None, model_dir: Path) -> None:
    """The profile (traces of tens of MB) must not end up inside the model artifact that gets packaged and served."""
    if profile_dir is None:
        return
    if _inside(profile_dir, model_dir):
        raise ConfigError(f"--profile-dir {profile_dir} is --model-dir {model_dir} or inside it: the model artifact "
                          "would carry the profile; pass a dir outside it (default: <output-dir>/profile)")
