"""Per-epoch checkpoints and resume: a spot job restarted from its checkpoint dir loses at most one epoch."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.ckpt"


class EpochCheckpoint(Callback):
    """Writes ``last.ckpt`` at the end of every training epoch, atomically (temp file + rename).

    A job killed while writing keeps the previous complete checkpoint.
    """

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        partial = self.checkpoint_dir / f".{LAST_CHECKPOINT}.partial"
        # collective: every rank calls it, rank 0 writes; weights_only=False (the full state, for resuming)
        # said explicitly, or Lightning logs that it defaulted to it after every epoch.
        trainer.save_checkpoint(partial, weights_only=False)
        if trainer.is_global_zero:
            os.replace(partial, self.checkpoint_dir / LAST_CHECKPOINT)
        trainer.strategy.barrier("dogbreed-checkpoint")


def newest_checkpoint(checkpoint_dir: Path | None) -> Path | None:
    """The most recent complete ``*.ckpt`` in the dir (partial files are ignored), or None."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return None
    candidates = [p for p in Path(checkpoint_dir).glob("*.ckpt") if not p.name.startswith(".")]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)
