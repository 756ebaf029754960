"""Automatic splits: a tree of class folders only (or with train/ only) gets its validation and test splits
carved out of the training images, class by class (stratified) and seeded.

The rules, in one place:

- ``--valid-pct``: the share of each class's images held out for validation when the data has no validation
  split (default 0.2 then). ``--test-pct``: the same for testing when it has no test split (default 0.1; 0 keeps
  the old behaviour, final test metrics on the validation split).
- A pct given for a split the data already has is refused: the folder would win silently, and whoever typed
  ``--valid-pct`` expects it to act. The message says which folder it is and how to go on.
- Per class of ``n`` images: ``max(1, floor(n * pct))`` for each carved split, the rest trains (so training keeps
  at least ``n * (1 - valid - test)``); at least one image must stay for training, else an error names the class,
  its count and the minimum it needs.
- Within a class the files are sorted by path, then shuffled by ``random.Random(f"{seed}/{class folder}")``: the
  same seed gives the same lists on any machine, and adding images to one class leaves the others' lists alone.
- The lists are written to ``splits.json`` next to the reports; each carved split keeps the training dir as its
  root, so the checkpoint fingerprint (split name + relative path of every file) changes when the lists do.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dogbreed.core.errors import ConfigError, DataError
from dogbreed.core.fileio import atomic_write, strict_json
from dogbreed.data.splits import SplitDirs

DEFAULT_VALID_PCT = 0.2
DEFAULT_TEST_PCT = 0.1
SPLITS_FILENAME = "splits.json"
Samples = list[tuple[Path, int]]


@dataclass(frozen=True)
class AutoSplit:
    """What the user asked for: ``None`` = the default when that split is missing. ``seed``: the run's ``--seed``."""

    valid_pct: float | None = None
    test_pct: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class SplitFractions:
    """The shares carved per class; 0 = not carved (the data has that split, or ``--test-pct 0``)."""

    valid: float
    test: float

    @property
    def carves(self) -> bool:
        return self.valid > 0 or self.test > 0


def resolve_fractions(splits: SplitDirs, auto: AutoSplit) -> SplitFractions:
    """The shares to carve for these split dirs; a pct given for a split that exists is a :class:`ConfigError`."""
    for option, value, folder, what in (("--valid-pct", auto.valid_pct, splits.valid, "validation"),
                                        ("--test-pct", auto.test_pct, splits.test, "test")):
        if value is not None and folder is not None:
            raise ConfigError(f"{option} {value:g} was given but the data has its own {what} split ({folder}): "
                              f"drop {option} to use that folder, or remove the folder to split automatically")
    valid = 0.0 if splits.valid is not None else (DEFAULT_VALID_PCT if auto.valid_pct is None else auto.valid_pct)
    test = 0.0 if splits.test is not None else (DEFAULT_TEST_PCT if auto.test_pct is None else auto.test_pct)
    if splits.valid is None and not 0 < valid < 1:
        raise ConfigError(f"--valid-pct must be in (0, 1) when the data has no validation split, got {valid:g}")
    if not (0 <= test < 1 and valid + test < 1):
        raise ConfigError(f"--valid-pct {valid:g} and --test-pct {test:g} leave nothing to train on: together "
                          "they must stay below 1 (e.g. 0.2 and 0.1)")
    return SplitFractions(valid=valid, test=test)


def _share(count: int, fraction: float) -> int:
    """Images of a class of ``count`` that a split of ``fraction`` takes (at least one; rounded down, with a
    tolerance so that 0.29 x 100 is 29, not 28.999...)."""
    return 0 if fraction <= 0 else max(1, math.floor(count * fraction + 1e-9))


def _left_for_training(count: int, fractions: SplitFractions) -> int:
    return count - _share(count, fractions.valid) - _share(count, fractions.test)


def minimum_class_size(fractions: SplitFractions) -> int:
    """The fewest images a class needs so that each carved split gets one and training keeps one."""
    return next(n for n in range(1, 100_000) if _left_for_training(n, fractions) >= 1)


def _pct_flags(fractions: SplitFractions) -> str:
    parts = [f"--valid-pct {fractions.valid:g}"] if fractions.valid else []
    return " ".join(parts + ([f"--test-pct {fractions.test:g}"] if fractions.test else []))


def carve_splits(train: Samples, class_dirs: Sequence[str], fractions: SplitFractions, *, seed: int,
                 root: Path) -> dict[str, Samples]:
    """``{"train": ..., "valid": ..., "test": ...}`` (only the carved splits besides train) from the training
    samples of ``root``, class by class."""
    by_class: dict[int, list[Path]] = {label: [] for label in range(len(class_dirs))}
    for path, label in train:
        by_class[label].append(path)
    carved: dict[str, Samples] = {"train": [], "valid": [], "test": []}
    for label, class_dir in enumerate(class_dirs):
        files = sorted(by_class[label], key=lambda p: Path(p).relative_to(root).as_posix())
        if _left_for_training(len(files), fractions) < 1:
            raise DataError(
                f"class folder {root / class_dir} has {len(files)} image(s): too few to split with "
                f"{_pct_flags(fractions)} (each split needs one image and training one more). Add images to it "
                f"(at least {minimum_class_size(fractions)}), lower the pcts, or give the data its own valid/ and "
                "test/ folders")
        random.Random(f"{seed}/{class_dir}").shuffle(files)
        n_test, n_valid = _share(len(files), fractions.test), _share(len(files), fractions.valid)
        parts = {"test": files[:n_test], "valid": files[n_test:n_test + n_valid], "train": files[n_test + n_valid:]}
        for split, paths in parts.items():
            carved[split].extend((path, label) for path in sorted(paths))
    return {split: samples for split, samples in carved.items()
            if split == "train" or getattr(fractions, split) > 0}


def splits_record(samples: dict[str, Samples], class_dirs: Sequence[str], fractions: SplitFractions, *, seed: int,
                  root: Path) -> dict[str, Any]:
    """What ``splits.json`` holds: how the splits were made, per-class counts and each carved split's files
    (relative to ``root``, the training dir they were carved from)."""
    carved = ["train", *(s for s in ("valid", "test") if getattr(fractions, s) > 0)]
    counts = {split: {class_dirs[label]: n for label, n in sorted(Counter(lab for _, lab in samples[split]).items())}
              for split in carved}
    return {
        "root": str(root), "seed": seed, "valid_pct": fractions.valid or None, "test_pct": fractions.test or None,
        "carved": carved[1:], "counts": counts,
        "files": {split: [Path(p).relative_to(root).as_posix() for p, _ in samples[split]] for split in carved},
    }


def write_splits_json(output_dir: Path, record: dict[str, Any]) -> Path:
    """``<output_dir>/splits.json``, written atomically."""
    path = Path(output_dir) / SPLITS_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    text = strict_json(record, indent=1) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    return path
