"""One training run: data -> model -> fit -> test -> artifact + reports, timed phase by phase."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import TrainingDiverged
from dogbreed.core.network import apply_backbone_weights, load_backbone_state_dict
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule, LoaderSettings
from dogbreed.data.sources import resolve_splits
from dogbreed.data.splits import SplitDirs
from dogbreed.training.calibrate import ServingFit, calibrate_run, summary_line
from dogbreed.training.checkpoints import (
    EpochCheckpoint,
    FinalNameCheckpointIO,
    ResumePlan,
    plan_resume,
    run_fingerprint,
)
from dogbreed.training.console import EpochProgressBar, frozen_batchnorm_expected
from dogbreed.training.data_wait import DataWaitReport
from dogbreed.training.export import export_run
from dogbreed.training.guards import NonFiniteGuard, SignalGuard, check_finite_weights, critical_section
from dogbreed.training.head_training import FeatureDataModule, default_cache_dir, uses_feature_cache
from dogbreed.training.interruption import interrupted
from dogbreed.training.loading import run_loader_settings
from dogbreed.training.loggers import build_logger
from dogbreed.training.metric_lines import epoch_line, test_line
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.preflight import check_accelerator, check_output_locations
from dogbreed.training.recipe import EMAWeights
from dogbreed.training.reports import TestOutcome
from dogbreed.training.runtime import Runtime
from dogbreed.training.summary import (
    PhaseTimer,
    RunCounts,
    callback_summary_lines,
    run_places,
    summary_lines,
    timing_record,
)
from dogbreed.training.throughput import precision_setting, prepare_for_speed

logger = logging.getLogger(__name__)


def _as_floats(metrics: Mapping[str, Any], stage: str) -> dict[str, float]:
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
        self.emit = emit or (lambda line: print(line, flush=True))
        self.quiet = quiet

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        record: dict[str, Any] = {"epoch": trainer.current_epoch + 1}
        record.update(_as_floats(metrics, "train"))
        record.update(_as_floats(metrics, "val"))
        record["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None
        self.history.append(record)
        if trainer.is_global_zero and not self.quiet:
            self.emit(epoch_line(record["epoch"], record))


@dataclass
class TrainResult:
    model_dir: Path
    output_dir: Path
    class_names: list[str]
    history: list[dict[str, Any]]
    test_metrics: dict[str, float]
    timing: dict[str, float] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)  # the end-of-run summary lines (printed by the CLI)


def build_datamodule(config: TrainConfig, splits: SplitDirs, num_workers: int,
                     loader: LoaderSettings | None = None) -> DogBreedDataModule:
    """``loader`` (workers, pinned memory, prefetch: :func:`run_loader_settings`) overrides ``num_workers``."""
    return DogBreedDataModule(
        splits,
        preprocessing=Preprocessing(image_size=config.image_size, crop_scale=(config.crop_scale, 1.0)),
        batch_size=config.batch_size,
        num_workers=num_workers,
        skip_bad_images=config.skip_bad_images,
        loader=loader,
    )


def build_model(config: TrainConfig, num_classes: int) -> DogBreedClassifier:
    model = DogBreedClassifier(
        num_classes=num_classes,
        lr=config.lr,
        weight_decay=config.weight_decay,
        finetune=config.finetune,
        backbone_lr_scale=config.backbone_lr_scale,
        label_smoothing=config.label_smoothing,
        mixup_alpha=config.mixup_alpha,
        cutmix_alpha=config.cutmix_alpha,
    )
    state = load_backbone_state_dict(config.weights)
    if state is not None:
        apply_backbone_weights(model.net, state)
    elif config.finetune == "head":  # the CLI refuses this; library callers get told
        logger.warning("weights none with finetune head trains a linear head on a random frozen ResNet50: "
                       "expect chance-level accuracy (use finetune full to train from scratch)")
    return model


def build_callbacks(config: TrainConfig, fingerprint: Mapping[str, Any] | None = None) -> list[Callback]:
    """The training layer's own callbacks beyond EpochHistory (adapters pass theirs to :func:`train`)."""
    callbacks: list[Callback] = [NonFiniteGuard(config.lr)]
    if config.checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(config.checkpoint_dir, fingerprint or {}))
    if config.ema_decay > 0:
        callbacks.append(EMAWeights(config.ema_decay))
    return callbacks


def trainer_settings(config: TrainConfig, runtime: Runtime | None = None) -> dict[str, Any]:
    """Trainer keyword arguments derived from the config and where the run executes (default: this machine)."""
    runtime = runtime or Runtime.local()
    settings: dict[str, Any] = dict(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices="auto",
        logger=build_logger(config),
        enable_checkpointing=False,
        enable_progress_bar=runtime.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=1,
    )
    settings.update(runtime.trainer_settings)  # devices / num_nodes / strategy under torchrun or SageMaker
    settings.update(precision_setting(config))  # auto: bf16-mixed on bf16 GPUs, else 32-true
    if config.checkpoint_dir is not None:
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


def _run_counts(config: TrainConfig, images: DogBreedDataModule, datamodule: pl.LightningDataModule) -> RunCounts:
    counts = RunCounts(images={split: len(ds) for split, ds in images.datasets.items()})
    if isinstance(datamodule, FeatureDataModule):
        built = [datamodule.features[split] for split, hit in datamodule.cache_hits.items() if not hit]
        counts.extracted_images = sum(int(cached.features.shape[0]) * cached.views for cached in built)
    return counts


def run_test(trainer: pl.Trainer, model: DogBreedClassifier, datamodule: pl.LightningDataModule) -> dict[str, float]:
    """``trainer.test`` -> ``{"loss", "acc", "acc_top5", "f1_macro"}``."""
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {k[len("test_"):]: v for k, v in _as_floats(tested, "test").items()}


def collect_test_outcome(trainer: pl.Trainer, model: DogBreedClassifier, images: DogBreedDataModule) -> TestOutcome:
    """The confusion matrix and per-image results of the last ``trainer.test`` (for the reports)."""
    if model.test_confusion is None:
        raise RuntimeError("trainer.test() ran but produced no confusion matrix")
    # Per-image results follow the test loader's order only in a single process (DDP shards the split).
    samples = model.test_samples if trainer.world_size == 1 else {}
    return TestOutcome(confusion=model.test_confusion, samples=samples,
                       paths=[path for path, _ in images.datasets["test"].samples])


def train(
    config: TrainConfig,
    *,
    splits: SplitDirs | None = None,
    runtime: Runtime | None = None,
    extra_callbacks: list[Callback] | None = None,
    test: bool = True,
    epoch_lines: bool = True,
    **trainer_overrides: Any,
) -> TrainResult:
    """Train, test and export. ``splits`` defaults to what the config points at; ``runtime`` to this machine.

    Adapters extend a run through ``extra_callbacks`` and Trainer keyword arguments (e.g. ``profiler=``).
    ``test=False`` skips the test split (tuning trials); ``epoch_lines=False`` records epochs without printing.
    Before any data is read, every output dir is checked writable and the accelerator present. SIGTERM, SIGINT
    or SIGHUP stop the run with :class:`RunInterrupted` (nothing exported); a NaN loss or weight with
    :class:`TrainingDiverged`.
    """
    check_accelerator(config.accelerator)
    check_output_locations(config, default_cache_dir(config) if uses_feature_cache(config) else None)
    with SignalGuard() as guard:
        return _train(config, guard, splits, runtime or Runtime.local(), extra_callbacks or [], trainer_overrides,
                      test=test, epoch_lines=epoch_lines)


def _train(config: TrainConfig, guard: SignalGuard, splits: SplitDirs | None, runtime: Runtime,
           extra_callbacks: list[Callback], trainer_overrides: dict[str, Any], *, test: bool,
           epoch_lines: bool) -> TrainResult:
    timer = PhaseTimer()
    history = EpochHistory(quiet=not epoch_lines)
    resume = ResumePlan()
    trainer: pl.Trainer | None = None
    exported = False
    try:
        pl.seed_everything(config.seed, workers=True, verbose=False)
        if splits is None:
            fetching = config.demo or config.download  # generating or downloading the data is a phase of its own
            with timer.phase("demo_data" if config.demo else "download") if fetching else nullcontext():
                splits = resolve_splits(config)
        with timer.phase("data_check"):
            loader = run_loader_settings(config, runtime)
            images = build_datamodule(config, splits, loader.num_workers, loader)
            images.setup("fit")  # validates the data before any model is built
        fingerprint = run_fingerprint(config, images.class_dirs, {k: d.samples for k, d in images.datasets.items()},
                                      images.split_paths())
        resume = plan_resume(config.checkpoint_dir, fingerprint, resume_anyway=config.resume_anyway,
                             num_classes=images.num_classes)
        model = build_model(config, images.num_classes)
        with timer.phase("feature_cache") if uses_feature_cache(config) else nullcontext():
            datamodule, model = prepare_for_speed(config, images, model)  # cache/compile
        callbacks = [history, *build_callbacks(config, fingerprint), *extra_callbacks]
        if not uses_feature_cache(config):  # images decoded every step: say whether input was the bottleneck
            callbacks.append(DataWaitReport(loader.num_workers))
        trainer = build_trainer(config, callbacks, runtime=runtime, **trainer_overrides)
        if resume.path is not None:
            logger.info("resuming from checkpoint %s (%d epoch(s) done)", resume.path, resume.epoch)
        with timer.phase("fit"), frozen_batchnorm_expected(model.backbone_frozen):
            trainer.fit(model, datamodule=datamodule, ckpt_path=resume.path, weights_only=True)
        counts = _run_counts(config, images, datamodule)
        counts.epochs = len(history.history)
        test_metrics: dict[str, float] = {}
        if test:
            with timer.phase("test"):
                test_metrics = run_test(trainer, model, datamodule)
        fit = ServingFit()
        if test and trainer.is_global_zero:  # temperature, abstention threshold, TTA cost (rank 0)
            with timer.phase("calibration"):
                fit = calibrate_run(config, images, datamodule, model.net)
        check_finite_weights(model.net, lambda what: TrainingDiverged(f"{what} after training: nothing was exported. "
                                                                      f"Lower --lr (now {config.lr:g})"))
        timing = timing_record(timer, counts)
        lines: list[str] = []
        with critical_section():  # a signal now waits until the artifact and reports are complete
            if trainer.is_global_zero:
                if test:
                    print(test_line({f"test_{k}": v for k, v in test_metrics.items()}), flush=True)
                    if fit.report:
                        print(summary_line(fit.report), flush=True)
                with timer.phase("export"):
                    outcome = collect_test_outcome(trainer, model, images) if test else None
                    export_run(config, model, images, history.history, test_metrics, outcome, timing, resume, fit)
                places = run_places(config, test, default_cache_dir(config) if uses_feature_cache(config) else None)
                lines = summary_lines(timer, counts, places, callback_summary_lines(callbacks))
            exported = True
    except BaseException as exc:
        # SignalStop, Lightning's SIGTERMException, or an error caused by the same signal (DataLoader workers
        # killed by the terminal's Ctrl-C): all one interruption.
        if guard.signum is None:
            raise
        raise interrupted(guard.signum, config, trainer, history.history, resume, exported=exported) from exc
    return TrainResult(
        model_dir=Path(config.model_dir),
        output_dir=Path(config.output_dir),
        class_names=images.class_names,
        history=history.history,
        test_metrics=test_metrics,
        timing=timing,
        summary=lines,
    )
