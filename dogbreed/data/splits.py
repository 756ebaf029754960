"""Split discovery and the data checks: which dirs hold train/valid/test, their classes and images."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dogbreed.core.constants import IMAGE_EXTENSIONS, TEST_SPLIT_NAMES, TRAIN_SPLIT_NAMES, VALID_SPLIT_NAMES
from dogbreed.core.errors import DataError
from dogbreed.core.images import check_image_header
from dogbreed.data.duplicates import check_no_leaks
from dogbreed.data.progress import Progress

logger = logging.getLogger(__name__)

_CLASS_PREFIX = re.compile(r"^\d+[._\-\s]+")
MAX_LISTED_BAD_FILES = 20


def display_name(class_dir_name: str) -> str:
    """``001.Affenpinscher`` -> ``Affenpinscher``; ``003.Airedale_terrier`` -> ``Airedale terrier``."""
    name = _CLASS_PREFIX.sub("", class_dir_name).replace("_", " ").strip()
    return name or class_dir_name


def missing_data_dir(data_dir: Path) -> str:
    """The refusal of a --data-dir that is not a folder, in the words every command that takes one uses."""
    return (f"data dir {data_dir} does not exist: pass --data-dir pointing at a folder with train/ valid/ test/ "
            "subfolders")


@dataclass(frozen=True)
class SplitDirs:
    """Where each split lives. ``valid`` and ``test`` may be None: they are then carved out of ``train``
    (:mod:`dogbreed.data.auto_split`), or the test split is the validation split (``--test-pct 0``)."""

    train: Path
    valid: Path | None = None
    test: Path | None = None

    @classmethod
    def from_data_dir(cls, data_dir: Path | str) -> "SplitDirs":
        """Find ``train/``, ``valid/`` (or ``val/``, ``validation/``) and ``test/`` under one dir; a dir of class
        folders only (no split folders, images in its subfolders) is the training split itself."""
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(missing_data_dir(data_dir))
        found = {p.name.lower(): p for p in data_dir.iterdir() if p.is_dir()}
        shown = sorted(found)[:10] + (["..."] if len(found) > 10 else [])

        def pick(names: Sequence[str]) -> Path | None:
            return next((found[n] for n in names if n in found), None)

        train, valid, test = pick(TRAIN_SPLIT_NAMES), pick(VALID_SPLIT_NAMES), pick(TEST_SPLIT_NAMES)
        if train is None and valid is None and test is None and _is_class_tree(list(found.values())):
            return cls(train=data_dir)  # class folders only: every split is carved out of them
        if train is None:
            raise DataError(
                f"no train split in {data_dir} (found: {shown or 'no folders'}): "
                "create train/<class>/<images>, e.g. train/001.Affenpinscher/x.jpg, or put the class folders "
                "directly in it to have the validation and test splits made automatically"
            )
        return cls(train=train, valid=valid, test=test)


def _is_class_tree(folders: Sequence[Path]) -> bool:
    """True for a tree of class folders: some folder holds an image, and none holds split folders (a dir of
    several datasets is not a dataset whose classes are their names)."""
    split_names = (*TRAIN_SPLIT_NAMES, *VALID_SPLIT_NAMES, *TEST_SPLIT_NAMES)
    if any((folder / name).is_dir() for folder in folders for name in split_names):
        return False
    return any(any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.rglob("*") if p.is_file())
               for folder in folders if not folder.name.startswith("."))


@dataclass(frozen=True)
class SplitIndex:
    """The image files of one split, with labels, and the files that failed the header check."""

    samples: list[tuple[Path, int]]
    bad_files: list[tuple[Path, str]]
    hidden: int = 0  # image files skipped because a name in their path starts with '.'


def _check_utf8(split_dir: Path, name: str) -> str:
    """Class names end up in JSON and reports: a folder name that is not valid UTF-8 (Python shows its bytes as
    surrogates) is refused here, not at the end of training."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"class folder {ascii(str(split_dir / name))} has a name that is not valid UTF-8: "
                        "rename it (in every split) with UTF-8 characters") from None
    return name


def list_class_dirs(split_dir: Path) -> list[str]:
    """Class folder names of a split, in index order (sorted, as ImageFolder does)."""
    if not split_dir.is_dir():
        raise DataError(f"split dir {split_dir} does not exist: check the path or the channel name")
    names = sorted(_check_utf8(split_dir, p.name) for p in split_dir.iterdir()
                   if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(f"split {split_dir} has no class folders: expected {split_dir}/<class name>/<images>")
    return names


def is_hidden(path: Path, under: Path) -> bool:
    """A dot-name anywhere below ``under`` (``.DS_Store``, ``.ipynb_checkpoints/x-checkpoint.jpg``)."""
    return any(part.startswith(".") for part in path.relative_to(under).parts)


def _image_files(class_dir: Path) -> tuple[list[Path], int]:
    """The class's images, and how many image files were skipped as hidden (a dot-name in their path)."""
    images = [p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    shown = sorted(p for p in images if not is_hidden(p, class_dir))
    return shown, len(images) - len(shown)


def index_split(split_dir: Path, class_dirs: Sequence[str], *, check_headers: bool = True) -> SplitIndex:
    """List every image of a split; empty class dirs are an error; headers are checked in parallel."""
    listed = [_image_files(split_dir / class_dir) for class_dir in class_dirs]
    files_per_class = [files for files, _ in listed]
    hidden = sum(count for _, count in listed)
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
        reasons: list[str | None] = []
        with ThreadPoolExecutor(max_workers=8) as pool, \
                Progress(len(samples), f"checking {split_dir.name} images") as progress:
            for reason in pool.map(check_image_header, (p for p, _ in samples)):
                reasons.append(reason)
                progress.update()
        bad = [(p, r) for (p, _), r in zip(samples, reasons) if r is not None]
    return SplitIndex(samples=samples, bad_files=bad, hidden=hidden)


def check_same_classes(reference: list[str], other: list[str], name: str, ref_dir: Path) -> None:
    if other != reference:
        missing = sorted(set(reference) - set(other))
        extra = sorted(set(other) - set(reference))
        raise DataError(
            f"class folders of {name} differ from those of {ref_dir}: missing {missing or 'none'}, "
            f"extra {extra or 'none'}. Every split needs the same class folders"
        )


def bad_files_message(bad: list[tuple[Path, str]]) -> str:
    lines = [f"  {path}: {reason}" for path, reason in bad[:MAX_LISTED_BAD_FILES]]
    if len(bad) > MAX_LISTED_BAD_FILES:
        lines.append(f"  ... and {len(bad) - MAX_LISTED_BAD_FILES} more")
    return "\n".join(lines)


@dataclass(frozen=True)
class CheckedSplits:
    """The outcome of the data checks: class folders in index order and the usable samples of each split."""

    class_dirs: list[str]
    samples: dict[str, list[tuple[Path, int]]]


def check_splits(paths: dict[str, Path], *, skip_bad_images: bool = False, allow_duplicates: bool = False,
                 root: Path | None = None) -> CheckedSplits:
    """Every data check, before any model is built: same class folders everywhere, images in every class,
    readable headers (unreadable files are an error naming them all, or skipped with ``skip_bad_images``), hidden
    files skipped with a count, no image in two splits (:mod:`dogbreed.data.duplicates`; a warning with
    ``allow_duplicates``). ``root``: the dataset root, whose prepared manifest's SHA-256s are reused."""
    class_dirs = list_class_dirs(paths["train"])
    if len(class_dirs) < 2:
        raise DataError(f"split {paths['train']} has one class folder ({class_dirs[0]}): a classifier needs at "
                        "least 2 classes, one folder per breed")
    indexes: dict[str, SplitIndex] = {}
    for name, path in paths.items():
        check_same_classes(class_dirs, list_class_dirs(path), str(path), paths["train"])
        indexes[name] = index_split(path, class_dirs)
    hidden = sum(index.hidden for index in indexes.values())
    if hidden:
        logger.warning("data check: skipped %d hidden image file(s) (a file or folder name starting with '.', such "
                       "as .ipynb_checkpoints/): they are not training data", hidden)
    if len(paths) > 1:
        check_no_leaks({name: [p for p, _ in index.samples] for name, index in indexes.items()},
                       allow=allow_duplicates, root=root)
    bad = [b for index in indexes.values() for b in index.bad_files]
    if bad and not skip_bad_images:
        raise DataError(
            f"{len(bad)} unreadable image file(s):\n{bad_files_message(bad)}\n"
            "Fix or delete them, or pass --skip-bad-images to train without them"
        )
    if bad:
        logger.warning("skipping %d unreadable image file(s):\n%s", len(bad), bad_files_message(bad))
    bad_paths = {p for p, _ in bad}
    samples: dict[str, list[tuple[Path, int]]] = {}
    for name, index in indexes.items():
        samples[name] = [s for s in index.samples if s[0] not in bad_paths]
        if not samples[name]:
            raise DataError(f"split {paths[name]} has no readable images: add images to it")
    return CheckedSplits(class_dirs=class_dirs, samples=samples)
