"""Command-line flows behind the entry points (they stay thin: SageMaker runs them as plain scripts)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from dogbreed.config import parse_config
from dogbreed.errors import DogBreedError
from dogbreed.logging_setup import configure_logging
from dogbreed.sagemaker_env import config_defaults

DEFAULT_TUNING_DIR = Path("outputs/hpo")


def run_train(argv: Sequence[str] | None = None) -> int:
    """Train, evaluate, export; locally or in a SageMaker training job. Returns the exit code."""
    configure_logging()
    try:
        config = parse_config(argv, environment_defaults=config_defaults())
        from dogbreed.training import train  # heavy imports after the flags are known to be valid

        result = train(config)
        if config.demo:
            from dogbreed.demo_run import show_demo_predictions

            show_demo_predictions(config, result)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank gets here; one summary is enough
        print(f"model artifact: {result.model_dir}/  reports: {result.output_dir}/")
    return 0


def _explicit_option_names(argv: Sequence[str]) -> list[str]:
    return [a[2:].split("=", 1)[0].replace("_", "-") for a in argv if a.startswith("--")]


def run_hpo(argv: Sequence[str] | None = None) -> int:
    """In a tuning job: one training run (the tuner passes the hyperparameters). With --local: Optuna."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--local", action="store_true")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--tuning-dir", "--tuning_dir", type=Path, default=DEFAULT_TUNING_DIR)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not args.local:
        return run_train(rest)
    configure_logging()
    from dogbreed.local_tuning import tune_locally
    from dogbreed.search_space import parameter_names, without

    try:
        config = parse_config(rest, prog="python -m entry_points.hpo --local [--trials N] [--tuning-dir D]")
        fixed = [n for n in _explicit_option_names(rest) if n in parameter_names()]
        result = tune_locally(config, args.trials, args.tuning_dir, space=without(fixed), seed=config.seed)
    except DogBreedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.table)
    print(f"best val_acc {result.best_value:.4f} with {result.best_params}")
    print(f"best hyperparameters: {args.tuning_dir}/best_hyperparameters.json  best model: {result.best_model_dir}/")
    return 0
