"""Which epoch's weights a run keeps, and when it stops (``--monitor``, ``--early-stopping``, ``--max-time``).

- :class:`BestEpoch` watches the ``--monitor`` metric after each epoch's validation and keeps a copy of the weights
  that were validated (the EMA weights when ``--ema-decay`` is on: Lightning swaps them in for validation). After
  fit, :meth:`BestEpoch.restore` puts them back into the network, so the test pass, calibration and the exported
  artifact all use the best epoch, as fastai's ``SaveModelCallback``, timm's ``model_best`` and Hugging Face's
  ``load_best_model_at_end`` do. Its state (best epoch, value, weights) is part of checkpoints: a resumed run
  still knows its best epoch.
- :class:`EarlyStop` is Lightning's ``EarlyStopping`` on the same metric, which also says when it stopped.
- ``--max-time`` is Lightning's own ``max_time`` Trainer argument (its ``Timer`` callback); :func:`stop_lines` says
  when the budget ended training.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any, Callable, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, Timer
from pytorch_lightning.trainer.states import RunningStage, TrainerFn

from dogbreed.config.sections import MONITORS, StoppingOptions, max_time_seconds
from dogbreed.core.network import HEAD_PREFIX

logger = logging.getLogger(__name__)


def logged_name(monitor: str) -> str:
    """``val_acc`` -> ``val/acc``: the name the module logs the metric under."""
    stage, _, metric = monitor.partition("_")
    return f"{stage}/{metric}"


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


class BestEpoch(Callback):
    """Keeps the weights of the epoch with the best ``monitor`` (``val_acc``, ``val_loss`` or ``val_f1_macro``).

    The candidate is copied at the end of each validation, while the validated weights are in place; it must
    therefore come before :class:`~dogbreed.training.callbacks.EMAWeights` in the callback list (which swaps the
    raw weights back in at the same hook). When the backbone is frozen only the head is copied, unless
    ``whole_network`` (``--finetune gradual``: the backbone trains later, so a head epoch's best weights must keep
    the backbone they were validated with).
    """

    def __init__(self, monitor: str = "val_acc", whole_network: bool = False) -> None:
        if monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {tuple(MONITORS)}, got {monitor!r}")
        self.monitor, self.mode = monitor, MONITORS[monitor]
        self.whole_network = whole_network
        self.epoch = 0
        self.value: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None
        self._candidate: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return f"BestEpoch{{'monitor': '{self.monitor}'}}"

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "epoch": self.epoch, "value": self.value, "weights": self.weights}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch = int(state_dict.get("epoch", 0))
        self.value = state_dict.get("value")
        self.weights = state_dict.get("weights")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        net = cast(torch.nn.Module, pl_module.net)
        head_only = not self.whole_network and not any(p.requires_grad for name, p in net.named_parameters()
                                                       if not name.startswith(HEAD_PREFIX))
        self._candidate = {name: tensor.detach().to("cpu", copy=True) for name, tensor in net.state_dict().items()
                           if not head_only or name.startswith(HEAD_PREFIX)}

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(logged_name(self.monitor))
        candidate, self._candidate = self._candidate, None
        if value is None or candidate is None or not math.isfinite(float(value)):
            return  # no validation ran this epoch
        if _better(float(value), self.value, self.mode):
            self.epoch, self.value, self.weights = trainer.current_epoch + 1, float(value), candidate

    def restore(self, net: torch.nn.Module) -> bool:
        """Load the best epoch's weights into ``net``; False (nothing changed) when no epoch was validated."""
        if self.weights is None:
            return False
        missing = set(self.weights) - set(net.state_dict())
        if missing:
            raise RuntimeError(f"the best epoch's weights do not fit this network ({sorted(missing)[:3]}...)")
        net.load_state_dict(self.weights, strict=False)
        return True

    def record(self) -> dict[str, Any] | None:
        """``{"epoch", "monitor", "value"}`` for metrics.json and the artifact; None when nothing was validated."""
        if self.value is None:
            return None
        return {"epoch": self.epoch, "monitor": self.monitor, "value": self.value}

    def summary_lines(self) -> list[str]:
        if self.value is None:
            return ["best epoch: none (no epoch was validated): the last weights were exported"]
        return [f"best epoch: {self.epoch} ({self.monitor}={self.value:.4f}): its weights were tested and exported"]


class EarlyStop(EarlyStopping):
    """Lightning's ``EarlyStopping`` on ``monitor`` with ``patience`` epochs, saying so when it stops the run."""

    def __init__(self, monitor: str, patience: int, emit: Callable[[str], None] | None = None) -> None:
        super().__init__(monitor=logged_name(monitor), mode=MONITORS[monitor], patience=patience, verbose=False)
        self.option = monitor
        self.emit = emit or (lambda line: print(line, flush=True))
        self.line: str | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopped_epoch <= 0:
            return
        best = float(self.best_score)
        self.line = (f"early stopping: {self.option} did not improve for {self.patience} epoch(s) (best "
                     f"{best:.4f}): stopped after epoch {self.stopped_epoch + 1} of {trainer.max_epochs}")
        if trainer.is_global_zero:
            self.emit(self.line)

    def summary_lines(self) -> list[str]:
        return [self.line] if self.line is not None else []


class TimeBudget(Timer):
    """Lightning's ``Timer``, what ``Trainer(max_time=...)`` installs (checked after every step), saying so when
    the budget stopped training. ``seconds``: the parsed ``--max-time``."""

    def __init__(self, budget: str, seconds: int, emit: Callable[[str], None] | None = None) -> None:
        super().__init__(duration=timedelta(seconds=seconds), interval="step", verbose=False)
        self.budget = budget
        self.emit = emit or (lambda line: print(line, flush=True))
        self.stopped_in: int | None = None  # the epoch (from 1) in which the budget ran out
        self.line: str | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The clock starts once per fit: Lightning calls this hook again when it fetches the loaders again (gradual
        fine-tuning's switch from cached features to images), which would restart the budget."""
        if self.start_time(RunningStage.TRAINING) is None:
            super().on_train_start(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, *args, **kwargs)
        remaining = self.time_remaining()
        if self.stopped_in is None and remaining is not None and remaining <= 0:
            self.stopped_in = trainer.current_epoch + 1

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopped_in is None:
            return
        self.line = (f"time budget: --max-time {self.budget} spent in epoch {self.stopped_in} of "
                     f"{trainer.max_epochs}: training stopped")
        if trainer.is_global_zero:
            self.emit(self.line)

    def summary_lines(self) -> list[str]:
        return [self.line] if self.line is not None else []


def stopping_callbacks(stopping: StoppingOptions, *, backbone_trains_later: bool = False) -> list[Callback]:
    """The best epoch always (``backbone_trains_later``: see :class:`BestEpoch`'s ``whole_network``); early stopping
    and the time budget when asked for."""
    callbacks: list[Callback] = [BestEpoch(stopping.monitor, whole_network=backbone_trains_later)]
    if stopping.early_stopping > 0:
        callbacks.append(EarlyStop(stopping.monitor, stopping.early_stopping))
    if stopping.max_time:
        callbacks.append(TimeBudget(stopping.max_time, max_time_seconds(stopping.max_time) or 0))
    return callbacks


def best_epoch(trainer: pl.Trainer) -> BestEpoch | None:
    """The run's :class:`BestEpoch` callback, if it has one."""
    return next((c for c in trainer.callbacks if isinstance(c, BestEpoch)), None)  # type: ignore[attr-defined]
