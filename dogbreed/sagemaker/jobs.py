"""SageMaker SDK v3 training jobs (``ModelTrainer``), built in one place for the notebook.

v3 has no ``dependencies=``: :func:`stage_source_dir` copies ``entry_points/`` (scripts + ``requirements.txt``)
and the ``dogbreed`` package into one source dir, so the job runs exactly this library. The job starts on the
current PyTorch AL2023 training image (``pytorch-amzn2023``); ``image_uri=`` picks any other. v3's driver runs the
script from ``/opt/ml/input/data/code`` with the hyperparameters as ``--key <JSON value>`` in dict order, and
installs ``requirements.txt`` because :class:`SourceCode` names it. Every SDK import is lazy.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import dogbreed
from dogbreed.core.errors import ConfigError
from dogbreed.training.metric_lines import metric_definitions

PACKAGE_DIR = Path(dogbreed.__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent / "entry_points"
REQUIREMENTS = "requirements.txt"
# The current PyTorch training image (Amazon Linux 2023, Python 3.12, CUDA 13.3); 2.14 with
# training_image(..., version="2.14"), anything else with image_uri=.
IMAGE_FRAMEWORK = "pytorch-amzn2023"
IMAGE_VERSION = "2.13"  # tests/data/pytorch-2.13-sagemaker-lock.txt: what the job resolves against
DEFAULT_INSTANCE_TYPE = "ml.g5.xlarge"
BASE_JOB_NAME = "dogbreed"
TRAINING_CHANNEL = "training"
WEIGHTS_CHANNEL = "weights"  # SM_CHANNEL_WEIGHTS in the job: see dogbreed.sagemaker.environment
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
TENSORBOARD_LOCAL_PATH = "/opt/ml/output/tensorboard"
PROJECT_TAG = {"project": "dogbreed"}
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def stage_source_dir(destination: Path | None = None) -> Path:
    """The job's source dir: ``entry_points/*.py`` and ``requirements.txt`` at the root, ``dogbreed/`` beside
    them (what v2's ``dependencies=`` used to add). Without ``destination`` it goes to a temp dir removed when
    this Python process exits (the SDK uploads it when the job is created)."""
    if destination is None:
        destination = Path(tempfile.mkdtemp(prefix="dogbreed-source-"))
        atexit.register(shutil.rmtree, destination, True)
    destination.mkdir(parents=True, exist_ok=True)
    for script in sorted(SOURCE_DIR.glob("*.py")):
        shutil.copy2(script, destination / script.name)
    shutil.copy2(SOURCE_DIR / REQUIREMENTS, destination / REQUIREMENTS)
    if (destination / "dogbreed").exists():
        shutil.rmtree(destination / "dogbreed")
    shutil.copytree(PACKAGE_DIR, destination / "dogbreed", ignore=_IGNORED)
    return destination


def training_image(region: str, instance_type: str = DEFAULT_INSTANCE_TYPE, version: str = IMAGE_VERSION) -> str:
    """The PyTorch AL2023 SageMaker training image for ``region`` (``...pytorch:2.13-cu133-amzn2023-sagemaker``)."""
    from sagemaker.core import image_uris

    return str(image_uris.retrieve(framework=IMAGE_FRAMEWORK, region=region, version=version,
                                   instance_type=instance_type, image_scope="training"))


def check_cluster(instance_count: int, distributed: bool) -> None:
    """More than one instance without torchrun hangs (every host believes it is node 0 at 127.0.0.1)."""
    if instance_count < 1:
        raise ConfigError(f"instance_count={instance_count}: a job needs at least one instance")
    if instance_count > 1 and not distributed:
        raise ConfigError(
            f"instance_count={instance_count} without distributed=True: each instance would train alone as node 0 "
            "and wait for the others until the job times out. Pass distributed=True (torchrun on every instance, "
            "DDP across all GPUs) or instance_count=1")


def sdk_metric_definitions() -> list[Any]:
    """The script's metric regexes as v3 ``MetricDefinition`` objects (the tuner takes the plain dicts)."""
    from sagemaker.core.training.configs import MetricDefinition

    return [MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in metric_definitions()]


def sdk_tags(tags: Mapping[str, str] | None = None) -> list[Any]:
    """``project=dogbreed`` and ``tags`` as v3 ``Tag`` objects (every job, model and package is findable by it)."""
    from sagemaker.core.shapes import Tag

    return [Tag(key=key, value=value) for key, value in {**PROJECT_TAG, **(tags or {})}.items()]


def _check_s3(what: str, uri: str | None) -> None:
    if uri is not None and not uri.startswith("s3://"):
        raise ConfigError(f"{what} {uri!r}: expected an s3://bucket/prefix URI")


def build_trainer(
    *,
    role: str,
    output_s3_uri: str,
    sagemaker_session: Any = None,
    entry_point: str = "train.py",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    hyperparameters: dict[str, Any] | None = None,
    distributed: bool = False,
    spot: bool = False,
    checkpoint_s3_uri: str | None = None,
    tensorboard_s3_uri: str | None = None,
    max_run: int = 4 * 3600,
    image_uri: str | None = None,
    source_dir: Path | None = None,
    base_job_name: str = BASE_JOB_NAME,
    tags: Mapping[str, str] | None = None,
    **trainer_kwargs: Any,
) -> Any:
    """A v3 ``ModelTrainer`` running one of our entry points on the staged source dir.

    ``output_s3_uri`` receives ``model.tar.gz`` and ``output.tar.gz``. ``distributed`` starts the script under
    torchrun on every instance (``Torchrun()``: DDP across all GPUs); more than one instance needs it. ``spot``
    uses spot capacity and needs ``checkpoint_s3_uri``, from which an interrupted job resumes
    (``/opt/ml/checkpoints``). ``tensorboard_s3_uri`` syncs ``/opt/ml/output/tensorboard`` there while the job
    runs (the script's logger and the profiled job's profile write there). ``image_uri`` runs another training
    image (an older PyTorch DLC, your own). The job is tagged ``project=dogbreed`` plus ``tags``. Other keyword
    arguments (``environment``, ``networking``...) go to ``ModelTrainer``.
    """
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
        TensorBoardOutputConfig,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.distributed import Torchrun

    check_cluster(instance_count, distributed)
    if spot and not checkpoint_s3_uri:
        raise ConfigError("spot training needs checkpoint_s3_uri: without it an interrupted job restarts from zero")
    for what, uri in (("output_s3_uri", output_s3_uri), ("checkpoint_s3_uri", checkpoint_s3_uri),
                      ("tensorboard_s3_uri", tensorboard_s3_uri)):
        _check_s3(what, uri)
    if not (SOURCE_DIR / entry_point).is_file():
        raise ConfigError(f"entry_point {entry_point!r} is not a script in entry_points/ "
                          f"({', '.join(p.name for p in sorted(SOURCE_DIR.glob('*.py')) if p.stem != '__init__')})")
    if image_uri is None:
        region = sagemaker_session.boto_region_name if sagemaker_session is not None else None
        if not region:
            raise ConfigError("no AWS region: pass sagemaker_session (its region picks the image) or image_uri")
        image_uri = training_image(region, instance_type)
    source = stage_source_dir(source_dir)
    trainer = ModelTrainer(
        training_image=image_uri,
        role=role,
        sagemaker_session=sagemaker_session,
        base_job_name=base_job_name,
        source_code=SourceCode(source_dir=str(source), entry_script=entry_point, requirements=REQUIREMENTS),
        compute=Compute(instance_type=instance_type, instance_count=instance_count,
                        enable_managed_spot_training=spot or None),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=max_run,
                                             max_wait_time_in_seconds=max_run * 2 if spot else None),
        checkpoint_config=(CheckpointConfig(s3_uri=checkpoint_s3_uri, local_path=CHECKPOINT_LOCAL_PATH)
                           if checkpoint_s3_uri else None),
        output_data_config=OutputDataConfig(s3_output_path=output_s3_uri),
        hyperparameters=dict(hyperparameters or {}),
        distributed=Torchrun() if distributed else None,
        tags=sdk_tags(tags),
        **trainer_kwargs,
    ).with_metric_definitions(sdk_metric_definitions())
    if tensorboard_s3_uri:
        trainer = trainer.with_tensorboard_output_config(
            TensorBoardOutputConfig(s3_output_path=tensorboard_s3_uri, local_path=TENSORBOARD_LOCAL_PATH))
    return trainer


def upload_dataset(sagemaker_session: Any, local_dir: Path | str, key_prefix: str = "dogbreed/data") -> str:
    """Upload a local dataset dir (train/ valid/ test/) to the session's bucket; returns its S3 URI."""
    return str(sagemaker_session.upload_data(path=str(local_dir), key_prefix=key_prefix))


def training_inputs(data_s3_uri: str, weights_s3_uri: str | None = None) -> list[Any]:
    """``InputData`` for ``train()``/``tune()``: the ``training`` channel holding train/ valid/ test/; with
    ``weights_s3_uri`` (one resnet50 state_dict object) also the ``weights`` channel, which the script uses for
    ``--weights`` (no internet needed)."""
    from sagemaker.core.training.configs import InputData

    if not data_s3_uri.startswith("s3://"):
        raise ConfigError(f"data URI {data_s3_uri!r}: expected s3://bucket/prefix holding train/ valid/ test/")
    inputs = [InputData(channel_name=TRAINING_CHANNEL, data_source=data_s3_uri)]
    if weights_s3_uri:
        if not weights_s3_uri.startswith("s3://"):
            raise ConfigError(f"weights URI {weights_s3_uri!r}: expected s3://bucket/key of a resnet50 state_dict")
        inputs.append(InputData(channel_name=WEIGHTS_CHANNEL, data_source=weights_s3_uri))
    return inputs


def latest_job(trainer: Any) -> Any:
    """The ``TrainingJob`` the trainer's last ``train()`` created (v3 keeps it only in a private attribute)."""
    job = getattr(trainer, "_latest_training_job", None)
    if job is None:
        raise ConfigError("this trainer has not started a training job yet: call trainer.train(...) first")
    return job


def model_artifact(job: Any) -> str:
    """The S3 URI of a finished job's ``model.tar.gz``."""
    artifacts = getattr(job, "model_artifacts", None)
    uri = getattr(artifacts, "s3_model_artifacts", None)
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ConfigError(f"training job {getattr(job, 'training_job_name', '?')} has no model artifact yet "
                          "(it has not completed): wait for it, or check its status in the console")
    return uri

