"""Issue 27, items 4 and 5 on the data check: hidden files skipped with a count; images in more than one split
named and refused unless --allow-duplicates; a prepared manifest's SHA-256 reused instead of hashing again."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from dogbreed.core.errors import DataError
from dogbreed.data.duplicates import MANIFEST_NAME, cross_split_duplicates
from dogbreed.data.splits import check_splits
from tests.helpers.builders import write_tree


def _paths(root: Path) -> dict[str, Path]:
    return {split: root / split for split in ("train", "valid", "test")}


def test_images_in_hidden_folders_are_skipped_and_counted(tmp_path: Path, caplog) -> None:
    root = write_tree(tmp_path / "data", {"train": 2, "valid": 1, "test": 1})
    hidden = root / "train" / "001.Affenpinscher" / ".ipynb_checkpoints"
    hidden.mkdir()
    shutil.copy(root / "train" / "001.Affenpinscher" / "000.jpg", hidden / "000-checkpoint.jpg")
    shutil.copy(root / "train" / "002.Afghan_hound" / "000.jpg", root / "train" / "002.Afghan_hound" / ".x.jpg")
    with caplog.at_level(logging.WARNING, logger="dogbreed.data.splits"):
        checked = check_splits(_paths(root))
    assert [p.name for p, label in checked.samples["train"] if label == 0] == ["000.jpg", "001.jpg"]
    assert len(checked.samples["train"]) == 6
    assert [r.getMessage() for r in caplog.records] == [
        "data check: skipped 2 hidden image file(s) (a file or folder name starting with '.', such as "
        ".ipynb_checkpoints/): they are not training data"]


def test_an_image_copied_into_test_is_refused_by_name(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "data", {"train": 2, "valid": 1, "test": 1})
    source = root / "train" / "001.Affenpinscher" / "001.jpg"
    leak = root / "test" / "001.Affenpinscher" / "leak.jpg"
    shutil.copy(source, leak)
    with pytest.raises(DataError) as caught:
        check_splits(_paths(root))
    assert str(caught.value) == (
        f"1 image(s) appear byte for byte in more than one split (train:{source} = test:{leak}): a test or "
        "validation image the model trains on inflates its accuracy. Remove the copies, or pass --allow-duplicates "
        "to train anyway")


def test_allow_duplicates_trains_with_a_warning(tmp_path: Path, caplog) -> None:
    root = write_tree(tmp_path / "data", {"train": 2, "valid": 1, "test": 1})
    source, copy = root / "train" / "001.Affenpinscher" / "001.jpg", root / "valid" / "001.Affenpinscher" / "copy.jpg"
    shutil.copy(source, copy)
    with caplog.at_level(logging.WARNING, logger="dogbreed.data.duplicates"):
        checked = check_splits(_paths(root), allow_duplicates=True)
    assert len(checked.samples["valid"]) == 4
    assert [r.getMessage() for r in caplog.records] == [
        f"1 image(s) appear byte for byte in more than one split (train:{source} = valid:{copy}): the metrics of "
        "those splits are inflated (--allow-duplicates)"]


def test_the_prepared_manifest_sha256_is_used_where_it_exists(tmp_path: Path) -> None:
    root = tmp_path / "prepared"
    (root / "train" / "a").mkdir(parents=True)
    (root / "test" / "a").mkdir(parents=True)
    (root / "train" / "a" / "x.jpg").write_bytes(b"1234")
    (root / "test" / "a" / "y.jpg").write_bytes(b"5678")  # same size, other bytes: only the manifest calls them equal
    files = {name: {"output_bytes": 4, "output_sha256": "f" * 64} for name in ("train/a/x.jpg", "test/a/y.jpg")}
    (root / MANIFEST_NAME).write_text(json.dumps({"files": files}))
    split_files = {"train": [root / "train" / "a" / "x.jpg"], "test": [root / "test" / "a" / "y.jpg"]}
    assert len(cross_split_duplicates(split_files, root)) == 1  # the recorded digests, not a fresh hash
    assert cross_split_duplicates(split_files) == []
