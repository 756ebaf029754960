"""One training run, as a checklist of phases: data, model, callbacks, trainer, fit, test, calibrate, export.

:func:`train` runs them (``_Run.execute`` reads as the list); the builders below make each phase's objects. This
is the one module of the training layer that holds the whole :class:`TrainConfig`: each builder hands its
collaborator the section it needs (``config.tracking`` to the logger, ``config.calibration`` to calibration...).
Phases are timed for the summary; before any data is read, every output dir is checked writable and the
accelerator present. SIGTERM, SIGINT or SIGHUP stop the run with :class:`RunInterrupted` (nothing exported); a
NaN loss or weight with :class:`TrainingDiverged`.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.config.sections import AUTO_LR, default_backbone_lr_scale
from dogbreed.core.errors import RunInterrupted, TrainingDiverged
from dogbreed.core.network import apply_backbone_weights, load_backbone_state_dict
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.auto_split import AutoSplit, write_splits_json
from dogbreed.data.datamodule import DogBreedDataModule, LoaderSettings
from dogbreed.data.progress import is_rank_zero
from dogbreed.data.sources import resolve_splits
from dogbreed.data.splits import SplitDirs
from dogbreed.training.before_training import find_lr, show_batch
from dogbreed.training.callbacks import (
    DataWaitReport,
    EMAWeights,
    EpochHistory,
    EpochProgressBar,
    NonFiniteGuard,
    check_finite_weights,
    frozen_batchnorm_expected,
)
from dogbreed.training.checkpoints import (
    EpochCheckpoint,
    FinalNameCheckpointIO,
    ResumePlan,
    interrupted,
    plan_resume,
    run_fingerprint,
)
from dogbreed.training.evaluation import ServingFit, calibrate_run, collect_test_outcome, run_test, summary_line
from dogbreed.training.export import export_run
from dogbreed.training.gradual import (
    GradualUnfreeze,
    extracts_features,
    feature_cache_dir,
    features_or_images,
)
from dogbreed.training.guards import SignalGuard, critical_section
from dogbreed.training.head_training import (
    run_counts,
    uses_feature_cache,
)
from dogbreed.training.metric_lines import test_line
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import (
    PhaseTimer,
    RunCounts,
    callback_summary_lines,
    run_places,
    summary_lines,
    timing_record,
)
from dogbreed.training.runtime import Runtime
from dogbreed.training.selection import best_epoch, stopping_callbacks
from dogbreed.training.setup import (
    build_logger,
    check_accelerator,
    check_output_locations,
    output_locations,
    resolve_precision,
    run_loader_settings,
)
from dogbreed.training.trust import assess_run

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_dir: Path
    output_dir: Path
    class_names: list[str]
    history: list[dict[str, Any]]
    test_metrics: dict[str, float]
    timing: dict[str, float] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)  # the end-of-run summary lines (printed by the CLI)


# --- what each phase builds ---------------------------------------------------------------------------------------

def build_datamodule(config: TrainConfig, splits: SplitDirs, num_workers: int,
                     loader: LoaderSettings | None = None) -> DogBreedDataModule:
    """``loader`` (workers, pinned memory, prefetch: :func:`run_loader_settings`) overrides ``num_workers``."""
    data = config.data
    return DogBreedDataModule(
        splits,
        preprocessing=Preprocessing(image_size=data.image_size, crop_scale=(data.crop_scale, 1.0),
                                    crop_min_side=data.crop_min_side, augment=data.augment,
                                    random_erasing=data.random_erasing),
        batch_size=config.optimisation.batch_size,
        num_workers=num_workers,
        skip_bad_images=data.skip_bad_images,
        allow_duplicates=data.allow_duplicates,
        loader=loader,
        auto_split=AutoSplit(valid_pct=data.valid_pct, test_pct=data.test_pct, seed=config.optimisation.seed),
    )


def build_model(config: TrainConfig, num_classes: int) -> DogBreedClassifier:
    opt, recipe = config.optimisation, config.recipe
    model = DogBreedClassifier(
        num_classes=num_classes,
        lr=opt.lr,
        weight_decay=opt.weight_decay,
        finetune=opt.finetune,
        backbone_lr_scale=(default_backbone_lr_scale(opt.weights) if opt.backbone_lr_scale is None
                           else opt.backbone_lr_scale),  # resolved when the section was made: None never gets here
        label_smoothing=opt.label_smoothing,
        mixup_alpha=recipe.mixup_alpha,
        cutmix_alpha=recipe.cutmix_alpha,
        warmup_epochs=opt.warmup_epochs,
        freeze_epochs=opt.freeze_epochs if opt.finetune == "gradual" else 0,
    )
    state = load_backbone_state_dict(opt.weights)
    if state is not None:
        apply_backbone_weights(model.net, state)
    elif opt.finetune == "head":  # the CLI refuses this; library callers get told
        logger.warning("weights none with finetune head trains a linear head on a random frozen ResNet50: "
                       "expect chance-level accuracy (use finetune full to train from scratch)")
    return model


def prepare_for_speed(config: TrainConfig, datamodule: DogBreedDataModule, model: DogBreedClassifier,
                      start_epoch: int = 0) -> tuple[pl.LightningDataModule, DogBreedClassifier]:
    """Cached features (head-only, a gradual head phase) or ``--compile``: see
    :func:`dogbreed.training.gradual.features_or_images`."""
    return features_or_images(datamodule, model, opt=config.optimisation, cache=config.cache, recipe=config.recipe,
                              runtime=config.runtime, output_dir=config.outputs.output_dir, start_epoch=start_epoch)


def _cache_dir(config: TrainConfig) -> Path | None:
    return feature_cache_dir(config.optimisation, config.cache, config.recipe, config.outputs.output_dir)


def build_callbacks(config: TrainConfig, fingerprint: Mapping[str, Any] | None = None,
                    start_epoch: int = 0) -> list[Callback]:
    """The training layer's own callbacks beyond EpochHistory (adapters pass theirs to :func:`train`). Order
    matters: the best epoch and early stopping update their state before the epoch's checkpoint saves it, and the
    best epoch copies the validated weights before EMA swaps the raw ones back."""
    gradual = config.optimisation.finetune == "gradual"
    callbacks: list[Callback] = [NonFiniteGuard(config.optimisation.lr),
                                 *stopping_callbacks(config.stopping, backbone_trains_later=gradual)]
    if config.checkpoints.checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(config.checkpoints.checkpoint_dir, fingerprint or {}))
    if config.recipe.ema_decay > 0:
        callbacks.append(EMAWeights(config.recipe.ema_decay))
    if gradual:
        callbacks.append(GradualUnfreeze(config.optimisation.freeze_epochs, start_epoch))
    return callbacks


def trainer_settings(config: TrainConfig, runtime: Runtime | None = None) -> dict[str, Any]:
    """Trainer keyword arguments derived from the config and where the run executes (default: this machine)."""
    runtime = runtime or Runtime.local()
    settings: dict[str, Any] = dict(
        max_epochs=config.optimisation.epochs,
        accumulate_grad_batches=config.optimisation.accumulate_grad_batches,
        accelerator=config.runtime.accelerator,
        devices="auto",
        logger=build_logger(config.tracking, config.outputs.output_dir),
        enable_checkpointing=False,
        enable_progress_bar=runtime.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=1,
    )
    settings.update(runtime.trainer_settings)  # devices / num_nodes / strategy under torchrun or SageMaker
    # auto: bf16-mixed on bf16 GPUs, else 32-true
    settings["precision"] = resolve_precision(config.runtime.precision, config.runtime.accelerator)
    if config.checkpoints.checkpoint_dir is not None:
        settings["plugins"] = [FinalNameCheckpointIO()]  # epoch=N.ckpt written under its final name
    return settings


def build_trainer(config: TrainConfig, callbacks: list[Callback], *, runtime: Runtime | None = None,
                  **overrides: Any) -> pl.Trainer:
    kwargs = trainer_settings(config, runtime)
    callbacks = list(callbacks)
    if kwargs.get("enable_progress_bar") and not any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks):
        callbacks.append(EpochProgressBar())
    kwargs["callbacks"] = callbacks
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


# --- the run ------------------------------------------------------------------------------------------------------

def train(config: TrainConfig, *, splits: SplitDirs | None = None, runtime: Runtime | None = None,
          extra_callbacks: list[Callback] | None = None, test: bool = True, epoch_lines: bool = True,
          **trainer_overrides: Any) -> TrainResult:
    """Train, test and export. ``splits`` defaults to what the config points at; ``runtime`` to this machine.

    Adapters extend a run through ``extra_callbacks`` and Trainer keyword arguments (e.g. ``profiler=``).
    ``test=False`` skips the test split (tuning trials); ``epoch_lines=False`` records epochs without printing.
    """
    check_accelerator(config.runtime.accelerator)
    check_output_locations(output_locations(config.outputs, checkpoint_dir=config.checkpoints.checkpoint_dir,
                                            debug_dir=config.diagnostics.debug_dir,
                                            cache_dir=_cache_dir(config),
                                            profile_dir=config.diagnostics.profile_dir_for(config.outputs.output_dir)
                                            if config.diagnostics.profiler else None))
    with SignalGuard() as guard:
        run = _Run(config, runtime or Runtime.local(), test=test, epoch_lines=epoch_lines)
        try:
            return run.execute(splits, extra_callbacks or [], trainer_overrides)
        except BaseException as exc:
            # SignalStop, Lightning's SIGTERMException, or an error caused by the same signal (DataLoader workers
            # killed by the terminal's Ctrl-C): all one interruption.
            if guard.signum is None:
                raise
            raise run.interruption(guard.signum) from exc


class _Run:
    """One run's state as it goes through the phases: what the next phase needs, and what an interruption
    message must know (the trainer, the epochs done, whether the export completed)."""

    def __init__(self, config: TrainConfig, runtime: Runtime, *, test: bool, epoch_lines: bool) -> None:
        self.config, self.runtime, self.test = config, runtime, test
        self.timer = PhaseTimer()
        self.history = EpochHistory(quiet=not epoch_lines)
        self.resume = ResumePlan()
        self.fingerprint: dict[str, Any] = {}
        self.trainer: pl.Trainer | None = None
        self.timing: dict[str, float] = {}  # as recorded in the artifact: the phases before the export
        self.exported = False
        self.notes: list[str] = []  # lines of the looks before training (batch.png, the LR finder)
        self.lr_found: float | None = None  # --lr auto: the finder's suggestion, trained with

    def execute(self, splits: SplitDirs | None, extra_callbacks: list[Callback],
                trainer_overrides: dict[str, Any]) -> TrainResult:
        config = self.config
        pl.seed_everything(config.optimisation.seed, workers=True, verbose=False)
        images, loader = self.data(splits)                                         # 1. data, checked
        model = self.model(images)                                                 # 2. model, resume plan
        extracting = extracts_features(config.optimisation, config.cache, config.recipe, config.outputs.output_dir,
                                       self.resume.epoch)
        with self.timer.phase("feature_cache") if extracting else nullcontext():
            datamodule, model = prepare_for_speed(config, images, model, self.resume.epoch)  # features / compile
        if self.before_training(images, model, datamodule, trainer_overrides):      #    a look, the LR finder
            return TrainResult(model_dir=Path(config.outputs.model_dir), output_dir=Path(config.outputs.output_dir),
                               class_names=images.class_names, history=[], test_metrics={}, summary=self.notes)
        config = self.config
        callbacks = self.callbacks(extra_callbacks, loader)                        # 3. callbacks
        trainer = self.trainer = build_trainer(config, callbacks, runtime=self.runtime,
                                               **trainer_overrides)                # 4. trainer
        self.fit(trainer, model, datamodule)                                       # 5. fit
        counts = run_counts(images, datamodule, epochs=len(self.history.history),
                            resumed_after=self.resume.epoch if self.resume.path is not None else 0)
        test_metrics = self.test_pass(trainer, model, datamodule)                  # 6. test
        fit = self.calibrate(trainer, images, datamodule, model)                   # 7. calibrate
        lines = self.export(trainer, model, images, test_metrics, fit, counts, callbacks)  # 8. export
        return TrainResult(model_dir=Path(config.outputs.model_dir), output_dir=Path(config.outputs.output_dir),
                           class_names=images.class_names, history=self.history.history, test_metrics=test_metrics,
                           timing=self.timing, summary=lines)

    def before_training(self, images: DogBreedDataModule, model: DogBreedClassifier,
                        datamodule: pl.LightningDataModule, trainer_overrides: dict[str, Any]) -> bool:
        """``--show-batch``; ``--lr-find`` (True: stop here) or ``--lr auto`` (train with the suggestion)."""
        config = self.config
        if config.diagnostics.show_batch:
            self.note(show_batch(images, config.outputs.output_dir))
        opt = config.optimisation
        if not (opt.lr_find or opt.lr == AUTO_LR):
            return False
        finder = partial(build_trainer, config, [], runtime=replace(self.runtime, progress_bar=False),
                         **{**trainer_overrides, "logger": False, "max_epochs": -1})  # steps, not epochs
        with self.timer.phase("lr_find"), frozen_batchnorm_expected(model.backbone_frozen):
            suggestion = find_lr(lambda scratch: finder(default_root_dir=scratch), model, datamodule,
                                 output_dir=config.outputs.output_dir)
        self.note(suggestion.line())
        if opt.lr_find:
            self.note(f"--lr-find: stopped before training; train with --lr {suggestion.lr:.3g} (or --lr auto)")
            return True
        self.config, self.lr_found = config.replace(lr=suggestion.lr), suggestion.lr
        model.hparams["lr"] = suggestion.lr
        return False

    def note(self, line: str) -> None:
        self.notes.append(line)
        print(line, flush=True)

    def data(self, splits: SplitDirs | None) -> tuple[DogBreedDataModule, LoaderSettings]:
        """Find the splits (generating or downloading the data is a phase of its own), then check them all."""
        data = self.config.data
        if splits is None:
            fetching = data.demo or data.download
            with self.timer.phase("demo_data" if data.demo else "download") if fetching else nullcontext():
                splits = resolve_splits(data, seed=self.config.optimisation.seed)
        with self.timer.phase("data_check"):
            loader = run_loader_settings(self.config.runtime, self.config.optimisation.batch_size, self.runtime)
            images = build_datamodule(self.config, splits, loader.num_workers, loader)
            images.setup("fit")  # validates the data before any model is built
        if images.split_record is not None and is_rank_zero():  # the lists, before any epoch runs
            write_splits_json(self.config.outputs.output_dir, images.split_record)
        return images, loader

    def model(self, images: DogBreedDataModule) -> DogBreedClassifier:
        """Where the run starts (a checkpoint of the same run, or scratch), then the network."""
        self.fingerprint = run_fingerprint(self.config.to_dict(), images.class_dirs,
                                           {k: d.samples for k, d in images.datasets.items()}, images.split_paths())
        checkpoints = self.config.checkpoints
        self.resume = plan_resume(checkpoints.checkpoint_dir, self.fingerprint,
                                  resume_anyway=checkpoints.resume_anyway, num_classes=images.num_classes)
        return build_model(self.config, images.num_classes)

    def callbacks(self, extra: list[Callback], loader: LoaderSettings) -> list[Callback]:
        callbacks = [self.history, *build_callbacks(self.config, self.fingerprint, self.resume.epoch), *extra]
        config = self.config  # images decoded in (some) steps: was input the bottleneck?
        if not uses_feature_cache(config.cache, config.optimisation.finetune):
            callbacks.append(DataWaitReport(loader.num_workers))
        return callbacks

    def fit(self, trainer: pl.Trainer, model: DogBreedClassifier, datamodule: pl.LightningDataModule) -> None:
        if self.resume.path is not None:
            logger.info("resuming from checkpoint %s (%d epoch(s) done)", self.resume.path, self.resume.epoch)
        with self.timer.phase("fit"), frozen_batchnorm_expected(model.backbone_frozen):
            trainer.fit(model, datamodule=datamodule, ckpt_path=self.resume.path, weights_only=True)
        best = best_epoch(trainer)
        if best is not None and best.restore(model.net):
            logger.info("testing and exporting epoch %d (%s=%.4f)", best.epoch, best.monitor, best.value)

    def test_pass(self, trainer: pl.Trainer, model: DogBreedClassifier,
                  datamodule: pl.LightningDataModule) -> dict[str, float]:
        if not self.test:
            return {}
        with self.timer.phase("test"):
            return run_test(trainer, model, datamodule)

    def calibrate(self, trainer: pl.Trainer, images: DogBreedDataModule, datamodule: pl.LightningDataModule,
                  model: DogBreedClassifier) -> ServingFit:
        """Temperature, abstention threshold, TTA cost (rank 0); then no NaN/inf weight may be exported."""
        fit = ServingFit()
        opt = self.config.optimisation
        if self.test and trainer.is_global_zero:
            with self.timer.phase("calibration"):
                fit = calibrate_run(self.config.calibration, images, datamodule, model.net,
                                    batch_size=opt.batch_size, seed=opt.seed)
        check_finite_weights(model.net, lambda what: TrainingDiverged(f"{what} after training: nothing was exported. "
                                                                      f"Lower --lr (now {opt.lr:g})"))
        return fit

    def export(self, trainer: pl.Trainer, model: DogBreedClassifier, images: DogBreedDataModule,
               test_metrics: dict[str, float], fit: ServingFit, counts: RunCounts,
               callbacks: list[Callback]) -> list[str]:
        """The metric lines, the artifact and reports (rank 0), the summary; a signal now waits until they are
        complete."""
        config = self.config
        self.timing = timing_record(self.timer, counts)
        lines: list[str] = []
        with critical_section():
            if trainer.is_global_zero:
                if self.test:
                    print(test_line({f"test_{k}": v for k, v in test_metrics.items()}), flush=True)
                    if fit.report:
                        print(summary_line(fit.report), flush=True)
                with self.timer.phase("export"):
                    outcome = collect_test_outcome(trainer, model, images) if self.test else None
                    tested, trust = assess_run(test_metrics, outcome, fit, self.history.history, images)
                    hyperparameters = {**config.to_dict(), **({"lr_auto": True} if self.lr_found else {})}
                    reports = export_run(
                        model, images, hyperparameters=hyperparameters, model_dir=config.outputs.model_dir,
                        output_dir=config.outputs.output_dir, checkpoint_dir=config.checkpoints.checkpoint_dir,
                        tta=config.calibration.tta, history=self.history.history, test_metrics=tested,
                        outcome=outcome, timing=self.timing, resume=self.resume, fit=fit,
                        best=best.record() if (best := best_epoch(trainer)) else None)
                places = run_places(model_dir=config.outputs.model_dir, output_dir=config.outputs.output_dir,
                                    reports=reports, cache_dir=_cache_dir(config),
                                    checkpoint_dir=config.checkpoints.checkpoint_dir)
                lines = summary_lines(self.timer, counts, places, [*callback_summary_lines(callbacks), *trust])
            self.exported = True
        return lines

    def interruption(self, signum: int) -> RunInterrupted:
        config = self.config
        return interrupted(signum, checkpoint_dir=config.checkpoints.checkpoint_dir,
                           epochs=config.optimisation.epochs, model_dir=config.outputs.model_dir,
                           output_dir=config.outputs.output_dir, training_started=self.trainer is not None,
                           epochs_done=len(self.history.history), exported=self.exported)
