"""``python -m entry_points.train``: train, evaluate and export, locally or in a SageMaker training job."""

from __future__ import annotations

from typing import Sequence

from dogbreed.cli.run_claim import claimed_outputs
from dogbreed.cli.runner import run_command
from dogbreed.config.parser import parse_config
from dogbreed.sagemaker.environment import config_defaults, runtime


def train_command(argv: Sequence[str] | None) -> str:
    config = parse_config(argv, environment_defaults=config_defaults())
    from dogbreed.diagnostics.run_policy import train_with_diagnostics  # heavy: after the options are valid

    with claimed_outputs(config):
        result = train_with_diagnostics(config, runtime=runtime())
        if config.data.demo and not config.optimisation.lr_find:  # --lr-find stops before training: no model
            from dogbreed.cli.demo import show_demo_predictions

            show_demo_predictions(config, result)
    return "\n".join(result.summary) or f"model artifact: {result.model_dir}/  reports: {result.output_dir}/"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: train_command(argv))
