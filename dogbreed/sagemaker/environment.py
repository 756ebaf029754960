"""The SageMaker training-container contract: what the toolkit's environment means for a run.

Facts (sagemaker-training toolkit): channels arrive as ``SM_CHANNEL_<NAME>`` dirs, the model goes to
``SM_MODEL_DIR``, reports to ``SM_OUTPUT_DATA_DIR``; ``SM_NUM_CPUS``/``SM_NUM_GPUS`` describe the
instance; ``SM_HOSTS``/``SM_CURRENT_HOST`` the cluster; hyperparameters arrive as ``--key value``
arguments (sorted, booleans as 'True'/'False'). Checkpoints for spot resume live in
``/opt/ml/checkpoints`` (synced with ``checkpoint_s3_uri``). A ``weights`` channel holding one backbone
state_dict file becomes the ``--weights`` default, so a job without internet can start from ImageNet weights. A
job with a TensorBoard output config gets ``/opt/ml/input/config/tensorboardoutputconfig.json`` (``LocalPath``,
default ``/opt/ml/output/tensorboard``), and SageMaker syncs that local path to the config's S3 path while the job
runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from dogbreed.core.errors import ConfigError
from dogbreed.training.runtime import Runtime

TRAINING_CHANNEL = "SM_CHANNEL_TRAINING"
TENSORBOARD_CONFIG = "tensorboardoutputconfig.json"
DEFAULT_TENSORBOARD_PATH = "/opt/ml/output/tensorboard"
SPLIT_CHANNELS = {"train_dir": "SM_CHANNEL_TRAIN", "valid_dir": "SM_CHANNEL_VALID", "test_dir": "SM_CHANNEL_TEST"}
WEIGHTS_CHANNEL = "SM_CHANNEL_WEIGHTS"


def in_sagemaker_training(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a SageMaker training container (the toolkit always sets SM_MODEL_DIR)."""
    environ = os.environ if environ is None else environ
    return "SM_MODEL_DIR" in environ or "TRAINING_JOB_NAME" in environ


def sagemaker_base_dir(environ: Mapping[str, str]) -> Path:
    """/opt/ml in a real job; derived from SM_MODEL_DIR so a job laid out elsewhere stays consistent."""
    return Path(environ["SM_MODEL_DIR"]).parent if "SM_MODEL_DIR" in environ else Path("/opt/ml")


def hosts(environ: Mapping[str, str]) -> list[str]:
    return list(json.loads(environ.get("SM_HOSTS", "[]"))) or ["localhost"]


def channel_weights_file(channel_dir: Path) -> Path:
    """The one backbone weights file in the ``weights`` channel (any name, e.g. torchvision's
    ``resnet50-11ad3fa6.pth``); anything else is a mistake worth stopping for."""
    files = sorted(p for p in Path(channel_dir).rglob("*") if p.is_file() and not p.name.startswith("."))
    if len(files) != 1:
        found = ", ".join(p.name for p in files[:5]) or "nothing"
        raise ConfigError(f"the 'weights' input channel ({WEIGHTS_CHANNEL}={channel_dir}) must hold exactly one "
                          f"resnet50 state_dict file, found {found}: point the channel at that one S3 object")
    return files[0]


def tensorboard_log_dir(environ: Mapping[str, str]) -> Path | None:
    """The local path SageMaker syncs TensorBoard logs from, when the job has a TensorBoard output config."""
    path = sagemaker_base_dir(environ) / "input" / "config" / TENSORBOARD_CONFIG
    if not path.is_file():
        return None
    try:
        local = json.loads(path.read_text(encoding="utf-8")).get("LocalPath")
    except (OSError, ValueError, AttributeError):
        local = None
    return Path(local or DEFAULT_TENSORBOARD_PATH)


def config_defaults(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """TrainConfig values implied by the SageMaker environment (explicit options still win)."""
    environ = os.environ if environ is None else environ
    if not in_sagemaker_training(environ):
        return {}
    # The toolkit sets SM_MODEL_DIR; a job named by TRAINING_JOB_NAME alone still has SageMaker's layout.
    model_dir = Path(environ["SM_MODEL_DIR"]) if "SM_MODEL_DIR" in environ else sagemaker_base_dir(environ) / "model"
    defaults: dict[str, Any] = {"model_dir": model_dir}
    if "SM_OUTPUT_DATA_DIR" in environ:
        defaults["output_dir"] = Path(environ["SM_OUTPUT_DATA_DIR"])
    if TRAINING_CHANNEL in environ:
        defaults["data_dir"] = Path(environ[TRAINING_CHANNEL])
    for field_name, variable in SPLIT_CHANNELS.items():
        if variable in environ:
            defaults[field_name] = Path(environ[variable])
    if WEIGHTS_CHANNEL in environ:
        defaults["weights"] = str(channel_weights_file(Path(environ[WEIGHTS_CHANNEL])))
    checkpoints = sagemaker_base_dir(environ) / "checkpoints"
    if checkpoints.is_dir():
        defaults["checkpoint_dir"] = checkpoints
    defaults["cache_dir"] = sagemaker_base_dir(environ) / "feature_cache"
    # Logger output: the synced TensorBoard path when configured, else <output-dir>/logs (SM_OUTPUT_DATA_DIR,
    # uploaded with output.tar.gz when the job ends).
    tensorboard = tensorboard_log_dir(environ)
    if tensorboard is not None:
        defaults["log_dir"] = tensorboard
    # A profiled run's trace, CSVs and report: the TensorBoard output path, which SageMaker uploads to
    # <s3_output_path>/<job-name>/tensorboard-output/ (the report and its inputs are also copied to
    # <output-dir>/profile, so output.tar.gz carries them when the job has no TensorBoard output config).
    defaults["profile_dir"] = tensorboard or sagemaker_base_dir(environ) / "output" / "tensorboard"
    return defaults


def distributed_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Trainer devices/num_nodes/strategy for torchrun (SageMaker torch_distributed) or SageMaker GPUs.

    Under torchrun Lightning reads RANK/WORLD_SIZE itself and requires devices x num_nodes == WORLD_SIZE.
    Several SageMaker hosts without torchrun are refused: each would run alone as node 0 at 127.0.0.1 and wait
    for the others until the rendezvous times out.
    """
    environ = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" in environ and int(environ.get("WORLD_SIZE", "1")) > 1:
        world = int(environ["WORLD_SIZE"])
        local = int(environ.get("LOCAL_WORLD_SIZE", world))
        return {"devices": local, "num_nodes": world // local, "strategy": "ddp"}
    if in_sagemaker_training(environ):
        gpus = int(environ.get("SM_NUM_GPUS", "0") or 0)
        cluster = hosts(environ)
        if len(cluster) > 1:
            raise ConfigError(
                f"this job has {len(cluster)} instances (SM_HOSTS={','.join(cluster)}) but the script was not "
                "started by torchrun, so every instance would train alone as node 0 and hang waiting for the "
                "others: build the trainer with distributed=True (torchrun), or use instance_count=1")
        settings: dict[str, Any] = {"devices": gpus if gpus > 0 else 1, "num_nodes": 1}
        if gpus > 1:
            settings["strategy"] = "ddp"
        return settings
    return {}


def runtime(environ: Mapping[str, str] | None = None) -> Runtime:
    """Where this process trains: CPUs (``SM_NUM_CPUS`` in a job), whether a progress bar may be drawn (a
    terminal, never a job log) and the Trainer's devices/nodes/strategy (:func:`distributed_settings`)."""
    environ = os.environ if environ is None else environ
    cpus = int(environ.get("SM_NUM_CPUS", "0") or 0) or os.cpu_count() or 1
    return Runtime(cpu_count=cpus, progress_bar=sys.stderr.isatty() and not in_sagemaker_training(environ),
                   trainer_settings=distributed_settings(environ))
