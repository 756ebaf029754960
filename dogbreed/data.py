"""Dataset discovery, validation and the LightningDataModule."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dogbreed.constants import IMAGE_EXTENSIONS, TEST_SPLIT_NAMES, TRAIN_SPLIT_NAMES, VALID_SPLIT_NAMES
from dogbreed.errors import DataError
from dogbreed.images import check_image_header, open_image
from dogbreed.transforms import Preprocessing, build_eval_transform, build_train_transform, decode_eval_image

logger = logging.getLogger(__name__)

_CLASS_PREFIX = re.compile(r"^\d+[._\-\s]+")
MAX_LISTED_BAD_FILES = 20


def display_name(class_dir_name: str) -> str:
    """``001.Affenpinscher`` -> ``Affenpinscher``; ``003.Airedale_terrier`` -> ``Airedale terrier``."""
    name = _CLASS_PREFIX.sub("", class_dir_name).replace("_", " ").strip()
    return name or class_dir_name


@dataclass(frozen=True)
class SplitDirs:
    """Where each split lives. ``test`` may be None (then the validation split is used for testing)."""

    train: Path
    valid: Path
    test: Path | None = None

    @classmethod
    def from_data_dir(cls, data_dir: Path | str) -> "SplitDirs":
        """Find ``train/``, ``valid/`` (or ``val/``, ``validation/``) and ``test/`` under one dir."""
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(
                f"data dir {data_dir} does not exist: pass --data-dir pointing at a folder with "
                "train/ valid/ test/ subfolders, or use --download or --demo"
            )
        found = {p.name.lower(): p for p in data_dir.iterdir() if p.is_dir()}

        def pick(names: Sequence[str]) -> Path | None:
            return next((found[n] for n in names if n in found), None)

        train, valid, test = pick(TRAIN_SPLIT_NAMES), pick(VALID_SPLIT_NAMES), pick(TEST_SPLIT_NAMES)
        if train is None:
            raise DataError(
                f"no train split in {data_dir} (found: {sorted(found) or 'no folders'}): "
                "create train/<class>/<images>, e.g. train/001.Affenpinscher/x.jpg"
            )
        if valid is None:
            raise DataError(
                f"no validation split in {data_dir}: add one of {'/, '.join(VALID_SPLIT_NAMES)}/ "
                "with the same class folders as train/"
            )
        return cls(train=train, valid=valid, test=test)


@dataclass(frozen=True)
class SplitIndex:
    """The image files of one split, with labels, and the files that failed the header check."""

    samples: list[tuple[Path, int]]
    bad_files: list[tuple[Path, str]]


def list_class_dirs(split_dir: Path) -> list[str]:
    """Class folder names of a split, in index order (sorted, as ImageFolder does)."""
    if not split_dir.is_dir():
        raise DataError(f"split dir {split_dir} does not exist: check the path or the channel name")
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"split {split_dir} has no class folders: expected {split_dir}/<class name>/<images>")
    return names


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(
        p for p in class_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )


def index_split(split_dir: Path, class_dirs: Sequence[str], *, check_headers: bool = True) -> SplitIndex:
    """List every image of a split; empty class dirs are an error; headers are checked in parallel."""
    files_per_class = [_image_files(split_dir / class_dir) for class_dir in class_dirs]
    if not any(files_per_class):
        raise DataError(
            f"split {split_dir} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in its class folders: "
            "put the images in <split>/<class name>/"
        )
    samples: list[tuple[Path, int]] = []
    for label, (class_dir, files) in enumerate(zip(class_dirs, files_per_class)):
        if not files:
            raise DataError(
                f"class dir {split_dir / class_dir} has no images: add images or remove the folder from every split"
            )
        samples.extend((f, label) for f in files)
    bad: list[tuple[Path, str]] = []
    if check_headers:
        with ThreadPoolExecutor(max_workers=8) as pool:
            reasons = list(pool.map(check_image_header, (p for p, _ in samples)))
        bad = [(p, r) for (p, _), r in zip(samples, reasons) if r is not None]
    return SplitIndex(samples=samples, bad_files=bad)


def _check_same_classes(reference: list[str], other: list[str], name: str, ref_dir: Path) -> None:
    if other != reference:
        missing = sorted(set(reference) - set(other))
        extra = sorted(set(other) - set(reference))
        raise DataError(
            f"class folders of {name} differ from those of {ref_dir}: missing {missing or 'none'}, "
            f"extra {extra or 'none'}. Every split needs the same class folders"
        )


def _bad_files_message(bad: list[tuple[Path, str]]) -> str:
    lines = [f"  {path}: {reason}" for path, reason in bad[:MAX_LISTED_BAD_FILES]]
    if len(bad) > MAX_LISTED_BAD_FILES:
        lines.append(f"  ... and {len(bad) - MAX_LISTED_BAD_FILES} more")
    return "\n".join(lines)


class ImageFileDataset(Dataset):
    """(path, label) samples decoded with ``decode`` (default :func:`open_image`) and transformed."""

    def __init__(
        self,
        samples: Sequence[tuple[Path, int]],
        transform: Callable,
        decode: Callable[[Path], Image.Image] = open_image,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.decode = decode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(self.decode(path)), label


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
    ) -> None:
        super().__init__()
        self.splits = splits
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.skip_bad_images = skip_bad_images
        self.class_dirs: list[str] = []
        self.datasets: dict[str, ImageFileDataset] = {}

    @property
    def class_names(self) -> list[str]:
        return [display_name(d) for d in self.class_dirs]

    @property
    def num_classes(self) -> int:
        return len(self.class_dirs)

    def split_paths(self) -> dict[str, Path]:
        test = self.splits.test or self.splits.valid
        return {"train": self.splits.train, "valid": self.splits.valid, "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        paths = self.split_paths()
        self.class_dirs = list_class_dirs(paths["train"])
        indexes: dict[str, SplitIndex] = {}
        for name, path in paths.items():
            _check_same_classes(self.class_dirs, list_class_dirs(path), str(path), paths["train"])
            indexes[name] = index_split(path, self.class_dirs)
        bad = [b for index in indexes.values() for b in index.bad_files]
        if bad and not self.skip_bad_images:
            raise DataError(
                f"{len(bad)} unreadable image file(s):\n{_bad_files_message(bad)}\n"
                "Fix or delete them, or pass --skip-bad-images to train without them"
            )
        if bad:
            logger.warning("skipping %d unreadable image file(s):\n%s", len(bad), _bad_files_message(bad))
        bad_paths = {p for p, _ in bad}
        train_tf = build_train_transform(self.preprocessing)
        eval_tf = build_eval_transform(self.preprocessing)
        for name, index in indexes.items():
            samples = [s for s in index.samples if s[0] not in bad_paths]
            if not samples:
                raise DataError(f"split {paths[name]} has no readable images: add images to it")
            if name == "train":
                self.datasets[name] = ImageFileDataset(samples, train_tf)
            else:  # the same decode as serving: JPEG draft mode (decode_eval_image)
                eval_decode = partial(decode_eval_image, pre=self.preprocessing)
                self.datasets[name] = ImageFileDataset(samples, eval_tf, decode=eval_decode)
        if self.splits.test is None:
            logger.warning("no test split: final test metrics are computed on the validation split %s", paths["valid"])

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[name]
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # A last training batch of one sample breaks BatchNorm in train mode; drop the remainder.
            drop_last=shuffle and len(dataset) > self.batch_size,
        )
