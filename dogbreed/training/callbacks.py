"""The training layer's Lightning callbacks, one class per concern, options in ``__init__``:

- :class:`EpochHistory`: one record per epoch, the printed epoch line; part of checkpoints (``state_dict``).
- :class:`EpochProgressBar`: Lightning's bar counting epochs from 1, as the ``epoch=N`` lines do, kept apart
  from the lines a terminal keeps (epoch lines at column 0, one bar left after training, none after an error).
- :class:`DataWaitTimer` / :class:`DataWaitReport`: how long training waits for its input, and the line every
  image-fed run prints at the end.
- :class:`NonFiniteGuard`: stops a run whose loss or weights became NaN/inf.
- :class:`EMAWeights`: the exponential moving average of the weights (the accuracy recipe).

Per-epoch checkpoints are a callback too; it lives with the checkpoint rules in
:mod:`dogbreed.training.checkpoints`. Adapters add their own (smdebug, profiling, Optuna pruning).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from typing import Any, Callable, Iterator, Mapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, TQDMProgressBar, WeightAveraging
from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf
from torch.optim.swa_utils import get_ema_multi_avg_fn

from dogbreed.core.errors import TrainingDiverged
from dogbreed.training.metric_lines import epoch_line


def stage_values(metrics: Mapping[str, Any], stage: str) -> dict[str, float]:
    """{'val/acc': tensor(0.8)} -> {'val_acc': 0.8} for the given stage."""
    prefix = f"{stage}/"
    return {f"{stage}_{k[len(prefix):]}": float(v) for k, v in metrics.items() if k.startswith(prefix)}


class EpochHistory(Callback):
    """Records one dict per epoch and prints the plain epoch line (rank 0 only; ``emit=None`` with
    ``quiet=True`` records without printing, e.g. inside tuning trials).

    Its history is part of checkpoints, so a resumed run still reports every epoch.
    """

    def __init__(self, emit: Callable[[str], None] | None = None, quiet: bool = False) -> None:
        self.history: list[dict[str, Any]] = []
        self.emit = emit
        self.quiet = quiet

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        record: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        record.update(stage_values(metrics, "train"))
        record.update(stage_values(metrics, "val"))
        record["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None
        self.history.append(record)
        if trainer.is_global_zero and not self.quiet:
            line = epoch_line(record["epoch"], record)
            self.emit(line) if self.emit else print_above_bar(trainer, line)


def print_above_bar(trainer: pl.Trainer, line: str) -> None:
    """Print a line on stdout at column 0: with a live bar, tqdm lifts the bar, prints the line and redraws the
    bar below it (a plain print would continue the bar's line)."""
    bar = trainer.progress_bar_callback
    if isinstance(bar, TQDMProgressBar) and bar.is_enabled and bar._train_progress_bar is not None \
            and not bar.train_progress_bar.disable:
        bar.train_progress_bar.write(line, file=sys.stdout)
        sys.stdout.flush()
    else:
        print(line, flush=True)


# --- what the console shows ---------------------------------------------------------------------------------------

# Lightning's fit loop warns about modules in eval mode; a frozen backbone keeps its BatchNorm in eval mode on
# purpose (running statistics must not drift), so on head-only runs the warning describes intended behaviour.
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, but ``Epoch 1/5`` for the first epoch of five (Lightning shows ``Epoch 0``), without
    Lightning's logger version (``v_num=0``: nothing a user chose), a test bar that goes away when testing ends
    (one finished bar stays on screen: the last epoch's), and every bar closed when the run stops on an error or
    a signal, before the ``interrupted:`` line (a bar left open is redrawn when the process exits)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items

    def init_test_tqdm(self) -> Any:
        bar = super().init_test_tqdm()
        bar.leave = False
        return bar

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        for bar in (self._val_progress_bar, self._test_progress_bar, self._predict_progress_bar):
            if bar is not None and not bar.disable:
                bar.leave = False
                bar.close()
        if self._train_progress_bar is not None and not self._train_progress_bar.disable:
            self._train_progress_bar.close()  # the bar where the run stopped stays, above the message
        sys.stdout.flush()

    def on_train_start(self, *args: Any) -> None:
        """A bar per fit: Lightning calls this hook again when it fetches the loaders again (gradual fine-tuning's
        switch from cached features to images), where a second bar would leave the first one on screen."""
        bar = self._train_progress_bar
        if bar is None or bar.disable:
            super().on_train_start(*args)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        # Lightning's own steps (tqdm_progress.py), with our description set before the bar is redrawn:
        # calling super() would draw "Epoch 0" first.
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
                                                refresh=False)
        self.train_progress_bar.reset()
        self.train_progress_bar.total = convert_inf(self.total_train_batches)
        self.train_progress_bar.initial = 0


@contextlib.contextmanager
def frozen_batchnorm_expected(backbone_frozen: bool) -> Iterator[None]:
    """Around ``trainer.fit`` of a head-only run: silence the eval-mode warning for this call only (never with a
    process-wide filter)."""
    if not backbone_frozen:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING)
        yield


# --- data wait ----------------------------------------------------------------------------------------------------
# A step runs from one batch end to the next; the wait is the part before ``on_train_batch_start``: fetching the
# next batch from the DataLoader (decoding in-process with 0 workers) and moving it to the device.

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


# --- non-finite losses and weights --------------------------------------------------------------------------------

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


# --- the accuracy recipe's weight average -------------------------------------------------------------------------

class EMAWeights(WeightAveraging):
    """EMA of every parameter and buffer (BatchNorm statistics too), updated after each optimiser step:
    ``ema = decay * ema + (1 - decay) * weights`` (the first update copies the weights). Built on Lightning's
    ``WeightAveraging`` over ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``.

    Lightning swaps the average in for validation and copies it into the model when training ends, so the
    test pass, calibration and the exported artifact all use the averaged weights; checkpoints keep both.
    """

    def __init__(self, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(use_buffers=True, multi_avg_fn=get_ema_multi_avg_fn(decay))
        self.decay = decay

