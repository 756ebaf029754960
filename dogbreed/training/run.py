"""One training run: data -> model -> fit -> test -> artifact + reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from dogbreed.config.options import TrainConfig
from dogbreed.core.network import apply_backbone_weights, load_backbone_state_dict
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule, LoaderSettings
from dogbreed.data.sources import resolve_splits
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import ModelConfig, library_versions, save_artifact
from dogbreed.training.checkpoints import EpochCheckpoint, newest_checkpoint
from dogbreed.training.data_wait import DataWaitReport
from dogbreed.training.head_training import uses_feature_cache
from dogbreed.training.loading import run_loader_settings
from dogbreed.training.metric_lines import epoch_line, test_line
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.reports import write_reports
from dogbreed.training.runtime import Runtime
from dogbreed.training.throughput import precision_setting, prepare_for_speed

logger = logging.getLogger(__name__)


def _as_floats(metrics: Mapping[str, Any], stage: str) -> dict[str, float]:
    """{'val/acc': tensor(0.8)} -> {'val_acc': 0.8} for the given stage."""
    prefix = f"{stage}/"
    return {f"{stage}_{k[len(prefix):]}": float(v) for k, v in metrics.items() if k.startswith(prefix)}


class EpochHistory(Callback):
    """Records one dict per epoch and prints the plain epoch line (rank 0 only).

    Its history is part of checkpoints, so a resumed run still reports every epoch.
    """

    def __init__(self, emit: Callable[[str], None] | None = None) -> None:
        self.history: list[dict[str, Any]] = []
        self.emit = emit or (lambda line: print(line, flush=True))

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
        if trainer.is_global_zero:
            self.emit(epoch_line(record["epoch"], record))


@dataclass
class TrainResult:
    model_dir: Path
    output_dir: Path
    class_names: list[str]
    history: list[dict[str, Any]]
    test_metrics: dict[str, float]


def build_datamodule(config: TrainConfig, splits: SplitDirs, num_workers: int,
                     loader: LoaderSettings | None = None) -> DogBreedDataModule:
    """``loader`` (workers, pinned memory, prefetch: :func:`run_loader_settings`) overrides ``num_workers``."""
    return DogBreedDataModule(
        splits,
        preprocessing=Preprocessing(image_size=config.image_size),
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
    )
    state = load_backbone_state_dict(config.weights)
    if state is not None:
        apply_backbone_weights(model.net, state)
    return model


def build_callbacks(config: TrainConfig) -> list[Callback]:
    """The training layer's own callbacks beyond EpochHistory (adapters pass theirs to :func:`train`)."""
    callbacks: list[Callback] = []
    if config.checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(config.checkpoint_dir))
    return callbacks


def trainer_settings(config: TrainConfig, runtime: Runtime | None = None) -> dict[str, Any]:
    """Trainer keyword arguments derived from the config and where the run executes (default: this machine)."""
    runtime = runtime or Runtime.local()
    settings: dict[str, Any] = dict(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices="auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=runtime.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=1,
    )
    settings.update(runtime.trainer_settings)  # devices / num_nodes / strategy under torchrun or SageMaker
    settings.update(precision_setting(config))  # auto: bf16-mixed on bf16 GPUs, else 32-true
    return settings


def build_trainer(config: TrainConfig, callbacks: list[Callback], *, runtime: Runtime | None = None,
                  **overrides: Any) -> pl.Trainer:
    kwargs = trainer_settings(config, runtime)
    kwargs["callbacks"] = callbacks
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def train(
    config: TrainConfig,
    *,
    splits: SplitDirs | None = None,
    runtime: Runtime | None = None,
    extra_callbacks: list[Callback] | None = None,
    **trainer_overrides: Any,
) -> TrainResult:
    """Train, test and export. ``splits`` defaults to what the config points at; ``runtime`` to this machine.

    Adapters extend a run through ``extra_callbacks`` and Trainer keyword arguments (e.g. ``profiler=``).
    """
    runtime = runtime or Runtime.local()
    pl.seed_everything(config.seed, workers=True, verbose=False)
    splits = splits or resolve_splits(config)
    loader = run_loader_settings(config, runtime)
    images = build_datamodule(config, splits, loader.num_workers, loader)
    images.setup("fit")  # validates the data before any model is built
    datamodule, model = prepare_for_speed(config, images, build_model(config, images.num_classes))  # cache/compile
    history = EpochHistory()
    callbacks = [history, *build_callbacks(config), *(extra_callbacks or [])]
    if not uses_feature_cache(config):  # images decoded every step: say whether input was the bottleneck
        callbacks.append(DataWaitReport(loader.num_workers))
    trainer = build_trainer(config, callbacks, runtime=runtime, **trainer_overrides)
    resume_from = newest_checkpoint(config.checkpoint_dir)
    if resume_from is not None:
        logger.info("resuming from checkpoint %s", resume_from)
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume_from)
    tested = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    test_metrics = _as_floats(tested, "test")
    test_metrics = {k[len("test_"):]: v for k, v in test_metrics.items()}
    if trainer.is_global_zero:
        print(test_line({f"test_{k}": v for k, v in test_metrics.items()}), flush=True)
        model_config = ModelConfig(
            class_names=images.class_names,
            preprocessing=images.preprocessing,
            hyperparameters=config.to_dict(),
            metrics={"test": test_metrics, "final_epoch": history.history[-1] if history.history else {}},
            versions=library_versions(),
        )
        save_artifact(config.model_dir, model.net, model_config)
        if model.test_confusion is None:
            raise RuntimeError("trainer.test() ran but produced no confusion matrix")
        write_reports(config.output_dir, history.history, test_metrics, model.test_confusion, images.class_names)
    return TrainResult(
        model_dir=Path(config.model_dir),
        output_dir=Path(config.output_dir),
        class_names=images.class_names,
        history=history.history,
        test_metrics=test_metrics,
    )
