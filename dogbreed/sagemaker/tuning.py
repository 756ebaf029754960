"""SageMaker SDK v3 hyperparameter tuning over the one search space the local sweep also uses.

The v3 tuner reads metric definitions only from its own ``metric_definitions`` (not the trainer's), and it writes
``sagemaker_program``/``sagemaker_submit_directory`` into the trainer's hyperparameters: its child jobs start
through the image's legacy training toolkit. So a tuner gets a trainer of its own (:func:`build_tuner` builds
one), never the one a plain ``train()`` uses. Every SDK import is lazy.
"""

from __future__ import annotations

from typing import Any, Sequence

from dogbreed.core.errors import ConfigError
from dogbreed.training.metric_lines import OBJECTIVE_METRIC, OBJECTIVE_TYPE, metric_definitions
from dogbreed.tuning.search_space import SEARCH_SPACE, Continuous, Integer, Parameter

BASE_TUNING_JOB_NAME = "dogbreed-hpo"


def hyperparameter_ranges(space: Sequence[Parameter] = SEARCH_SPACE) -> dict[str, Any]:
    """The shared search space as v3 ``hyperparameter_ranges`` (``sagemaker.core.parameter``)."""
    from sagemaker.core.parameter import CategoricalParameter, ContinuousParameter, IntegerParameter

    ranges: dict[str, Any] = {}
    for p in space:
        if isinstance(p, Continuous):
            ranges[p.name] = ContinuousParameter(p.low, p.high, scaling_type="Logarithmic" if p.log else "Linear")
        elif isinstance(p, Integer):
            ranges[p.name] = IntegerParameter(p.low, p.high)
        else:
            ranges[p.name] = CategoricalParameter(list(p.choices))
    return ranges


def build_tuner(trainer: Any, *, max_jobs: int = 8, max_parallel_jobs: int = 2,
                base_tuning_job_name: str = BASE_TUNING_JOB_NAME, **tuner_kwargs: Any) -> Any:
    """A v3 ``HyperparameterTuner`` on ``trainer`` (give it a trainer of its own: see the module docstring),
    maximising validation accuracy over the shared search space, with SageMaker's automatic early stopping.
    Hyperparameters the search space tunes are removed from the trainer's static ones."""
    from sagemaker.train.tuner import HyperparameterTuner

    if max_parallel_jobs > max_jobs:
        raise ConfigError(f"max_parallel_jobs={max_parallel_jobs} exceeds max_jobs={max_jobs}")
    ranges = hyperparameter_ranges()
    static = trainer.hyperparameters or {}
    for name in ranges:
        static.pop(name, None)
    trainer.hyperparameters = static
    return HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=OBJECTIVE_METRIC,
        objective_type=OBJECTIVE_TYPE,
        hyperparameter_ranges=ranges,
        metric_definitions=metric_definitions(),
        strategy="Bayesian",
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        early_stopping_type="Auto",
        base_tuning_job_name=base_tuning_job_name,
        **tuner_kwargs,
    )


def best_job(tuner: Any) -> Any:
    """The tuning job's best training job as a ``TrainingJob`` (its model artifact can be deployed/registered)."""
    from sagemaker.core.resources import TrainingJob

    name = tuner.best_training_job()
    return TrainingJob.get(training_job_name=name, session=tuner.model_trainer.sagemaker_session.boto_session)
