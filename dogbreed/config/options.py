"""TrainConfig: every training option, its default and its help; the --demo presets; range checks.

Parsed from argv by :mod:`dogbreed.config.parser`. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.core.constants import (
    ABSTENTION_SCORES,
    DEFAULT_CROP_SCALE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_TOP_K,
    FINETUNE_MODES,
    LOGGERS,
    MAX_IMAGE_SIZE,
    TTA_MODES,
)
from dogbreed.core.errors import ConfigError

# The backbone learning rate (lr x scale, full fine-tune) follows --weights unless given: small steps keep
# pretrained features, a random backbone needs the full rate (0.1 gave 0.17 test accuracy where 1.0 gave 0.77).
PRETRAINED_BACKBONE_LR_SCALE = 0.1
SCRATCH_BACKBONE_LR_SCALE = 1.0
FOLLOW_WEIGHTS = -1.0  # the --backbone-lr-scale default: resolved from --weights when the config is made
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
MAX_SEED = 2**32 - 1  # what NumPy (and so seed_everything) accepts


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class TrainConfig:
    """Training options. Field names are the option names (``batch_size`` -> ``--batch-size``)."""

    data_dir: Path | None = _opt(None, "dataset root holding train/ valid/ (or val/, validation/) test/")
    train_dir: Path | None = _opt(None, "train split dir (instead of --data-dir)")
    valid_dir: Path | None = _opt(None, "validation split dir (instead of --data-dir)")
    test_dir: Path | None = _opt(None, "test split dir (instead of --data-dir; optional)")
    model_dir: Path = _opt(Path("outputs/model"), "where the model artifact (model.pth, model_config.json) goes")
    output_dir: Path = _opt(Path("outputs/reports"), "where metrics.json and the plots go")
    epochs: int = _opt(5, "number of training epochs")
    batch_size: int = _opt(32, "images per batch")
    lr: float = _opt(1e-3, "learning rate of the head (the backbone gets lr * backbone-lr-scale)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    backbone_lr_scale: float = _opt(FOLLOW_WEIGHTS,
                                    "backbone learning rate as a fraction of --lr (with --finetune full); default: "
                                    f"{PRETRAINED_BACKBONE_LR_SCALE} with pretrained --weights, "
                                    f"{SCRATCH_BACKBONE_LR_SCALE} with --weights none")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy loss")
    image_size: int = _opt(DEFAULT_IMAGE_SIZE, "crop size fed to the network; eval resizes to round(size*232/224)")
    crop_scale: float = _opt(DEFAULT_CROP_SCALE[0],
                             "training augmentation: each random crop keeps this to 100%% of the image area "
                             f"(RandomResizedCrop scale; {DEFAULT_CROP_SCALE[0]} is the ImageNet recipe; 0.25-0.5 is "
                             "gentler for small images or small datasets)")
    weights: str = _opt("imagenet", "backbone weights: imagenet (torchvision's IMAGENET1K_V2), imagenet-v1, none, or "
                                    "a path to a resnet50 state_dict")
    finetune: str = _opt("head", "head: train the new classifier only (frozen backbone); full: train everything",
                         choices=FINETUNE_MODES)
    num_workers: int = _opt(-1, "DataLoader workers; -1 picks one from the CPU count")
    seed: int = _opt(42, "random seed (Python, NumPy, torch, DataLoader workers)")
    skip_bad_images: bool = _opt(False, "train without unreadable images instead of failing")
    demo: bool = _opt(False, "generate a small synthetic dataset and train on it (no download needed)")
    download: bool = _opt(False, "download and unpack dogImages into --data-dir first (skipped if present)")
    dataset_url: str = _opt("", "URL of the dataset zip for --download (default: the public dogImages zip)")
    accelerator: str = _opt("auto", "Lightning accelerator: auto, cpu, gpu (cuda), mps", choices=ACCELERATORS)
    top_k: int = _opt(DEFAULT_TOP_K, "breeds shown per image in the demo predictions")
    # Checkpoints and resume (spot instances): /opt/ml/checkpoints in a SageMaker job.
    checkpoint_dir: Path | None = _opt(None, "save a checkpoint each epoch here and resume from the newest one")
    resume_anyway: bool = _opt(False, "resume from --checkpoint-dir even if its run had other options or data, "
                                      "or has finished")
    # Throughput.
    precision: str = _opt("auto", "Lightning precision: auto (bf16-mixed on GPUs with native bf16, 16-mixed on "
                                  "older GPUs, else 32-true), 32-true, 16-mixed, bf16-mixed", choices=PRECISIONS)
    compile: bool = _opt(False, "torch.compile the network")
    cached_views: int = _opt(1, "with --finetune head: backbone features computed once per image and view; "
                                "K augmented views per training image (1 = the eval view); 0 disables the cache")
    cache_dir: Path | None = _opt(None, "where the feature cache lives (default: <output-dir>/../feature_cache)")
    # Debugging and profiling.
    debug_dir: Path | None = _opt(None, "write an smdebug trial here (locally; in SageMaker the Debugger config wins)")
    debug_train_interval: int = _opt(100, "smdebug save interval (steps) in TRAIN mode")
    debug_eval_interval: int = _opt(10, "smdebug save interval (steps) in EVAL mode")
    profiler: str = _opt("", "Lightning profiler: simple, advanced or pytorch (empty: off)",
                         choices=("", "simple", "advanced", "pytorch"))
    monitor_interval_ms: int = _opt(500, "system utilisation sampling interval of profiled runs, in ms")
    # The accuracy recipe (full fine-tuning).
    ema_decay: float = _opt(0.0, "exponential moving average of the weights, e.g. 0.999 (the exported weights are "
                                 "the average; validation uses it too); 0 = off")
    mixup_alpha: float = _opt(0.0, "MixUp on training batches with this Beta(alpha, alpha), e.g. 0.2; 0 = off "
                                   "(needs images: --finetune full or --cached-views 0)")
    cutmix_alpha: float = _opt(0.0, "CutMix on training batches with this Beta(alpha, alpha), e.g. 1.0; 0 = off "
                                    "(with --mixup-alpha too: one of the two per batch)")
    # Calibration, abstention and test-time augmentation (stored in the artifact, applied when serving).
    tta: str = _opt("none", "test-time augmentation for evaluation and serving: none, flip (2 views) or tencrop "
                            "(10 views); logits are averaged", choices=TTA_MODES)
    calibrate: bool = _opt(True, "after training, fit a temperature on the validation split (stored in the artifact)")
    abstention_score: str = _opt("auto", "confidence score for abstention: auto (the one with the higher AUROC, "
                                         "validation vs non-dog images), max_probability, energy, or none (never "
                                         "abstain)", choices=("auto", *ABSTENTION_SCORES, "none"))
    accept_rate: float = _opt(0.95, "share of validation images to answer with confidence; the threshold is fitted "
                                    "for it")
    ood_dir: Path | None = _opt(None, "a folder of images that are not dogs (any layout) to choose and measure the "
                                      "abstention score with (default: generated noise and texture images)")
    # Experiment tracking.
    logger: str = _opt("csv", "Lightning logger: csv, tensorboard, mlflow or none", choices=LOGGERS)
    log_dir: Path | None = _opt(None, "where the logger writes (default: <output-dir>/logs; in a SageMaker job the "
                                      "TensorBoard output path when one is configured)")

    def __post_init__(self) -> None:
        if self.backbone_lr_scale == FOLLOW_WEIGHTS:  # not given: whatever suits --weights
            self.backbone_lr_scale = default_backbone_lr_scale(self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


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


def mixes_batches(config: TrainConfig) -> bool:
    """MixUp/CutMix mix decoded images: they cannot run on cached backbone features."""
    return config.mixup_alpha > 0 or config.cutmix_alpha > 0


def validate_config(config: TrainConfig) -> None:
    """Range checks with messages that name the option. Floats must be finite: ``--lr inf`` or ``1e309`` (which
    parses as inf) or ``nan`` would train a model of NaNs."""
    checks = [
        (config.epochs >= 1, "--epochs must be at least 1"),
        (config.batch_size >= 1, "--batch-size must be at least 1"),
        (_finite(config.lr) and config.lr > 0, f"--lr must be a positive finite number, got {config.lr}"),
        (_finite(config.weight_decay) and config.weight_decay >= 0,
         f"--weight-decay must be a finite number >= 0, got {config.weight_decay}"),
        (_finite(config.backbone_lr_scale) and config.backbone_lr_scale >= 0,
         f"--backbone-lr-scale must be a finite number >= 0, got {config.backbone_lr_scale}"),
        (32 <= config.image_size <= MAX_IMAGE_SIZE, f"--image-size must be between 32 and {MAX_IMAGE_SIZE}"),
        (_finite(config.label_smoothing) and 0 <= config.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        (config.top_k >= 1, "--top-k must be at least 1"),
        (config.cached_views >= 0, "--cached-views must be >= 0 (0 disables the feature cache)"),
        (0 <= config.seed <= MAX_SEED, f"--seed must be between 0 and {MAX_SEED}, got {config.seed}"),
        (config.num_workers >= -1, "--num-workers must be >= 0, or -1 to pick from the CPU count"),
        (config.debug_train_interval >= 1 and config.debug_eval_interval >= 1,
         "--debug-train-interval and --debug-eval-interval must be at least 1"),
        (config.monitor_interval_ms >= 1, "--monitor-interval-ms must be at least 1"),
        (not (config.finetune == "full" and config.batch_size < 2),
         "--batch-size 1 with --finetune full: BatchNorm needs at least 2 images per batch; use --batch-size 2 "
         "or more"),
        (0 < config.crop_scale <= 1, "--crop-scale must be in (0, 1]: the smallest share of the image a crop keeps"),
        (config.backbone_lr_scale >= 0, "--backbone-lr-scale must be >= 0"),
        (0 <= config.ema_decay < 1, "--ema-decay must be in [0, 1) (e.g. 0.999; 0 = off)"),
        (config.mixup_alpha >= 0, "--mixup-alpha must be >= 0 (0 = off)"),
        (config.cutmix_alpha >= 0, "--cutmix-alpha must be >= 0 (0 = off)"),
        (0 < config.accept_rate <= 1, "--accept-rate must be in (0, 1] (e.g. 0.95)"),
        (not (mixes_batches(config) and config.finetune == "head" and config.cached_views >= 1),
         "--mixup-alpha/--cutmix-alpha mix images, but --finetune head trains on cached features: add "
         "--cached-views 0 or use --finetune full"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if config.weights.strip().lower() == "none" and config.finetune == "head":
        raise ConfigError(
            "--weights none with --finetune head would train a linear head on a random, frozen ResNet50 "
            "(chance-level accuracy): pass --finetune full to train from scratch, or keep --finetune head with "
            "pretrained --weights (imagenet or a PATH to a resnet50 state_dict)"
        )


def default_backbone_lr_scale(weights: str) -> float:
    """The backbone learning-rate scale that suits ``--weights`` when ``--backbone-lr-scale`` is not given."""
    return SCRATCH_BACKBONE_LR_SCALE if weights.strip().lower() == "none" else PRETRAINED_BACKBONE_LR_SCALE
