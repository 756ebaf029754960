"""``python -m entry_points.hpo``: one trial of a SageMaker tuning job, or with ``--local`` an Optuna search."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dogbreed.cli.runner import run_command
from dogbreed.config.parser import ExtraOption, parse_command
from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.environment import config_defaults, runtime

PROG = "python -m entry_points.hpo"
DESCRIPTION = ("Hyperparameter tuning. In a SageMaker tuning job the tuner runs this once per trial with that "
               "trial's hyperparameters; with --local the same search space is searched here with Optuna. "
               "Training options given explicitly are fixed, not searched.")
DEFAULT_TUNING_DIR = Path("outputs/hpo")
MAX_TRIALS = 1000
HPO_OPTIONS = (
    ExtraOption("local", "search here with Optuna (TPE sampler, median pruner) instead of running one trial",
                flag=True),
    ExtraOption("trials", "number of trials with --local", type=int, default=8),
    ExtraOption("tuning_dir", "with --local: where trials/, trials.csv, best_hyperparameters.json and best_model/ go",
                type=Path, default=DEFAULT_TUNING_DIR),
)


def hpo_command(argv: Sequence[str] | None) -> str:
    parsed = parse_command(argv, prog=PROG, description=DESCRIPTION, extra_options=HPO_OPTIONS,
                           environment_defaults=config_defaults())
    if not parsed.extras["local"]:  # a trial of a SageMaker tuning job: one training run
        from dogbreed.diagnostics.run_policy import train_with_diagnostics

        trained = train_with_diagnostics(parsed.config, runtime=runtime())
        return "\n".join(trained.summary)
    trials, tuning_dir = parsed.extras["trials"], parsed.extras["tuning_dir"]
    if not 1 <= trials <= MAX_TRIALS:
        raise ConfigError(f"--trials must be between 1 and {MAX_TRIALS} (each trial is a whole training run), got "
                          f"{trials}")
    from dogbreed.core.fileio import check_writable_dir

    check_writable_dir(tuning_dir, "--tuning-dir")  # before any data is read or any trial runs
    from dogbreed.tuning.local import tune_locally
    from dogbreed.tuning.search_space import parameter_names, without

    fixed = [name.replace("_", "-") for name in parsed.explicit if name.replace("_", "-") in parameter_names()]
    result = tune_locally(parsed.config, trials, tuning_dir, space=without(fixed), seed=parsed.config.optimisation.seed,
                          runtime=runtime())
    from dogbreed.tuning.local import BEST_PARAMS_FILENAME, BEST_REPORTS_DIR, command_line

    test = " ".join(f"test_{k}={v:.4f}" for k, v in result.test_metrics.items())
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    return "\n".join([
        result.table, "",
        f"best: val_acc {result.best_value:.4f} with {params}",
        f"best model tested once: {test}",
        f"best model:            {result.best_model_dir}/ (reports: {tuning_dir}/{BEST_REPORTS_DIR}/)",
        f"best hyperparameters:  {tuning_dir}/{BEST_PARAMS_FILENAME}",
        f"reproduce it with:     python -m entry_points.train --config {tuning_dir}/{BEST_PARAMS_FILENAME}",
        f"                   or: {command_line(result.best_config)}",
        *([result.warning] if result.warning else []),
    ])


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(lambda: hpo_command(argv))
