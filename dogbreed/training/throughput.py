"""Throughput choices made from the machine: precision, channels-last, the feature cache, compile."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch

from dogbreed.config.options import TrainConfig
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.training.head_training import to_feature_training, uses_feature_cache
from dogbreed.training.loading import trains_on_gpu
from dogbreed.training.module import DogBreedClassifier

logger = logging.getLogger(__name__)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto``: bf16-mixed on a GPU with native bf16 (Ampere and later), 16-mixed on older GPUs (T4, V100:
    fp16 tensor cores; their bf16 is emulated, slower than fp32), else 32-true.

    On CPUs, 32-true stays the default even where bf16 autocast is faster (about 2x for the
    ResNet50 forward on an AVX512-BF16 EPYC, bench/RESULTS.md): bf16 changes the numbers, so
    it is opt-in there with ``--precision bf16-mixed``.
    """
    if precision != "auto":
        return precision
    if not trains_on_gpu(accelerator):
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


def prepare_for_speed(
    config: TrainConfig, datamodule: DogBreedDataModule, model: DogBreedClassifier
) -> tuple[pl.LightningDataModule, DogBreedClassifier]:
    """Head-only runs train on cached features; ``--compile`` compiles the network in place
    (``nn.Module.compile`` keeps the state_dict keys, so the artifact is unchanged)."""
    if uses_feature_cache(config):
        if config.compile:
            logger.info("--compile ignored: with the feature cache only the linear head runs")
        return to_feature_training(config, datamodule, model, resolve_precision(config.precision, config.accelerator))
    if config.compile:
        model.net.compile()
    return datamodule, model


def precision_setting(config: TrainConfig) -> dict[str, Any]:
    """The Trainer's ``precision`` keyword for this config and machine."""
    return {"precision": resolve_precision(config.precision, config.accelerator)}
