"""What stops a run safely: signals (SIGTERM, SIGINT, SIGHUP) and non-finite losses or weights.

A signal stops training at once, except inside a *critical section* (a checkpoint or the model being written):
that finishes first, then the run stops. Either way :func:`dogbreed.training.run.train` turns the stop into
:class:`RunInterrupted` (exit status 128 + signum, one line saying what was and was not saved) and never
exports a model from an unfinished run. Lightning's own SIGTERM handling (which exits with status 0) is
chained behind ours.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dogbreed.core.errors import TrainingDiverged

logger = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalStop(BaseException):
    """Raised inside the run when a signal arrives (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Installs the handlers for the duration of a run (main thread only; elsewhere it does nothing)."""

    _active: "SignalGuard | None" = None

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0  # critical sections entered
        self._previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self._depth and first:
            logger.warning("received %s: stopping once the file being written is complete", self.signal_name)
            return
        raise SignalStop(signum)

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in HANDLED_SIGNALS}
        SignalGuard._active = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        SignalGuard._active = None

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self.signum is not None:
            raise SignalStop(self.signum)


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """A signal received inside waits until the block ends (then the run stops). No-op without a guard."""
    guard = SignalGuard._active
    if guard is None:
        yield
        return
    with guard.critical():
        yield


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


class NonFiniteGuard(Callback):
    """Stops the run with :class:`TrainingDiverged` when a training loss, a validation loss or a weight becomes
    NaN/inf: such a model is never exported (its predictions would be NaN, which strict JSON rejects)."""

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def _diverged(self, what: str, trainer: pl.Trainer) -> TrainingDiverged:
        return TrainingDiverged(f"{what} in epoch {trainer.current_epoch + 1}: training diverged and nothing was "
                                f"exported. Lower --lr (now {self.lr:g}) or check the data and --weights")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all()):
            raise self._diverged(f"the training loss is {float(loss)} at batch {batch_idx + 1}", trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if not trainer.sanity_checking and loss is not None and not _finite(loss):
            raise self._diverged(f"the validation loss is {float(loss)}", trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        check_finite_weights(pl_module, lambda what: self._diverged(what, trainer))


def check_finite_weights(module: torch.nn.Module, error: Any) -> None:
    """Raise ``error(description)`` if any parameter or buffer of ``module`` holds NaN/inf."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise error(f"weight {name} holds NaN/inf values")
