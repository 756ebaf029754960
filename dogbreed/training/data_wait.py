"""How long training waits for its input: the data-wait timer, and the line every image-fed run prints at the end.

A step runs from one batch end to the next; the wait is the part before ``on_train_batch_start``: fetching the
next batch from the DataLoader (decoding in-process with 0 workers) and moving it to the device.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

# From this share of step time waiting for data on, a run is called input-bound.
DATA_WAIT_BOTTLENECK = 0.30
PREPARE_HINT = "python -m entry_points.prepare --data-dir DATA --output PREPARED, then train with --data-dir PREPARED"


class DataWaitTimer(Callback):
    """Time between ``on_train_batch_end`` and the next ``on_train_batch_start`` (fetching the batch) vs the step.

    A step runs from one batch end to the next, so wait + compute = step. The first batch of each
    epoch is left out: validation and epoch set-up happen before it.
    """

    def __init__(self) -> None:
        self.waits_s: list[float] = []
        self.steps_s: list[float] = []
        self._last_end: float | None = None
        self._start: float | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_end = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        end = time.perf_counter()
        if self._last_end is not None and self._start is not None:
            self.waits_s.append(self._start - self._last_end)
            self.steps_s.append(end - self._last_end)
        self._last_end = end

    @property
    def wait_fraction(self) -> float | None:
        """Share of step time spent waiting for data; None before two batches of one epoch ran."""
        total = sum(self.steps_s)
        return sum(self.waits_s) / total if total > 0 else None


def data_wait_line(fraction: float | None, steps_s: list[float], num_workers: int) -> str:
    """The end-of-run line: the share of step time spent waiting for input and, when it is high, what to do."""
    if fraction is None:
        return "data wait: not measured (it needs two training batches in one epoch)"
    share = f"{100 * fraction:.0f}%" if fraction >= 0.1 else f"{100 * fraction:.1f}%"
    mean_ms = 1000 * sum(steps_s) / len(steps_s)
    workers = f"{num_workers} DataLoader worker{'s' if num_workers != 1 else ''}"
    facts = f"{len(steps_s)} steps, mean step {mean_ms:.0f} ms, {workers}"
    if fraction < DATA_WAIT_BOTTLENECK:
        return f"data wait: {share} of training step time ({facts}): input is not the bottleneck"
    return (f"data wait: {share} of training step time ({facts}): input-bound. Raise --num-workers (now "
            f"{num_workers}) if CPUs are idle, or decode less: {PREPARE_HINT}")


class DataWaitReport(DataWaitTimer):
    """Times every training step and prints :func:`data_wait_line` at the end of fit (rank 0 only).

    ``line`` keeps the text; :meth:`summary_lines` repeats it in the end-of-run summary."""

    def __init__(self, num_workers: int, emit: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.num_workers = num_workers
        self.emit = emit or (lambda line: print(line, flush=True))
        self.line: str | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.line = data_wait_line(self.wait_fraction, self.steps_s, self.num_workers)
        if trainer.is_global_zero:
            self.emit(self.line)

    def summary_lines(self) -> list[str]:
        """The data-wait line again in the run summary (nothing before fit has ended)."""
        return [self.line] if self.line is not None else []
