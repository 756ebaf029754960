"""DataLoader settings from the machine: workers from its CPUs, pinned memory and persistent workers on a GPU,
prefetch sized to the batch."""

from __future__ import annotations

import torch

from dogbreed.config.options import TrainConfig
from dogbreed.data.datamodule import LoaderSettings
from dogbreed.training.runtime import Runtime, resolve_num_workers

# Images each worker keeps ready ahead of the step (prefetch_factor = this / batch size, 2 to 8 batches):
# enough that one slow image (a 12-megapixel JPEG) does not stall a step of small batches.
PREFETCH_IMAGES_PER_WORKER = 128
MIN_PREFETCH_BATCHES, MAX_PREFETCH_BATCHES = 2, 8


def prefetch_batches(batch_size: int) -> int:
    """Batches each worker prefetches: about :data:`PREFETCH_IMAGES_PER_WORKER` images, 2 to 8 batches."""
    wanted = -(-PREFETCH_IMAGES_PER_WORKER // max(1, batch_size))
    return max(MIN_PREFETCH_BATCHES, min(MAX_PREFETCH_BATCHES, wanted))


def training_processes(runtime: Runtime, on_gpu: bool) -> int:
    """Training processes sharing this machine's CPUs: as the caller set the devices (torchrun, SageMaker), else
    one per visible GPU (Lightning's ``devices="auto"``), else one."""
    if "devices" in runtime.trainer_settings or not on_gpu:
        return runtime.processes_per_node
    return max(1, torch.cuda.device_count())


def loader_settings(requested_workers: int, batch_size: int, runtime: Runtime, *, on_gpu: bool) -> LoaderSettings:
    """Workers from the machine's CPUs (``SM_NUM_CPUS`` in a SageMaker job), shared by the training processes on
    it (:func:`resolve_num_workers`); on a GPU, pinned memory (asynchronous host-to-device copies) and persistent
    workers (not restarted every epoch); prefetch sized to the batch (:func:`prefetch_batches`)."""
    workers = resolve_num_workers(requested_workers, runtime.cpu_count, processes=training_processes(runtime, on_gpu),
                                  on_gpu=on_gpu)
    return LoaderSettings(num_workers=workers, pin_memory=on_gpu, persistent_workers=on_gpu and workers > 0,
                          prefetch_factor=prefetch_batches(batch_size) if workers > 0 else None)


def trains_on_gpu(accelerator: str) -> bool:
    """Whether Lightning will train on a CUDA GPU with this ``--accelerator`` on this machine."""
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def run_loader_settings(config: TrainConfig, runtime: Runtime) -> LoaderSettings:
    """:func:`loader_settings` for a training run: ``--num-workers``, ``--batch-size``, ``--accelerator``."""
    return loader_settings(config.num_workers, config.batch_size, runtime, on_gpu=trains_on_gpu(config.accelerator))
