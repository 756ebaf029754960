"""The one line a signalled run ends with: what was saved, what was not, and how to go on."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from dogbreed.config.options import TrainConfig
from dogbreed.core.constants import CONFIG_FILENAME
from dogbreed.core.errors import RunInterrupted
from dogbreed.training.checkpoints import ResumePlan, own_checkpoints


def _checkpoint_part(config: TrainConfig) -> str:
    if config.checkpoint_dir is None:
        return "no checkpoint was written (pass --checkpoint-dir to make a run resumable)"
    saved = own_checkpoints(config.checkpoint_dir)
    if not saved:
        return f"no epoch completed, so {config.checkpoint_dir} holds no checkpoint of this run yet"
    epoch, path = saved[0]
    epochs = f"epochs 1-{epoch}" if epoch > 1 else "epoch 1"
    return (f"checkpoint {path} holds {epochs}: run the same command to resume "
            f"from epoch {epoch + 1}" if epoch < config.epochs else
            f"checkpoint {path} holds all {epoch} epochs: run the same command to test and export")


def interrupted(signum: int, config: TrainConfig, trainer: pl.Trainer | None, history: list[dict[str, Any]],
                resume: ResumePlan, *, exported: bool = False) -> RunInterrupted:
    """:class:`RunInterrupted` for a run stopped by ``signum``, its message saying what was and was not saved."""
    name = signal.Signals(signum).name
    done = len(history)
    if exported:
        return RunInterrupted(signum, f"{name} received while exporting: the model in {config.model_dir} and the "
                                      f"reports in {config.output_dir} were completed first; the run is finished")
    if trainer is None:
        phase = "before training started"
    elif done >= config.epochs:
        phase = f"after all {config.epochs} epochs (while testing)"
    else:
        phase = f"in epoch {done + 1} of {config.epochs}"
    model_dir = Path(config.model_dir)
    previous = " (it still holds an earlier run's model)" if (model_dir / CONFIG_FILENAME).is_file() else ""
    return RunInterrupted(signum, f"stopped by {name} {phase}: nothing was exported to {model_dir}{previous}; "
                                  f"{_checkpoint_part(config)}")
