"""What a run shows on the console besides the metric lines: Lightning's progress bar counting epochs from 1
(as the ``epoch=N`` lines do), and the Lightning warnings that do not apply to our runs silenced where they
arise (never with a process-wide filter)."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import convert_inf

# Lightning's fit loop warns about modules in eval mode; a frozen backbone keeps its BatchNorm in eval mode on
# purpose (running statistics must not drift), so on head-only runs the warning describes intended behaviour.
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, but ``Epoch 1/5`` for the first epoch of five (Lightning shows ``Epoch 0``)."""

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
    """Around ``trainer.fit`` of a head-only run: silence the eval-mode warning for this call only."""
    if not backbone_frozen:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING)
        yield
