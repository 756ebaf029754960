"""SageMaker SDK v2 objects for training and tuning jobs, built in one place for the notebook.

The uploaded source bundle is ``entry_points/`` (scripts + requirements.txt) with ``dogbreed/`` beside
them (``dependencies=``), so the job runs exactly this library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import dogbreed
from dogbreed.training.metric_lines import OBJECTIVE_METRIC, OBJECTIVE_TYPE, metric_definitions
from dogbreed.tuning.search_space import SEARCH_SPACE, Continuous, Integer, Parameter

PACKAGE_DIR = Path(dogbreed.__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent / "entry_points"
# Newest PyTorch training container SageMaker SDK 2.257 knows; the code also runs on 2.6 and 2.7.
FRAMEWORK_VERSION = "2.8.0"
PY_VERSION = "py312"
DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
TRAINING_CHANNEL = "training"


def build_estimator(
    *,
    role: str,
    sagemaker_session: Any = None,
    entry_point: str = "train.py",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    hyperparameters: dict[str, Any] | None = None,
    distributed: bool = False,
    spot: bool = False,
    checkpoint_s3_uri: str | None = None,
    debugging: bool = False,
    max_run: int = 4 * 3600,
    **estimator_kwargs: Any,
):
    """A ``sagemaker.pytorch.PyTorch`` estimator running one of our entry points.

    ``distributed`` starts the script under torchrun on every instance (DDP across all GPUs);
    ``spot`` uses spot capacity and needs ``checkpoint_s3_uri``, from which an interrupted job resumes.
    ``debugging`` adds the original project's Debugger rules, hook config and system monitoring
    (use it with ``entry_point="profiled_train.py"``).
    """
    from sagemaker.pytorch import PyTorch

    if spot and not checkpoint_s3_uri:
        raise ValueError("spot training needs checkpoint_s3_uri: without it an interrupted job restarts from zero")
    kwargs: dict[str, Any] = dict(
        entry_point=entry_point,
        source_dir=str(SOURCE_DIR),
        dependencies=[str(PACKAGE_DIR)],
        framework_version=FRAMEWORK_VERSION,
        py_version=PY_VERSION,
        role=role,
        instance_type=instance_type,
        instance_count=instance_count,
        hyperparameters=dict(hyperparameters or {}),
        metric_definitions=metric_definitions(),
        max_run=max_run,
        sagemaker_session=sagemaker_session,
        # Debugger and the profiler are opted into explicitly (see dogbreed.sagemaker.debugger).
        debugger_hook_config=False,
        disable_profiler=True,
    )
    if distributed:
        kwargs["distribution"] = {"torch_distributed": {"enabled": True}}
    if spot:
        kwargs.update(use_spot_instances=True, max_wait=max_run * 2)
    if debugging:
        from dogbreed.sagemaker.debugger import debugging_estimator_kwargs

        kwargs.update(debugging_estimator_kwargs(), disable_profiler=False)
    if checkpoint_s3_uri:
        kwargs.update(checkpoint_s3_uri=checkpoint_s3_uri, checkpoint_local_path="/opt/ml/checkpoints")
    kwargs.update(estimator_kwargs)
    return PyTorch(**kwargs)


def hyperparameter_ranges(space: Sequence[Parameter] = SEARCH_SPACE) -> dict[str, Any]:
    """The shared search space as ``hyperparameter_ranges`` for ``sagemaker.tuner.HyperparameterTuner`` (SDK v2)."""
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, IntegerParameter

    ranges: dict[str, Any] = {}
    for p in space:
        if isinstance(p, Continuous):
            ranges[p.name] = ContinuousParameter(p.low, p.high, scaling_type="Logarithmic" if p.log else "Linear")
        elif isinstance(p, Integer):
            ranges[p.name] = IntegerParameter(p.low, p.high)
        else:
            ranges[p.name] = CategoricalParameter(list(p.choices))
    return ranges


def build_tuner(estimator: Any, *, max_jobs: int = 8, max_parallel_jobs: int = 2, **tuner_kwargs: Any):
    """A ``HyperparameterTuner`` over the shared search space, maximising validation accuracy."""
    from sagemaker.tuner import HyperparameterTuner

    return HyperparameterTuner(
        estimator,
        objective_metric_name=OBJECTIVE_METRIC,
        objective_type=OBJECTIVE_TYPE,
        hyperparameter_ranges=hyperparameter_ranges(),
        metric_definitions=metric_definitions(),
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        early_stopping_type="Auto",
        **tuner_kwargs,
    )


def upload_dataset(sagemaker_session: Any, local_dir: Path | str, key_prefix: str = "dogbreed/data") -> str:
    """Upload a local dataset dir (train/ valid/ test/) to the session's bucket; returns its S3 URI."""
    return sagemaker_session.upload_data(path=str(local_dir), key_prefix=key_prefix)


def training_inputs(data_s3_uri: str) -> dict[str, str]:
    """The single ``training`` channel holding train/ valid/ test/."""
    return {TRAINING_CHANNEL: data_s3_uri}
