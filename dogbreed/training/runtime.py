"""Where a run executes, as its caller found out: the training layer never reads SageMaker's environment.

The CLI builds a :class:`Runtime` from the SageMaker/torchrun environment
(:func:`dogbreed.sagemaker.environment.runtime`); tests and library users get :meth:`Runtime.local`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Runtime:
    """``cpu_count``: CPUs to size DataLoader workers from; ``progress_bar``: whether a live bar may be drawn
    (a terminal, not a job log); ``trainer_settings``: devices / num_nodes / strategy for the Trainer."""

    cpu_count: int = 1
    progress_bar: bool = False
    trainer_settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def local(cls) -> Runtime:
        """This machine: its CPU count, a progress bar when stderr is a terminal, Lightning's device defaults."""
        return cls(cpu_count=os.cpu_count() or 1, progress_bar=sys.stderr.isatty())

    @property
    def processes_per_node(self) -> int:
        """Training processes on this machine (one per device under DDP); they share its CPUs."""
        devices = self.trainer_settings.get("devices")
        return devices if isinstance(devices, int) and devices > 0 else 1


# DataLoader workers per training process are capped here: beyond it a GPU is fed and the rest is memory.
MAX_WORKERS = 16


def resolve_num_workers(requested: int, cpu_count: int, *, processes: int = 1, on_gpu: bool = False) -> int:
    """-1 means: pick from the CPUs each training process gets (``cpu_count // processes``).

    On a GPU, every one of them (the training process mostly waits for the GPU; a 4-vCPU T4 machine gets 4
    workers), at most 16. On the CPU, the network needs the cores: two or fewer decode in-process, else one
    fewer than the cores, at most 8.
    """
    if requested >= 0:
        return requested
    cpus = max(1, cpu_count // max(1, processes))
    if on_gpu:
        return min(MAX_WORKERS, cpus)
    return 0 if cpus <= 2 else min(8, cpus - 1)
