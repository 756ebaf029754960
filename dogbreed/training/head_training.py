"""Head-only training on cached backbone features (``--finetune head`` with ``--cached-views K``).

The frozen backbone runs once per image and view (see :mod:`dogbreed.training.feature_cache`); every
epoch then trains ``net.fc`` on the stored 2048-d features. The LightningModule is the normal
:class:`DogBreedClassifier` (same loss, metrics, optimiser, schedule, logging) whose forward
skips the backbone, and its ``net`` still holds the full ResNet50: the exported artifact is the
same as one trained the slow way, so serving is unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from dogbreed.config.options import TrainConfig
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule, SplitLoaders
from dogbreed.data.samplers import evaluation_sampler
from dogbreed.training.feature_cache import CachedFeatures, backbone_digest, cached_split_features
from dogbreed.training.module import DogBreedClassifier

logger = logging.getLogger(__name__)

# Mixed-precision settings under which extraction runs in autocast (features are stored in fp16 anyway).
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def uses_feature_cache(config: TrainConfig) -> bool:
    return config.finetune == "head" and config.cached_views >= 1


def default_cache_dir(config: TrainConfig) -> Path:
    """``--cache-dir``, else ``feature_cache`` next to the output dir (shared by runs and trials)."""
    return Path(config.cache_dir) if config.cache_dir else Path(config.output_dir).parent / "feature_cache"


class FeatureHeadClassifier(DogBreedClassifier):
    """:class:`DogBreedClassifier` fed pooled backbone features: only ``net.fc`` runs."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net.fc(features)

    def per_batch_module(self) -> torch.nn.Module:
        """Only the head runs per batch here."""
        return self.net.fc

    _saved_threads: int | None = None

    @classmethod
    def from_classifier(cls, model: DogBreedClassifier) -> "FeatureHeadClassifier":
        """The same module, weights and hyperparameters, now fed features (no second ResNet50 is built:
        building one costs ~1 s on 2 cores, a large share of a cached run)."""
        model.__class__ = cls
        return model  # type: ignore[return-value]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """The backbone never runs here, so its BatchNorm mode needs no re-applying."""

    def setup(self, stage: str) -> None:
        # A (64, 2048) x (2048, C) step is tiny: on CPU, waking a second intra-op thread costs
        # more than it saves (busy 2-core machine: 30 head steps took 3.7 s with 2 threads; the whole
        # cached 10-epoch run, extraction excluded, took 1.7 s with 1).
        if self.device.type == "cpu" and self._saved_threads is None:
            self._saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def teardown(self, stage: str) -> None:
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None


class FeatureViews(Dataset):
    """(feature, label) pairs; with several views, each draw takes one view at random (the
    cached counterpart of drawing a fresh augmentation every epoch)."""

    def __init__(self, cached: CachedFeatures, random_view: bool) -> None:
        self.cached = cached
        self.random_view = random_view and cached.views > 1

    def __len__(self) -> int:
        return int(self.cached.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        view = int(torch.randint(self.cached.views, ())) if self.random_view else 0
        return self.cached.features[index, view].float(), int(self.cached.labels[index])


class FeatureDataModule(SplitLoaders, pl.LightningDataModule):
    """Serves cached features for train/valid/test, with the image data module's batch policy."""

    def __init__(
        self, features: dict[str, CachedFeatures], *, class_names: list[str], preprocessing: Preprocessing,
        batch_size: int, cache_hits: dict[str, bool],
    ) -> None:
        super().__init__()
        self.features = features
        self.class_names = class_names
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.cache_hits = cache_hits

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = FeatureViews(self.features[name], random_view=shuffle)
        # In-memory tensors: worker processes would only add start-up cost.
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=0,
                          sampler=None if shuffle else evaluation_sampler(dataset),  # DDP: each eval image once
                          drop_last=shuffle and len(dataset) > self.batch_size)


def extraction_device(config: TrainConfig) -> torch.device:
    wants_gpu = config.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def to_feature_training(
    config: TrainConfig, datamodule: DogBreedDataModule, model: DogBreedClassifier, precision: str = "32-true",
) -> tuple[FeatureDataModule, FeatureHeadClassifier]:
    """Swap an image data module and model for their cached-feature counterparts (same weights)."""
    device = extraction_device(config)
    cache_dir = default_cache_dir(config)
    digest = backbone_digest(model.net)
    features: dict[str, CachedFeatures] = {}
    hits: dict[str, bool] = {}
    for split, dataset in datamodule.datasets.items():
        features[split], hits[split] = cached_split_features(
            cache_dir, split, model.net, dataset.samples, pre=datamodule.preprocessing,
            views=config.cached_views if split == "train" else 1, seed=config.seed,
            batch_size=config.batch_size, num_workers=datamodule.num_workers, device=device,
            autocast_dtype=AUTOCAST_DTYPES.get(precision), backbone_hash=digest,
            skip_bad_images=datamodule.skip_bad_images,
        )
    logger.info("feature cache %s: %s", cache_dir, ", ".join(f"{s} {'hit' if h else 'built'}" for s, h in hits.items()))
    feature_data = FeatureDataModule(features, class_names=datamodule.class_names,
                                     preprocessing=datamodule.preprocessing, batch_size=config.batch_size,
                                     cache_hits=hits)
    return feature_data, FeatureHeadClassifier.from_classifier(model)
