"""Where a run executes, as its caller found out: the training layer never reads SageMaker's environment.

The CLI builds a :class:`Runtime` from the SageMaker/torchrun environment
(:func:`dogbreed.sagemaker.environment.runtime`); tests and library users get :meth:`Runtime.local`. What the run
makes of it (workers, loader settings, precision) is in :mod:`dogbreed.training.setup`. Standard library only: the
CLI imports it before the options are parsed, and ``--help`` must answer without torch or Lightning.
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

