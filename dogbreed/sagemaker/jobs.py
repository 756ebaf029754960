"""SageMaker SDK v2 objects for training and tuning jobs, built in one place for the notebook.

The uploaded source bundle is ``entry_points/`` (scripts + requirements.txt) with ``dogbreed/`` beside
them (``dependencies=``), so the job runs exactly this library. A Debugger job gets its own bundle
(:func:`debug_source_dir`): the same scripts with ``requirements.txt`` = training + ``requirements-debug.txt``,
so smdebug's pins never reach a plain training, tuning, distributed or spot job.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import dogbreed
from dogbreed.core.errors import ConfigError
from dogbreed.sagemaker.debug_runtime import DEBUG_JOB_ENVIRONMENT
from dogbreed.training.metric_lines import OBJECTIVE_METRIC, OBJECTIVE_TYPE, metric_definitions
from dogbreed.tuning.search_space import SEARCH_SPACE, Continuous, Integer, Parameter

PACKAGE_DIR = Path(dogbreed.__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent / "entry_points"
REQUIREMENTS = "requirements.txt"
DEBUG_REQUIREMENTS = "requirements-debug.txt"
# Newest PyTorch training container SageMaker SDK 2.257 knows; the code also runs on 2.6 and 2.7.
FRAMEWORK_VERSION = "2.8.0"
PY_VERSION = "py312"
DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
TRAINING_CHANNEL = "training"
WEIGHTS_CHANNEL = "weights"  # SM_CHANNEL_WEIGHTS in the job: see dogbreed.sagemaker.environment


def debug_source_dir(destination: Path | None = None) -> Path:
    """``entry_points/`` staged for a Debugger job: the same scripts, and a ``requirements.txt`` that is the
    training requirements followed by ``requirements-debug.txt`` (the toolkit installs only that file name).

    Without ``destination`` it goes to a temp dir removed when this Python process exits (the SDK uploads
    the source dir at ``fit()``).
    """
    if destination is None:
        destination = Path(tempfile.mkdtemp(prefix="dogbreed-debug-source-"))
        atexit.register(shutil.rmtree, destination, True)
    destination.mkdir(parents=True, exist_ok=True)
    for script in sorted(SOURCE_DIR.glob("*.py")):
        shutil.copy2(script, destination / script.name)
    parts = [f"# {name} (entry_points/{name})\n{(SOURCE_DIR / name).read_text().rstrip()}\n"
             for name in (REQUIREMENTS, DEBUG_REQUIREMENTS)]
    (destination / REQUIREMENTS).write_text("".join(parts))
    return destination


def check_cluster(instance_count: int, distributed: bool) -> None:
    """More than one instance without torchrun hangs (every host believes it is node 0 at 127.0.0.1)."""
    if instance_count < 1:
        raise ConfigError(f"instance_count={instance_count}: a job needs at least one instance")
    if instance_count > 1 and not distributed:
        raise ConfigError(
            f"instance_count={instance_count} without distributed=True: each instance would train alone as node 0 "
            "and wait for the others until the job times out. Pass distributed=True (torchrun on every instance, "
            "DDP across all GPUs) or instance_count=1")


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
    image_uri: str | None = None,
    **estimator_kwargs: Any,
):
    """A ``sagemaker.pytorch.PyTorch`` estimator running one of our entry points.

    ``distributed`` starts the script under torchrun on every instance (DDP across all GPUs); more than one
    instance needs it. ``spot`` uses spot capacity and needs ``checkpoint_s3_uri``, from which an interrupted
    job resumes. ``debugging`` adds the original project's Debugger rules, hook config and system monitoring
    and ships smdebug (use it with ``entry_point="profiled_train.py"``; SageMaker Debugger is closed to
    accounts that never used it). ``image_uri`` runs your own or a newer training container instead of the
    PyTorch 2.8 DLC the SDK knows.
    """
    from sagemaker.pytorch import PyTorch

    check_cluster(instance_count, distributed)
    if spot and not checkpoint_s3_uri:
        raise ConfigError("spot training needs checkpoint_s3_uri: without it an interrupted job restarts from zero")
    kwargs: dict[str, Any] = dict(
        entry_point=entry_point,
        source_dir=str(debug_source_dir() if debugging else SOURCE_DIR),
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
        kwargs["environment"] = {**DEBUG_JOB_ENVIRONMENT, **estimator_kwargs.pop("environment", {})}
    if image_uri:
        kwargs["image_uri"] = image_uri
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


def training_inputs(data_s3_uri: str, weights_s3_uri: str | None = None) -> dict[str, str]:
    """The single ``training`` channel holding train/ valid/ test/; with ``weights_s3_uri`` (one resnet50
    state_dict object) also the ``weights`` channel, which the script uses for ``--weights`` (no internet needed)."""
    if not data_s3_uri.startswith("s3://"):
        raise ConfigError(f"data URI {data_s3_uri!r}: expected s3://bucket/prefix holding train/ valid/ test/")
    inputs = {TRAINING_CHANNEL: data_s3_uri}
    if weights_s3_uri:
        if not weights_s3_uri.startswith("s3://"):
            raise ConfigError(f"weights URI {weights_s3_uri!r}: expected s3://bucket/key of a resnet50 state_dict")
        inputs[WEIGHTS_CHANNEL] = weights_s3_uri
    return inputs
