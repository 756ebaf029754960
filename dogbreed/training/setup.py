"""How a run is set up on the machine it runs on (a :class:`~dogbreed.training.runtime.Runtime`, as the caller found
it), before any data is read: DataLoader workers and loader settings, precision, the checks that must pass first
(output dirs writable, the accelerator present) and the experiment logger.

``--logger``: Lightning's own loggers. ``csv`` (the default, no extra dependency) and ``tensorboard`` write
``<log-dir>/<kind>/version_N/``; ``mlflow`` records a run in ``$MLFLOW_TRACKING_URI``, else in the file store
``<log-dir>/mlruns``. ``<log-dir>`` defaults to ``<output-dir>/logs``; in a SageMaker job with a TensorBoard
output config it is that config's local path, which SageMaker syncs to S3 while the job runs.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Mapping

import torch
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from dogbreed.config.sections import OutputOptions, RuntimeOptions, TrackingOptions
from dogbreed.core.errors import ConfigError
from dogbreed.core.fileio import check_writable_dir
from dogbreed.data.datamodule import LoaderSettings
from dogbreed.training.runtime import Runtime

# --- workers and loader settings ----------------------------------------------------------------------------------

# DataLoader workers per training process are capped here: beyond it a GPU is fed and the rest is memory.
MAX_WORKERS = 16
# Images each worker keeps ready ahead of the step (prefetch_factor = this / batch size, 2 to 8 batches):
# enough that one slow image (a 12-megapixel JPEG) does not stall a step of small batches.
PREFETCH_IMAGES_PER_WORKER = 128
MIN_PREFETCH_BATCHES, MAX_PREFETCH_BATCHES = 2, 8
# An explicit --num-workers is capped at this many per CPU of the training process: decoding is CPU-bound, so
# beyond it workers only add processes and memory (the range check refuses more than 256 outright).
WORKERS_PER_CPU = 2
logger = logging.getLogger(__name__)


def resolve_num_workers(requested: int, cpu_count: int, *, processes: int = 1, on_gpu: bool = False) -> int:
    """-1 means: pick from the CPUs each training process gets (``cpu_count // processes``).

    On a GPU, every one of them (the training process mostly waits for the GPU; a 4-vCPU T4 machine gets 4
    workers), at most 16. On the CPU, the network needs the cores: two or fewer decode in-process, else one
    fewer than the cores, at most 8. An explicit count above :data:`WORKERS_PER_CPU` x those CPUs is capped there,
    with one log line (the DataLoaders cap it again at the batches of an epoch).
    """
    cpus = max(1, cpu_count // max(1, processes))
    if requested > WORKERS_PER_CPU * cpus:
        logger.info("--num-workers %d capped at %d (%d x the %d CPU(s) of each training process): more workers "
                    "only add processes and memory", requested, WORKERS_PER_CPU * cpus, WORKERS_PER_CPU, cpus)
        return WORKERS_PER_CPU * cpus
    if requested >= 0:
        return requested
    if on_gpu:
        return min(MAX_WORKERS, cpus)
    return 0 if cpus <= 2 else min(8, cpus - 1)


def prefetch_batches(batch_size: int) -> int:
    """Batches each worker prefetches: about :data:`PREFETCH_IMAGES_PER_WORKER` images, 2 to 8 batches."""
    wanted = -(-PREFETCH_IMAGES_PER_WORKER // max(1, batch_size))
    return max(MIN_PREFETCH_BATCHES, min(MAX_PREFETCH_BATCHES, wanted))


def _training_processes(runtime: Runtime, on_gpu: bool) -> int:
    """Training processes sharing this machine's CPUs: as the caller set the devices (torchrun, SageMaker), else
    one per visible GPU (Lightning's ``devices="auto"``), else one."""
    if "devices" in runtime.trainer_settings or not on_gpu:
        return runtime.processes_per_node
    return max(1, torch.cuda.device_count())


def loader_settings(requested_workers: int, batch_size: int, runtime: Runtime, *, on_gpu: bool) -> LoaderSettings:
    """Workers from the machine's CPUs (``SM_NUM_CPUS`` in a SageMaker job), shared by the training processes on
    it (:func:`resolve_num_workers`); on a GPU, pinned memory (asynchronous host-to-device copies) and persistent
    workers (not restarted every epoch); prefetch sized to the batch (:func:`prefetch_batches`)."""
    workers = resolve_num_workers(requested_workers, runtime.cpu_count,
                                  processes=_training_processes(runtime, on_gpu), on_gpu=on_gpu)
    return LoaderSettings(num_workers=workers, pin_memory=on_gpu, persistent_workers=on_gpu and workers > 0,
                          prefetch_factor=prefetch_batches(batch_size) if workers > 0 else None)


def _trains_on_gpu(accelerator: str) -> bool:
    """Whether Lightning will train on a CUDA GPU with this ``--accelerator`` on this machine."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def run_loader_settings(options: RuntimeOptions, batch_size: int, runtime: Runtime) -> LoaderSettings:
    """:func:`loader_settings` for a training run: ``--num-workers``, ``--batch-size``, ``--accelerator``."""
    return loader_settings(options.num_workers, batch_size, runtime, on_gpu=_trains_on_gpu(options.accelerator))


# --- precision ----------------------------------------------------------------------------------------------------

def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto``: bf16-mixed on a GPU with native bf16 (Ampere and later), 16-mixed on older GPUs (T4, V100:
    fp16 tensor cores; their bf16 is emulated, slower than fp32), else 32-true.

    On CPUs, 32-true stays the default even where bf16 autocast is faster (about 2x for the
    ResNet50 forward on an AVX512-BF16 EPYC, bench/RESULTS.md): bf16 changes the numbers, so
    it is opt-in there with ``--precision bf16-mixed``.
    """
    if precision != "auto":
        return precision
    if not _trains_on_gpu(accelerator):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


# --- preflight: checks that must pass before any data is read -----------------------------------------------------
# A typo in --model-dir (a file, an unwritable mount) used to surface after training, losing the run.

def output_locations(outputs: OutputOptions, *, checkpoint_dir: Path | None, debug_dir: Path | None,
                     cache_dir: Path | None, profile_dir: Path | None = None) -> dict[str, Path]:
    """Option -> dir for every place the run writes to (``cache_dir`` when the feature cache is used,
    ``profile_dir`` when the run is profiled)."""
    locations = {"--model-dir": Path(outputs.model_dir), "--output-dir": Path(outputs.output_dir)}
    if checkpoint_dir is not None:
        locations["--checkpoint-dir"] = Path(checkpoint_dir)
    if cache_dir is not None:
        locations["--cache-dir"] = Path(cache_dir)
    if debug_dir is not None:
        locations["--debug-dir"] = Path(debug_dir).parent
    if profile_dir is not None:
        locations["--profile-dir"] = Path(profile_dir)
    return locations


def check_output_locations(locations: Mapping[str, Path]) -> None:
    """Prove each output dir writable (without creating it); a :class:`ConfigError` names the option.
    ``locations``: option -> dir, every place the run writes to."""
    for option, path in locations.items():
        check_writable_dir(path, option)


def check_accelerator(accelerator: str) -> None:
    """``--accelerator gpu`` on a machine without one is a one-line error, not Lightning's traceback."""
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--accelerator {accelerator}: torch sees no CUDA GPU on this machine "
                          f"(torch {torch.__version__}): use --accelerator cpu or auto")
    if accelerator == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("--accelerator mps: Apple's MPS is not available here: use --accelerator cpu or auto")


# --- the experiment logger ----------------------------------------------------------------------------------------

LOG_SUBDIR = "logs"
EXPERIMENT_NAME = "dogbreed"
_EXTRA_FOR = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}


def log_dir(tracking: TrackingOptions, output_dir: Path) -> Path:
    return Path(tracking.log_dir) if tracking.log_dir else Path(output_dir) / LOG_SUBDIR


def _require(kind: str) -> None:
    module, distribution = _EXTRA_FOR[kind]
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"--logger {kind} needs the {distribution} package: pip install -e '.[tracking]' "
                          f"(or pip install {distribution}), or choose --logger csv")


def build_logger(tracking: TrackingOptions, output_dir: Path) -> Logger | bool:
    """The Trainer's ``logger`` argument for ``--logger`` (False for ``none``)."""
    kind = tracking.logger
    if kind == "none":
        return False
    root = log_dir(tracking, output_dir)
    if kind == "csv":
        return CSVLogger(save_dir=root, name="csv")
    _require(kind)
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=root, name="tensorboard", default_hp_metric=False)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        # A local file store needs no server and no database driver; MLflow 3.x refuses it unless allowed
        # explicitly (it is in maintenance mode, still readable by `mlflow ui`). Set MLFLOW_TRACKING_URI for a server.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        tracking_uri = (root / "mlruns").resolve().as_uri()
    return MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_NAME),
                        tracking_uri=tracking_uri)
