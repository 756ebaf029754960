"""One training run: data -> model -> fit -> test -> artifact + reports."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from dogbreed.artifact import ModelConfig, library_versions, save_artifact
from dogbreed.checkpoints import EpochCheckpoint, newest_checkpoint
from dogbreed.config import TrainConfig
from dogbreed.data import DogBreedDataModule, SplitDirs
from dogbreed.datasets import resolve_splits
from dogbreed.debugging import debug_callbacks
from dogbreed.metric_lines import epoch_line, test_line
from dogbreed.model import DogBreedClassifier, apply_backbone_weights, load_backbone_state_dict
from dogbreed.profiling import build_profiler, profiling_callbacks
from dogbreed.reports import write_reports
from dogbreed.sagemaker_env import distributed_settings, in_sagemaker_training
from dogbreed.throughput import precision_setting, prepare_for_speed
from dogbreed.transforms import Preprocessing

logger = logging.getLogger(__name__)


def _as_floats(metrics: dict[str, Any], stage: str) -> dict[str, float]:
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


def resolve_num_workers(requested: int) -> int:
    """-1 means: pick from the machine (SM_NUM_CPUS on SageMaker). Two cores: decode in-process."""
    if requested >= 0:
        return requested
    cpus = int(os.environ.get("SM_NUM_CPUS", 0)) or os.cpu_count() or 1
    return 0 if cpus <= 2 else min(8, cpus - 1)


def build_datamodule(config: TrainConfig, splits: SplitDirs) -> DogBreedDataModule:
    return DogBreedDataModule(
        splits,
        preprocessing=Preprocessing(image_size=config.image_size),
        batch_size=config.batch_size,
        num_workers=resolve_num_workers(config.num_workers),
        skip_bad_images=config.skip_bad_images,
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
    """Extension point: callbacks beyond EpochHistory (checkpoints, smdebug, ...) come from here."""
    callbacks: list[Callback] = []
    if config.checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(config.checkpoint_dir))
    callbacks += debug_callbacks(config) + profiling_callbacks(config)  # smdebug hook; utilisation + data wait
    return callbacks


def trainer_settings(config: TrainConfig) -> dict[str, Any]:
    """Extension point: Trainer keyword arguments derived from the config and the environment."""
    settings: dict[str, Any] = dict(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices="auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=sys.stderr.isatty() and not in_sagemaker_training(),
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=1,
    )
    settings.update(distributed_settings())  # devices / num_nodes / strategy under torchrun or SageMaker
    settings.update(precision_setting(config))  # auto: bf16-mixed on bf16 GPUs, else 32-true
    if config.profiler:
        settings["profiler"] = build_profiler(config)  # simple / advanced / pytorch -> <output-dir>/profile
    return settings


def build_trainer(config: TrainConfig, callbacks: list[Callback], **overrides: Any) -> pl.Trainer:
    kwargs = trainer_settings(config)
    kwargs["callbacks"] = callbacks
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def train(
    config: TrainConfig,
    *,
    splits: SplitDirs | None = None,
    extra_callbacks: list[Callback] | None = None,
    **trainer_overrides: Any,
) -> TrainResult:
    """Train, test and export. ``splits`` defaults to what the config points at."""
    pl.seed_everything(config.seed, workers=True, verbose=False)
    splits = splits or resolve_splits(config)
    datamodule = build_datamodule(config, splits)
    datamodule.setup("fit")  # validates the data before any model is built
    model = build_model(config, datamodule.num_classes)
    datamodule, model = prepare_for_speed(config, datamodule, model)  # feature cache / compile
    history = EpochHistory()
    trainer = build_trainer(config, [history, *build_callbacks(config), *(extra_callbacks or [])], **trainer_overrides)
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
            class_names=datamodule.class_names,
            preprocessing=datamodule.preprocessing,
            hyperparameters=config.to_dict(),
            metrics={"test": test_metrics, "final_epoch": history.history[-1] if history.history else {}},
            versions=library_versions(),
        )
        save_artifact(config.model_dir, model.net, model_config)
        write_reports(config.output_dir, history.history, test_metrics, model.test_confusion, datamodule.class_names)
    return TrainResult(
        model_dir=Path(config.model_dir),
        output_dir=Path(config.output_dir),
        class_names=datamodule.class_names,
        history=history.history,
        test_metrics=test_metrics,
    )


def torch_threads_info() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
