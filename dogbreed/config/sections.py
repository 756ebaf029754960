"""The training options in sections: one frozen dataclass per concern, each field one option (its name is the
flag, ``batch_size`` -> ``--batch-size``; its default and help are declared with it).

A collaborator of a run takes the section it needs (``build_logger(tracking, output_dir)``), never the whole
:class:`dogbreed.config.options.TrainConfig`: an import contract in ``pyproject.toml`` keeps it so. Standard
library only.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.core.constants import (
    ABSTENTION_SCORES,
    AUGMENT_POLICIES,
    DEFAULT_CROP_MIN_SIDE,
    DEFAULT_CROP_SCALE,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_TOP_K,
    FINETUNE_MODES,
    LOGGERS,
    TTA_MODES,
)

# The backbone learning rate (lr x scale, full fine-tune) follows --weights unless given: small steps keep
# pretrained features, a random backbone needs the full rate (0.1 gave 0.17 test accuracy where 1.0 gave 0.77).
PRETRAINED_BACKBONE_LR_SCALE = 0.1
SCRATCH_BACKBONE_LR_SCALE = 1.0
# --weights keywords (any case, spaces around ignored: stored lower-case); anything else is a path to a state_dict
WEIGHTS_KEYWORDS = ("imagenet", "imagenet-v2", "imagenet-v1", "none")
PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PROFILE_SUBDIR = "profile"  # <output-dir>/profile: where a profiled run writes unless --profile-dir says otherwise
AUTO_LR = -1.0  # --lr auto: the learning-rate finder chooses it (Lightning's Tuner.lr_find) before training
# What --monitor can watch: the validation metric of each epoch, and whether higher is better.
MONITORS = {"val_acc": "max", "val_loss": "min", "val_f1_macro": "max"}
MAX_TIME_FORMAT = "HH:MM:SS"


def float_or_auto(text: str) -> float:
    """``--lr``: a number (the range check wants it positive), or ``auto`` (:data:`AUTO_LR`, which cannot be typed
    as a number)."""
    if str(text).strip().lower() == "auto":
        return AUTO_LR
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None
    if value == AUTO_LR:  # the sentinel; any other negative number meets the range check with the same words
        raise argparse.ArgumentTypeError("must be a positive finite number (or auto: the learning-rate finder), "
                                         f"got {text}")
    return value


def max_time_seconds(text: str) -> int | None:
    """``--max-time`` as seconds: ``HH:MM:SS`` (also ``DD:HH:MM:SS``, Lightning's form); None when empty or
    malformed (the range check says which)."""
    parts = str(text).strip().split(":")
    if not text or len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        return None
    days, hours, minutes, seconds = ([0] * (4 - len(parts)) + [int(p) for p in parts])
    if minutes >= 60 or seconds >= 60:
        return None
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


def default_backbone_lr_scale(weights: str) -> float:
    """The backbone learning-rate scale that suits ``--weights`` when ``--backbone-lr-scale`` is not given."""
    return SCRATCH_BACKBONE_LR_SCALE if weights.strip().lower() == "none" else PRETRAINED_BACKBONE_LR_SCALE


@dataclass(frozen=True)
class DataOptions:
    """Where the images come from and how the network sees them."""

    data_dir: Path | None = _opt(None, "dataset root holding train/ valid/ (or val/, validation/) test/, or only "
                                          "class folders (split by --valid-pct and --test-pct)")
    train_dir: Path | None = _opt(None, "train split dir (instead of --data-dir)")
    valid_dir: Path | None = _opt(None, "validation split dir (instead of --data-dir)")
    test_dir: Path | None = _opt(None, "test split dir (instead of --data-dir; optional)")
    valid_pct: float | None = _opt(None, "share of each class's training images held out for validation when the "
                                         "data has no validation split (class folders only, or train/ only): "
                                         "stratified, seeded by --seed, listed in splits.json; refused when the "
                                         "data has one; default: 0.2 when there is no validation split")
    test_pct: float | None = _opt(None, "share of each class's training images held out for testing when the data "
                                        "has no test split (0: test on the validation split); refused when the "
                                        "data has one; default: 0.1 when there is no test split")
    image_size: int = _opt(DEFAULT_IMAGE_SIZE, "crop size fed to the network; eval resizes to round(size*232/224)")
    crop_scale: float = _opt(DEFAULT_CROP_SCALE[0],
                             "training augmentation: each random crop keeps this to 100%% of the image area "
                             f"(RandomResizedCrop scale; {DEFAULT_CROP_SCALE[0]} is the ImageNet recipe; 0.25-0.5 is "
                             "gentler for small images or small datasets)")
    crop_min_side: float = _opt(DEFAULT_CROP_MIN_SIDE,
                                "training augmentation: a random crop keeps at least this share of --image-size per "
                                "side of the source image, so crops of small images are not blown up from a few "
                                "pixels (images at least twice --image-size keep --crop-scale); 0 = off")
    augment: str = _opt("default", "training augmentation policy: none (the eval view: resize, centre crop), the "
                                   "standard random-resized crop + horizontal flip, or trivialaugment / randaugment "
                                   "(torchvision's TrivialAugmentWide / RandAugment on top of it)",
                        choices=AUGMENT_POLICIES)
    random_erasing: float = _opt(0.0, "probability of torchvision's RandomErasing on each training image, e.g. "
                                      "0.25; 0 = off")
    skip_bad_images: bool = _opt(False, "train without unreadable images instead of failing")
    allow_duplicates: bool = _opt(False, "train even when an image appears byte for byte in more than one split "
                                         "(a warning instead of the error; the metrics of those splits are inflated)")
    demo: bool = _opt(False, "generate a small synthetic dataset and train on it (no download needed)")
    download: bool = _opt(False, "download and unpack dogImages into --data-dir first (skipped if present)")
    dataset_url: str = _opt("", "URL of the dataset zip for --download (default: the public dogImages zip)")


@dataclass(frozen=True)
class OutputOptions:
    """Where the artifact and the reports go."""

    model_dir: Path = _opt(Path("outputs/model"), "where the model artifact (model.pth, model_config.json) goes")
    output_dir: Path = _opt(Path("outputs/reports"), "where metrics.json and the plots go")
    top_k: int = _opt(DEFAULT_TOP_K, "breeds shown per image in the demo predictions")
    overwrite: bool = _opt(False, "replace a model another run left in --model-dir (without it such a run refuses "
                                  "to start; --demo replaces an earlier demo's model)")


@dataclass(frozen=True)
class OptimisationOptions:
    """What is trained, from which weights, and how (everything here shapes the model)."""

    epochs: int = _opt(5, "number of training epochs")
    batch_size: int = _opt(32, "images per batch")
    lr: float = _opt(1e-3, "learning rate of the head (the backbone gets lr * backbone-lr-scale); auto: run the "
                           "learning-rate finder (as --lr-find) and train with its suggestion", parse=float_or_auto)
    lr_find: bool = _opt(False, "run Lightning's learning-rate finder (Tuner.lr_find), write lr_find.png to "
                                "--output-dir, print the suggested --lr and stop without training")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    backbone_lr_scale: float | None = _opt(None,
                                    "backbone learning rate as a fraction of --lr (with --finetune full); default: "
                                    f"{PRETRAINED_BACKBONE_LR_SCALE} with pretrained --weights, "
                                    f"{SCRATCH_BACKBONE_LR_SCALE} with --weights none")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy loss")
    weights: str = _opt("imagenet", "backbone weights: imagenet (torchvision's IMAGENET1K_V2), imagenet-v1, none, or "
                                    "a path to a resnet50 state_dict")
    finetune: str = _opt("head", "head: train the new classifier only (frozen backbone); full: train everything; "
                                 "gradual: the head alone for --freeze-epochs, "
                                 "then everything with discriminative learning rates and a fresh schedule",
                         choices=FINETUNE_MODES)
    freeze_epochs: int = _opt(1, "with --finetune gradual: epochs that train the head alone before the whole network "
                                 "trains (of --epochs in all)")
    warmup_epochs: int = _opt(0, "epochs of linear learning-rate warm-up (from 1%% of --lr) before the cosine decay; "
                                 "0 = off")
    accumulate_grad_batches: int = _opt(1, "accumulate gradients over this many batches per optimiser step "
                                           "(Lightning's accumulate_grad_batches): a larger effective batch")
    seed: int = _opt(42, "random seed (Python, NumPy, torch, DataLoader workers)")

    def __post_init__(self) -> None:
        keyword = self.weights.strip().lower()
        if keyword in WEIGHTS_KEYWORDS:  # " None " and "ImageNet" take the keyword's path everywhere, not a file's
            object.__setattr__(self, "weights", keyword)
        if self.backbone_lr_scale is None:  # not given: whatever suits --weights (every number is checked)
            object.__setattr__(self, "backbone_lr_scale", default_backbone_lr_scale(self.weights))


@dataclass(frozen=True)
class StoppingOptions:
    """Which epoch's weights are kept, and when training stops."""

    monitor: str = _opt("val_acc", "the validation metric that picks the best epoch, whose weights are tested and "
                                   "exported (EMA weights with --ema-decay): val_acc, val_loss or val_f1_macro",
                        choices=tuple(MONITORS))
    early_stopping: int = _opt(0, "stop when --monitor has not improved for this many epochs (patience); the best "
                                  "epoch is still exported; 0 = off")
    max_time: str = _opt("", f"a time budget for training, {MAX_TIME_FORMAT} (Lightning's max_time): training stops "
                             "cleanly when it is spent, and the best epoch is tested and exported; empty = none")


@dataclass(frozen=True)
class RecipeOptions:
    """The accuracy recipe of full fine-tuning: weight averaging and mixed batches."""

    ema_decay: float = _opt(0.0, "exponential moving average of the weights, e.g. 0.999 (the exported weights are "
                                 "the average; validation uses it too); 0 = off")
    mixup_alpha: float = _opt(0.0, "MixUp on training batches with this Beta(alpha, alpha), e.g. 0.2; 0 = off "
                                   "(needs images: --finetune full or --cached-views 0)")
    cutmix_alpha: float = _opt(0.0, "CutMix on training batches with this Beta(alpha, alpha), e.g. 1.0; 0 = off "
                                    "(with --mixup-alpha too: one of the two per batch)")

    @property
    def mixes_batches(self) -> bool:
        """MixUp/CutMix mix decoded images: they cannot run on cached backbone features."""
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


@dataclass(frozen=True)
class RuntimeOptions:
    """How the run uses this machine (none of these change what is learned)."""

    num_workers: int = _opt(-1, "DataLoader workers; -1 picks one from the CPU count")
    accelerator: str = _opt("auto", "Lightning accelerator: auto, cpu, gpu (cuda), mps", choices=ACCELERATORS)
    precision: str = _opt("auto", "Lightning precision: auto (bf16-mixed on GPUs with native bf16, 16-mixed on "
                                  "older GPUs, else 32-true), 32-true, 16-mixed, bf16-mixed", choices=PRECISIONS)
    compile: bool = _opt(False, "torch.compile the network")


@dataclass(frozen=True)
class CheckpointOptions:
    """Per-epoch checkpoints and resume (spot instances: /opt/ml/checkpoints in a SageMaker job)."""

    checkpoint_dir: Path | None = _opt(None, "save a checkpoint each epoch here and resume from the newest one")
    resume_anyway: bool = _opt(False, "resume from --checkpoint-dir even if its run had other options or data, "
                                      "or has finished")


@dataclass(frozen=True)
class CacheOptions:
    """The backbone feature cache of head-only training."""

    cached_views: int = _opt(1, "with --finetune head (and the head phase of --finetune gradual): backbone "
                                "features computed once per image and view; "
                                "K augmented views per training image (1 = the eval view); 0 disables the cache")
    cache_dir: Path | None = _opt(None, "where the feature cache lives (default: <output-dir>/../feature_cache)")


@dataclass(frozen=True)
class CalibrationOptions:
    """Calibration, abstention and test-time augmentation (stored in the artifact, applied when serving)."""

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


@dataclass(frozen=True)
class DiagnosticsOptions:
    """Debugging (an smdebug trial), profiling, and a look at the training inputs."""

    debug_dir: Path | None = _opt(None, "write an smdebug trial here (locally; in SageMaker the Debugger config wins)")
    debug_train_interval: int = _opt(100, "smdebug save interval (steps) in TRAIN mode")
    debug_eval_interval: int = _opt(10, "smdebug save interval (steps) in EVAL mode")
    profiler: str = _opt("", "Lightning profiler: simple, advanced or pytorch (empty: off)",
                         choices=("", "simple", "advanced", "pytorch"))
    monitor_interval_ms: int = _opt(500, "system utilisation sampling interval of profiled runs, in ms")
    show_batch: bool = _opt(False, "write batch.png to --output-dir before training: a grid of augmented training "
                                   "inputs with their labels, as the network sees them")
    profile_dir: Path | None = _opt(None, "where a profiled run writes the profiler's TensorBoard trace, "
                                          "utilisation.csv, step_times.csv, profile_run.json and the report "
                                          "(default: <output-dir>/profile; in a SageMaker job the TensorBoard "
                                          "output path, /opt/ml/output/tensorboard)")

    def profile_dir_for(self, output_dir: Path) -> Path:
        """Where a profiled run's profile goes: ``--profile-dir``, else ``<output-dir>/profile``."""
        return Path(self.profile_dir) if self.profile_dir is not None else Path(output_dir) / PROFILE_SUBDIR


@dataclass(frozen=True)
class TrackingOptions:
    """Experiment tracking: Lightning's loggers."""

    logger: str = _opt("csv", "Lightning logger: csv, tensorboard, mlflow or none", choices=LOGGERS)
    log_dir: Path | None = _opt(None, "where the logger writes (default: <output-dir>/logs; in a SageMaker job the "
                                      "TensorBoard output path when one is configured)")
