"""The Lightning DataModule: checked splits -> image datasets with the one preprocessing -> DataLoaders."""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dogbreed.core.augment import TrainTransform
from dogbreed.core.constants import TRAIN_SPLIT_NAMES
from dogbreed.core.errors import DataError, ImageDecodeError
from dogbreed.core.images import open_image
from dogbreed.core.transforms import Preprocessing, build_eval_transform, build_train_transform, decode_eval_image
from dogbreed.data.auto_split import AutoSplit, carve_splits, resolve_fractions, splits_record
from dogbreed.data.prepare import prepared_warning
from dogbreed.data.samplers import evaluation_sampler
from dogbreed.data.splits import SplitDirs, check_splits, display_name

logger = logging.getLogger(__name__)


class ImageFileDataset(Dataset):
    """(path, label) samples decoded with ``decode`` (default :func:`open_image`) and transformed.

    An image whose header passed the data check but whose data does not decode is an error naming the file and
    ``--skip-bad-images``; with ``skip_bad_images`` it is replaced by the next decodable image of the same class
    (the batch keeps its size, labels stay right) and counted in a warning.
    ``decode=None``: the transform reads the file itself (the training transform draws its crop before
    decoding, so a large JPEG decodes at a reduced scale).
    """

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        transform: Callable,
        decode: Callable[[Path], Image.Image] | None = open_image,
        skip_bad_images: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.decode = decode
        self.skip_bad_images = skip_bad_images
        self.skipped = multiprocessing.Value("i", 0) if skip_bad_images else None  # shared with DataLoader workers

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            return self._load(path), label
        except ImageDecodeError as exc:
            if self.skipped is None:
                raise DataError(f"{path} passed the header check but cannot be decoded ({exc}): fix or delete it, "
                                "or pass --skip-bad-images to train without images that fail to decode") from exc
            return self._replacement(index, exc)

    def _replacement(self, index: int, error: ImageDecodeError) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        assert self.skipped is not None
        with self.skipped.get_lock():
            self.skipped.value += 1
            count = self.skipped.value
        logger.warning("skipping %s (--skip-bad-images, %d decode failure(s) so far): %s", path, count, error)
        for step in range(1, len(self.samples)):
            other, other_label = self.samples[(index + step) % len(self.samples)]
            if other_label == label:
                try:
                    return self._load(other), label
                except ImageDecodeError:
                    continue
        raise DataError(f"no image of the class of {path} can be decoded: check that class folder")

    def _load(self, path: Path) -> torch.Tensor:
        return self.transform(path if self.decode is None else self.decode(path))


@dataclass(frozen=True)
class LoaderSettings:
    """How the DataLoaders run: worker processes, pinned memory, persistent workers, batches prefetched per
    worker (``prefetch_factor``; DataLoader's default 2 when None). Chosen from the machine by the training
    layer (:func:`dogbreed.training.setup.loader_settings`)."""

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None

    def for_batches(self, batches: int, split: str) -> LoaderSettings:
        """These settings with at most one worker per batch of the epoch: a worker beyond that only forks a process
        (with its copy of the dataset) that never gets a batch. Said in one log line when it changes anything."""
        if self.num_workers <= max(1, batches):
            return self
        logger.info("%d DataLoader workers capped at %d for the %s split: it has %d batch%s per epoch",
                    self.num_workers, max(1, batches), split, batches, "" if batches == 1 else "es")
        return replace(self, num_workers=max(1, batches))

    def dataloader_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"num_workers": self.num_workers, "pin_memory": self.pin_memory}
        if self.num_workers > 0:  # DataLoader refuses these without workers
            kwargs["persistent_workers"] = self.persistent_workers
            if self.prefetch_factor is not None:
                kwargs["prefetch_factor"] = self.prefetch_factor
        return kwargs


class SplitLoaders:
    """The three Lightning loader hooks, from one ``_loader(split, shuffle)`` of the subclass."""

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class DogBreedDataModule(SplitLoaders, pl.LightningDataModule):
    """Reads train/valid/test ImageFolder splits, validates them, and serves DataLoaders."""

    def __init__(
        self,
        splits: SplitDirs,
        *,
        preprocessing: Preprocessing,
        batch_size: int = 32,
        num_workers: int = 0,
        skip_bad_images: bool = False,
        loader: LoaderSettings | None = None,
        auto_split: AutoSplit | None = None,
        allow_duplicates: bool = False,
    ) -> None:
        """``loader`` overrides ``num_workers`` (default: workers persistent, memory pinned when CUDA exists);
        ``auto_split``: how missing validation/test splits are carved out of train (default shares, seed 0)."""
        super().__init__()
        self.splits = splits
        self.auto_split = auto_split or AutoSplit()
        self.split_record: dict[str, Any] | None = None  # splits.json, when a split was carved
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.loader = loader or LoaderSettings(num_workers=num_workers, pin_memory=torch.cuda.is_available(),
                                               persistent_workers=num_workers > 0)
        self.num_workers = self.loader.num_workers
        self.skip_bad_images = skip_bad_images
        self.allow_duplicates = allow_duplicates
        self.class_dirs: list[str] = []
        self.datasets: dict[str, ImageFileDataset] = {}

    @property
    def class_names(self) -> list[str]:
        return [display_name(d) for d in self.class_dirs]

    @property
    def num_classes(self) -> int:
        return len(self.class_dirs)

    def split_paths(self) -> dict[str, Path]:
        """Each split's root: its own folder, or the training dir it is carved from; the test split is the
        validation split when there is no test folder and ``--test-pct 0``."""
        fractions = resolve_fractions(self.splits, self.auto_split)
        valid = self.splits.valid or self.splits.train
        test = self.splits.test or (self.splits.train if fractions.test else valid)
        return {"train": self.splits.train, "valid": valid, "test": test}

    def _checked_samples(self) -> dict[str, list[tuple[Path, int]]]:
        """The data checks on the split folders that exist, then the missing splits carved out of train."""
        fractions = resolve_fractions(self.splits, self.auto_split)
        own = {name: path for name, path in (("train", self.splits.train), ("valid", self.splits.valid),
                                             ("test", self.splits.test)) if path is not None}
        checked = check_splits(own, skip_bad_images=self.skip_bad_images, allow_duplicates=self.allow_duplicates,
                               root=self._dataset_root())
        self.class_dirs = checked.class_dirs
        samples = dict(checked.samples)
        if fractions.carves:
            seed, root = self.auto_split.seed, self.splits.train
            samples.update(carve_splits(samples["train"], checked.class_dirs, fractions, seed=seed, root=root))
            self.split_record = splits_record(samples, checked.class_dirs, fractions, seed=seed, root=root)
            logger.info("splits made from %s: %s", root, ", ".join(
                f"{len(samples[split])} {split}" for split in ("train", "valid", "test") if split in samples))
        if "test" not in samples:
            logger.warning("no test split: final test metrics are computed on the validation split %s",
                           self.split_paths()["valid"])
            samples["test"] = samples["valid"]
        return {split: samples[split] for split in ("train", "valid", "test")}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        samples_by_split = self._checked_samples()
        train_tf = build_train_transform(self.preprocessing)
        eval_tf = build_eval_transform(self.preprocessing)
        eval_decode = partial(decode_eval_image, pre=self.preprocessing)  # the same decode as serving
        skip = self.skip_bad_images
        for name, samples in samples_by_split.items():
            if name == "train":  # TrainTransform decodes itself: the crop is drawn first, then a JPEG draft-decoded
                decode = None if isinstance(train_tf, TrainTransform) else open_image
                self.datasets[name] = ImageFileDataset(samples, train_tf, decode=decode, skip_bad_images=skip)
            else:
                self.datasets[name] = ImageFileDataset(samples, eval_tf, decode=eval_decode, skip_bad_images=skip)
        root = self._dataset_root()
        warning = prepared_warning(root, self.preprocessing.image_size) if root is not None else None
        if warning:
            logger.warning(warning)

    def _dataset_root(self) -> Path | None:
        """The one dataset root of the splits (maybe a prepared dataset), None when they live apart."""
        train = self.splits.train
        if train.name.lower() not in TRAIN_SPLIT_NAMES:  # a tree of class folders: the root itself
            return train if self.splits.valid is None and self.splits.test is None else None
        parents = {train.parent} | {p.parent for p in (self.splits.valid, self.splits.test) if p is not None}
        return train.parent if len(parents) == 1 else None

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        loader = self.loader.for_batches(-(-len(dataset) // self.batch_size), name)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=None if shuffle else evaluation_sampler(dataset),  # DDP: each eval image once
            **loader.dataloader_kwargs(),
            # A last training batch of one sample breaks BatchNorm in train mode; drop the remainder.
            drop_last=shuffle and len(dataset) > self.batch_size,
        )
