"""TrainConfig: every training option, its default and its help; the --demo presets; range checks.

Parsed from argv by :mod:`dogbreed.config.parser`. Standard library only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dogbreed.core.constants import DEFAULT_IMAGE_SIZE, FINETUNE_MODES
from dogbreed.core.errors import ConfigError

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")


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
    backbone_lr_scale: float = _opt(0.1, "backbone learning rate as a fraction of --lr (with --finetune full)")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy loss")
    image_size: int = _opt(DEFAULT_IMAGE_SIZE, "crop size fed to the network; eval resizes to round(size*232/224)")
    weights: str = _opt("imagenet", "backbone weights: imagenet, none, or a path to a resnet50 state_dict")
    finetune: str = _opt("head", "head: train the new classifier only (frozen backbone); full: train everything",
                         choices=FINETUNE_MODES)
    num_workers: int = _opt(-1, "DataLoader workers; -1 picks one from the CPU count")
    seed: int = _opt(42, "random seed (Python, NumPy, torch, DataLoader workers)")
    skip_bad_images: bool = _opt(False, "train without unreadable images instead of failing")
    demo: bool = _opt(False, "generate a small synthetic dataset and train on it (no download needed)")
    download: bool = _opt(False, "download and unpack dogImages into --data-dir first (skipped if present)")
    dataset_url: str = _opt("", "URL of the dataset zip for --download (default: the public dogImages zip)")
    accelerator: str = _opt("auto", "Lightning accelerator: auto, cpu, gpu")
    top_k: int = _opt(3, "breeds shown per image in the demo predictions")
    # Checkpoints and resume (spot instances): /opt/ml/checkpoints in a SageMaker job.
    checkpoint_dir: Path | None = _opt(None, "save a checkpoint each epoch here and resume from the newest one")
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

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


# Options that --demo changes unless they are given explicitly.
DEMO_OVERRIDES: dict[str, Any] = {
    "weights": "none",
    "image_size": 64,
    "epochs": 6,
    "batch_size": 16,
    "finetune": "full",
    "lr": 2e-3,
    "backbone_lr_scale": 1.0,
}


def validate_config(config: TrainConfig) -> None:
    """Range checks with messages that name the option."""
    checks = [
        (config.epochs >= 1, "--epochs must be at least 1"),
        (config.batch_size >= 1, "--batch-size must be at least 1"),
        (config.lr > 0, "--lr must be positive"),
        (config.weight_decay >= 0, "--weight-decay must be >= 0"),
        (config.image_size >= 32, "--image-size must be at least 32"),
        (0 <= config.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
        (config.top_k >= 1, "--top-k must be at least 1"),
        (config.cached_views >= 0, "--cached-views must be >= 0 (0 disables the feature cache)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
