"""What a run can do before it trains: show a batch of its inputs (``--show-batch``) and find its learning rate.

``--show-batch`` draws one shuffled, augmented training batch exactly as the network will see it into
``batch.png``, under a forked RNG, so the run trains the same with and without it.

The learning-rate finder (``--lr-find``, ``--lr auto``): Lightning's ``Tuner.lr_find`` on the run's own model and
data (cached features for head-only runs), the plot ``lr_find.png`` and the suggested ``--lr``.

The finder trains for ``num_training`` steps with a rising learning rate (every param group at the same rate) and
suggests the rate at the steepest fall of the loss; Lightning restores the model's weights afterwards, so the run
that follows starts from where it would have without the finder.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.tuner import Tuner

from dogbreed.core.errors import ConfigError
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.training.plots import BATCH_SHOWN, plot_batch, save_figure

logger = logging.getLogger(__name__)

LR_FIND_FILENAME = "lr_find.png"
FINDER_STEPS = 100  # Lightning's default number of steps
FINDER_RANGE = (1e-7, 1.0)


def show_batch(images: DogBreedDataModule, output_dir: Path) -> str:
    """Write ``batch.png`` from the first training batch; the line saying where it is."""
    with torch.random.fork_rng(devices=[]):
        inputs, labels = next(iter(images.train_dataloader()))
    pre = images.preprocessing
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    path = plot_batch(Path(output_dir), inputs, labels, images.class_names, mean=pre.mean, std=pre.std)
    return (f"show batch: {min(len(inputs), BATCH_SHOWN)} augmented training inputs (--augment {pre.augment}, "
            f"{pre.image_size} px) in {path}")


@dataclass(frozen=True)
class LRSuggestion:
    lr: float
    plot: Path
    steps: int  # the steps the finder ran (it stops early when the loss diverges)

    def line(self) -> str:
        return f"lr finder: suggested --lr {self.lr:.3g} ({self.steps} steps; the curve is in {self.plot})"


def find_lr(make_trainer: Callable[[str], pl.Trainer], model: pl.LightningModule,
            datamodule: pl.LightningDataModule, *, output_dir: Path, steps: int = FINDER_STEPS) -> LRSuggestion:
    """Run ``Tuner.lr_find`` with ``make_trainer(scratch_dir)`` (a throwaway Trainer: no logger, no checkpoints, no
    epoch limit: the finder runs ``steps`` steps however small the data; it saves and restores the weights in
    ``scratch_dir``) and plot the curve into ``output_dir/lr_find.png``.
    :class:`ConfigError` when the loss curve gives no suggestion."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if float(model.hparams.get("lr", 1.0)) <= 0:  # --lr auto: any valid rate to build the optimiser with
        model.hparams["lr"] = FINDER_RANGE[0]
    with tempfile.TemporaryDirectory(prefix="dogbreed-lr-find-") as scratch:
        finder = Tuner(make_trainer(scratch)).lr_find(model, datamodule=datamodule, min_lr=FINDER_RANGE[0],
                                        max_lr=FINDER_RANGE[1], num_training=steps, update_attr=False)
    suggestion = finder.suggestion() if finder is not None else None
    if finder is None or suggestion is None:
        raise ConfigError(f"the learning-rate finder found no suggestion in {steps} steps (too few batches?): "
                          "give --lr a number")
    figure = finder.plot(suggest=True, show=False)
    if figure is None:
        raise RuntimeError("Lightning's LR finder plot returned no figure")
    figure.axes[0].set_title(f"learning-rate finder: suggested --lr {suggestion:.3g}")
    plot = save_figure(figure, output_dir / LR_FIND_FILENAME)
    return LRSuggestion(lr=float(suggestion), plot=plot, steps=len(finder.results.get("lr", [])))
