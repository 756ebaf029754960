"""``--finetune gradual``: the head trains alone for ``--freeze-epochs``, then the whole network with discriminative
learning rates and a fresh schedule, in ONE Lightning fit: one epoch count, one history, one best epoch, one early
stopping, one checkpoint series, one artifact.

- The head phase trains on cached backbone features when the options allow it (:func:`head_phase_feature_block`:
  the conditions of ``--finetune head``'s cache, plus MixUp/CutMix, which mix decoded images): the backbone runs
  once per image (or is read from the feature cache) instead of every step. :class:`HeadPhaseData` serves those
  features for the head epochs and images from the first full epoch on (training and validation; the test pass and
  calibration always see images, since the backbone has moved by then).
- :class:`GradualUnfreeze` unfreezes the backbone at the first full epoch, rebuilds the optimiser (a fresh
  schedule), and has Lightning fetch that epoch's loaders again (images now).
- Resume: a checkpoint of a head epoch resumes the head phase (on the same cached features); a checkpoint of the
  last head epoch starts the full phase with a fresh optimiser (its head-only optimiser state is dropped); a later
  one resumes the full phase as it was. No features are extracted once the head phase is over.
- :func:`features_or_images`: what a run trains on (cached features for head-only runs and a gradual head phase,
  images otherwise), given the option sections by :mod:`dogbreed.training.run`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch.utils.data import DataLoader

from dogbreed.config.sections import CacheOptions, OptimisationOptions, RecipeOptions, RuntimeOptions
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.training.head_training import (
    FeatureDataModule,
    FeatureHeadClassifier,
    build_feature_data,
    default_cache_dir,
    uses_feature_cache,
)
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.setup import resolve_precision

logger = logging.getLogger(__name__)


def head_phase_feature_block(cache: CacheOptions, recipe: RecipeOptions) -> str | None:
    """Why the head phase of a gradual run cannot train on cached features (None: it can)."""
    if cache.cached_views < 1:
        return "--cached-views 0 turns the feature cache off"
    if recipe.mixes_batches:
        return "--mixup-alpha/--cutmix-alpha mix decoded images, which cached features are not"
    return None


class HeadPhaseData(pl.LightningDataModule):
    """Cached features for the first ``freeze_epochs`` epochs (training and validation), images afterwards; the
    test split always as images. ``feature_data`` is deliberately not called ``features``: calibration reads the
    ``features`` of a head-only run as the final network's inputs, which these stop being after the head phase."""

    def __init__(self, images: DogBreedDataModule, feature_data: FeatureDataModule, freeze_epochs: int) -> None:
        super().__init__()
        self.images, self.feature_data, self.freeze_epochs = images, feature_data, freeze_epochs

    def serves_features(self) -> bool:
        """True during the head phase (and for a Trainer-less look, e.g. before fit)."""
        trainer = self.trainer
        return trainer is None or (not trainer.testing and trainer.current_epoch < self.freeze_epochs)

    def setup(self, stage: str) -> None:
        self.images.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return (self.feature_data if self.serves_features() else self.images).train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return (self.feature_data if self.serves_features() else self.images).val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.images.test_dataloader()


class GradualUnfreeze(Callback):
    """The head trains alone for ``freeze_epochs``, then the whole network with discriminative learning rates
    (backbone: lr x backbone-lr-scale) and a fresh schedule: the optimiser is rebuilt through Lightning's
    ``strategy.setup_optimizers`` (the fine-tuning policy of Lightning's ``BaseFinetuning``, whose added param
    group would keep the head's decayed schedule).

    ``start_epoch``: epochs a resumed run has done. Lightning builds the optimiser before it restores the epoch, so
    the backbone is unfrozen at set-up when the checkpoint is past the head phase; a checkpoint of the last head
    epoch holds the head-only optimiser, which is dropped (the full phase starts with a fresh one anyway).
    With :class:`HeadPhaseData`, the loaders are fetched again at the switch (features -> images).
    """

    def __init__(self, freeze_epochs: int, start_epoch: int = 0, emit: Callable[[str], None] | None = None) -> None:
        self.freeze_epochs, self.start_epoch = freeze_epochs, start_epoch
        self.emit = emit or (lambda line: print(line, flush=True))
        self._announce_at_start = False  # resumed from the last head epoch: the switch line is still due
        self._reload_setting: int | None = None  # the Trainer's own, while the switch forces a reload
        self._rng_at_switch: torch.Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            pl_module.set_backbone_trainable(self.start_epoch >= self.freeze_epochs)  # type: ignore[operator]

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        """Called before Lightning restores the optimiser: drop the head phase's (one param group) when the full
        phase starts now, so the fresh optimiser and schedule stay."""
        states = checkpoint.get("optimizer_states") or []
        head_only = bool(states) and len(states[0].get("param_groups", [])) == 1
        if self.start_epoch >= self.freeze_epochs and head_only:
            checkpoint["optimizer_states"], checkpoint["lr_schedulers"] = [], []
            self._announce_at_start = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._rng_at_switch is not None:
            # Lightning makes a reloaded epoch's loader iterator twice (FitLoop.setup_data, then the epoch loop); each
            # draws a seed. Undo the first draw, so the epoch sees the random state a run resumed here sees.
            torch.set_rng_state(self._rng_at_switch)
            self._rng_at_switch = None
        if self._announce_at_start and trainer.current_epoch == self.freeze_epochs:
            self._announce_at_start = False
            self._announce(trainer)
        if trainer.current_epoch < self.freeze_epochs or not pl_module.backbone_frozen:
            return
        pl_module.set_backbone_trainable(True)  # type: ignore[operator]
        trainer.strategy.setup_optimizers(trainer)
        self._announce(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """After the last head epoch on features: the next epoch's loaders must be fetched again (images)."""
        # Both Trainer attributes are set at run time (Lightning's data connector), unknown to the type checker.
        datamodule = getattr(trainer, "datamodule", None)
        if isinstance(datamodule, HeadPhaseData) and trainer.current_epoch + 1 == self.freeze_epochs:
            self._reload_setting = getattr(trainer, "reload_dataloaders_every_n_epochs", 0)
            setattr(trainer, "reload_dataloaders_every_n_epochs", 1)
            self._rng_at_switch = torch.get_rng_state()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Both loaders of the first full epoch are fetched by now (training first): back to the Trainer's setting."""
        if self._reload_setting is not None and not trainer.sanity_checking \
                and trainer.current_epoch >= self.freeze_epochs:
            setattr(trainer, "reload_dataloaders_every_n_epochs", self._reload_setting)
            self._reload_setting = None

    def _announce(self, trainer: pl.Trainer) -> None:
        groups = trainer.optimizers[0].param_groups
        if trainer.is_global_zero:
            self.emit(f"gradual fine-tuning: from epoch {trainer.current_epoch + 1} the whole network trains "
                      f"(head lr {groups[0]['lr']:.3g}, backbone lr {groups[-1]['lr']:.3g}, a fresh schedule)")


# --- where the run's features come from (training.run hands over the sections) --------------------------------

def feature_cache_dir(opt: OptimisationOptions, cache: CacheOptions, recipe: RecipeOptions,
                      output_dir: Path) -> Path | None:
    """Where this run's feature cache lives; None when it trains on images only."""
    gradual_on_features = opt.finetune == "gradual" and head_phase_feature_block(cache, recipe) is None
    if not (uses_feature_cache(cache, opt.finetune) or gradual_on_features):
        return None
    return default_cache_dir(cache, output_dir)


def extracts_features(opt: OptimisationOptions, cache: CacheOptions, recipe: RecipeOptions, output_dir: Path,
                      start_epoch: int) -> bool:
    """Whether this run reads or builds the feature cache (a gradual run resumed past its head phase does not)."""
    if feature_cache_dir(opt, cache, recipe, output_dir) is None:
        return False
    return opt.finetune != "gradual" or start_epoch < opt.freeze_epochs


def say_where_the_head_phase_trains(freeze: int, cache: CacheOptions, recipe: RecipeOptions,
                                    start_epoch: int) -> None:
    blocked = head_phase_feature_block(cache, recipe)
    if start_epoch >= freeze:
        logger.info("--finetune gradual: resumed after the head phase (%d epoch(s)): no backbone features needed",
                    freeze)
    elif blocked is not None:
        logger.info("--finetune gradual: the head phase (%d epoch(s)) trains on images, not on cached backbone "
                    "features: %s", freeze, blocked)
    else:
        logger.info("--finetune gradual: the head phase (%d epoch(s)) trains on cached backbone features, then the "
                    "whole network on images", freeze)


def features_or_images(datamodule: DogBreedDataModule, model: DogBreedClassifier, *, opt: OptimisationOptions,
                       cache: CacheOptions, recipe: RecipeOptions, runtime: RuntimeOptions, output_dir: Path,
                       start_epoch: int = 0) -> tuple[pl.LightningDataModule, DogBreedClassifier]:
    """Head-only runs train on cached features, and so does a gradual run's head phase (when the options allow it
    and the run has not resumed past it); ``--compile`` compiles the network in place (``nn.Module.compile`` keeps
    the state_dict keys, so the artifact is unchanged)."""
    head_only = uses_feature_cache(cache, opt.finetune)
    if opt.finetune == "gradual":
        say_where_the_head_phase_trains(opt.freeze_epochs, cache, recipe, start_epoch)
    features = None
    if extracts_features(opt, cache, recipe, output_dir, start_epoch):  # before compiling: it runs a network copy
        features = build_feature_data(datamodule, model.net, cache=cache, output_dir=output_dir, seed=opt.seed,
                                      batch_size=opt.batch_size, accelerator=runtime.accelerator,
                                      precision=resolve_precision(runtime.precision, runtime.accelerator),
                                      # gradual: the test pass sees the final network, on images
                                      splits=None if head_only else ("train", "valid"))
    if head_only:
        if runtime.compile:
            logger.info("--compile ignored: with the feature cache only the linear head runs")
        return features, FeatureHeadClassifier.from_classifier(model)  # type: ignore[return-value]
    if runtime.compile:
        model.net.compile()
    if features is not None:
        return HeadPhaseData(datamodule, features, opt.freeze_epochs), model
    return datamodule, model
