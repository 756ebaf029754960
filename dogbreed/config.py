"""TrainConfig: every training option, its default and its help, parsed once from argv.

The same parser serves a terminal (``--batch-size 64`` or ``--batch_size 64``) and SageMaker's
training toolkit (``--batch-size 64 --demo False``, keys sorted). Unknown options are errors.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from dogbreed.constants import DEFAULT_IMAGE_SIZE
from dogbreed.errors import ConfigError
from dogbreed.model import FINETUNE_MODES

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def str2bool(value: str | bool) -> bool:
    """Parse the booleans SageMaker sends (the strings 'True'/'False') and the usual spellings."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


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
    precision: str = _opt("auto", "Lightning precision: auto (bf16-mixed on GPUs that support it, else 32-true), "
                                  "32-true, 16-mixed, bf16-mixed", choices=PRECISIONS)
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


def option_names() -> list[str]:
    """Every valid option, as spelled on the command line and as a SageMaker hyperparameter."""
    return [f.name.replace("_", "-") for f in fields(TrainConfig)]


def _arg_type(f) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if "bool" in kind:
        return str2bool
    if "int" in kind:
        return int
    if "float" in kind:
        return float
    if "Path" in kind:
        return Path
    return str


def build_parser(prog: str = "python -m entry_points.train", description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser for TrainConfig; defaults are None so explicit options can be told apart."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or "Fine-tune ResNet50 on a dog-breed ImageFolder dataset.",
        allow_abbrev=False,  # '--batch 64' must not silently mean '--batch-size 64'
    )
    for f in fields(TrainConfig):
        dashed, underscored = f"--{f.name.replace('_', '-')}", f"--{f.name}"
        names = [dashed] if dashed == underscored else [dashed, underscored]
        arg_type = _arg_type(f)
        extra: dict[str, Any] = {}
        if arg_type is str2bool:
            extra = {"nargs": "?", "const": True}
        if "choices" in f.metadata:
            extra["choices"] = f.metadata["choices"]
        default = f.default
        parser.add_argument(
            *names, dest=f.name, type=arg_type, default=None,
            help=f"{f.metadata['help']} (default: {default})", **extra,
        )
    return parser


def parse_config(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m entry_points.train",
    environment_defaults: dict[str, Any] | None = None,
) -> TrainConfig:
    """Parse argv into a TrainConfig. Unknown options raise ConfigError naming them and the valid ones.

    Precedence: explicit options > ``environment_defaults`` (e.g. SageMaker's channel dirs) >
    --demo presets > field defaults.
    """
    parser = build_parser(prog)
    namespace, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {' '.join(unknown)}. Valid options: "
            + ", ".join(f"--{n}" for n in option_names())
            + " (hyphens or underscores)"
        )
    given = {k: v for k, v in vars(namespace).items() if v is not None}
    values = {f.name: f.default for f in fields(TrainConfig)}
    if given.get("demo"):
        values.update(DEMO_OVERRIDES)
    values.update(environment_defaults or {})
    values.update(given)
    config = TrainConfig(**values)
    validate_config(config)
    return config


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
