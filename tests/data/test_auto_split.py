"""Automatic splits: class folders only (or train/ only) are split per class, seeded, with clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError, DataError
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.auto_split import (
    AutoSplit,
    SplitFractions,
    carve_splits,
    minimum_class_size,
    write_splits_json,
)
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.sources import resolve_splits
from dogbreed.data.splits import SplitDirs
from dogbreed.sagemaker.environment import config_defaults
from dogbreed.training.checkpoints import run_fingerprint
from tests.helpers.builders import BREED_DIRS, write_tree
from tests.helpers.report_checks import json_layout


def flat_tree(root: Path, per_class: int = 10) -> Path:
    return write_tree(root, {"": per_class})  # <root>/<class>/<images>, no split folders


def carved(root: Path, **auto) -> DogBreedDataModule:
    dm = DogBreedDataModule(SplitDirs.from_data_dir(root), preprocessing=Preprocessing(image_size=32), batch_size=4,
                            auto_split=AutoSplit(**auto))
    dm.setup()
    return dm


def files(dm: DogBreedDataModule, split: str) -> list[str]:
    return [p.relative_to(dm.splits.train).as_posix() for p, _ in dm.datasets[split].samples]


def test_a_tree_of_class_folders_is_the_training_split(tmp_path):
    root = flat_tree(tmp_path / "flat", 2)
    assert SplitDirs.from_data_dir(root) == SplitDirs(train=root, valid=None, test=None)


def test_a_dir_without_images_or_split_folders_is_still_refused(tmp_path):
    (tmp_path / "empty" / "nothing_here").mkdir(parents=True)
    with pytest.raises(DataError) as refused:
        SplitDirs.from_data_dir(tmp_path / "empty")
    assert str(refused.value) == (
        f"no train split in {tmp_path / 'empty'} (found: ['nothing_here']): create train/<class>/<images>, e.g. "
        "train/001.Affenpinscher/x.jpg, or put the class folders directly in it to have the validation and test "
        "splits made automatically")


def test_carved_splits_are_stratified_disjoint_and_complete(tmp_path):
    dm = carved(flat_tree(tmp_path / "flat", 10), valid_pct=0.2, test_pct=0.3, seed=7)
    per_class = {split: [sum(1 for _, label in dm.datasets[split].samples if label == c) for c in range(3)]
                 for split in ("train", "valid", "test")}
    assert per_class == {"train": [5, 5, 5], "valid": [2, 2, 2], "test": [3, 3, 3]}
    train, valid, test = (set(files(dm, s)) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test == {f"{breed}/{i:03d}.{'png' if i % 4 == 3 else 'jpg'}"
                                    for breed in BREED_DIRS for i in range(10)}
    assert all(BREED_DIRS[label] == p.parent.name for p, label in dm.datasets["valid"].samples)


def test_the_same_seed_gives_the_same_lists_and_another_seed_other_lists(tmp_path):
    root = flat_tree(tmp_path / "flat", 10)
    first, again, other = (carved(root, seed=seed) for seed in (3, 3, 4))
    for split in ("train", "valid", "test"):
        assert files(first, split) == files(again, split)
    assert files(first, "valid") != files(other, "valid")
    assert first.split_record == again.split_record != other.split_record


def test_defaults_are_a_fifth_for_validation_and_a_tenth_for_testing(tmp_path):
    dm = carved(flat_tree(tmp_path / "flat", 20))
    assert [len(dm.datasets[s]) for s in ("train", "valid", "test")] == [42, 12, 6]  # 14/4/2 per class
    assert dm.split_record["valid_pct"] == 0.2 and dm.split_record["test_pct"] == 0.1


def test_splits_json_lists_each_split_with_counts(tmp_path):
    dm = carved(flat_tree(tmp_path / "flat", 10), valid_pct=0.2, test_pct=0.2, seed=1)
    path = write_splits_json(tmp_path / "reports", dm.split_record)
    record = json.loads(path.read_text(encoding="utf-8"))
    assert json_layout(path.read_text(encoding="utf-8")) == (1, True)  # one space: its file lists are long
    assert record["carved"] == ["valid", "test"] and record["seed"] == 1
    assert record["counts"] == {"train": dict.fromkeys(BREED_DIRS, 6), "valid": dict.fromkeys(BREED_DIRS, 2),
                                "test": dict.fromkeys(BREED_DIRS, 2)}
    assert record["files"] == {split: files(dm, split) for split in ("train", "valid", "test")}


def test_a_pct_for_a_split_the_data_has_is_refused(tiny_tree):
    with pytest.raises(ConfigError) as refused:
        carved(tiny_tree, valid_pct=0.3)
    assert str(refused.value) == (
        f"--valid-pct 0.3 was given but the data has its own validation split ({tiny_tree / 'valid'}): drop "
        "--valid-pct to use that folder, or remove the folder to split automatically")
    with pytest.raises(ConfigError) as refused:
        carved(tiny_tree, test_pct=0.1)
    assert str(refused.value) == (
        f"--test-pct 0.1 was given but the data has its own test split ({tiny_tree / 'test'}): drop --test-pct to "
        "use that folder, or remove the folder to split automatically")


def test_a_class_too_small_to_split_is_named_with_its_minimum(tmp_path):
    root = flat_tree(tmp_path / "flat", 4)
    for extra in sorted((root / BREED_DIRS[1]).iterdir())[2:]:
        extra.unlink()
    with pytest.raises(DataError) as refused:
        carved(root)
    assert str(refused.value) == (
        f"class folder {root / BREED_DIRS[1]} has 2 image(s): too few to split with --valid-pct 0.2 --test-pct 0.1 "
        "(each split needs one image and training one more). Add images to it (at least 3), lower the pcts, or give "
        "the data its own valid/ and test/ folders")


@pytest.mark.parametrize("valid,test,needed", [(0.2, 0.1, 3), (0.2, 0.0, 2), (0.8, 0.1, 6), (0.29, 0.0, 2)])
def test_minimum_class_size(valid, test, needed):
    assert minimum_class_size(SplitFractions(valid=valid, test=test)) == needed


@pytest.mark.parametrize("argv,message", [
    (["--valid-pct", "1.5"], "--valid-pct must be in (0, 1) (e.g. 0.2), got 1.5"),
    (["--valid-pct", "0"], "--valid-pct must be in (0, 1) (e.g. 0.2), got 0.0"),
    (["--test-pct", "-0.1"], "--test-pct must be in [0, 1) (e.g. 0.1; 0 = test on the validation split), got -0.1"),
    (["--valid-pct", "nan"], "--valid-pct must be in (0, 1) (e.g. 0.2), got nan"),
    (["--valid-pct", "0.6", "--test-pct", "0.4"],
     "--valid-pct and --test-pct together must stay below 1: something must be left to train on, got 0.6 + 0.4"),
])
def test_pct_out_of_range_is_refused(argv, message):
    with pytest.raises(ConfigError) as err:
        parse_config(argv)
    assert str(err.value) == message


def test_the_pcts_are_options_in_the_data_section_and_the_record():
    config = parse_config(["--valid-pct", "0.25", "--test-pct", "0"])
    assert (config.data.valid_pct, config.data.test_pct) == (0.25, 0.0)
    assert config.to_dict()["valid_pct"] == 0.25 and config.to_dict()["test_pct"] == 0.0


def test_train_dir_alone_is_split(tmp_path):
    train = write_tree(tmp_path / "data", {"train": 5}) / "train"
    config = parse_config(["--train-dir", str(train)])
    assert resolve_splits(config.data, seed=0) == SplitDirs(train=train)
    with pytest.raises(ConfigError) as refused:
        resolve_splits(parse_config(["--valid-dir", str(train)]).data, seed=0)
    assert str(refused.value) == ("--valid-dir needs --train-dir (--test-dir is optional; a missing --valid-dir or "
                                  "--test-dir is carved out of --train-dir, see --valid-pct and --test-pct)")


def test_a_single_sagemaker_channel_of_class_folders_is_split(tmp_path):
    channel = flat_tree(tmp_path / "opt" / "ml" / "input" / "data" / "training", 5)
    environ = {"SM_MODEL_DIR": str(tmp_path / "opt" / "ml" / "model"), "SM_CHANNEL_TRAINING": str(channel)}
    config = parse_config([], environment_defaults=config_defaults(environ))
    dm = carved(resolve_splits(config.data, seed=0).train)
    assert [len(dm.datasets[s]) for s in ("train", "valid", "test")] == [9, 3, 3]


def test_the_split_lists_are_part_of_the_checkpoint_fingerprint(tmp_path):
    root = flat_tree(tmp_path / "flat", 10)

    def fingerprint(seed: int) -> dict:
        dm = carved(root, seed=seed)
        return run_fingerprint({"seed": 0}, dm.class_dirs, {k: d.samples for k, d in dm.datasets.items()},
                               dm.split_paths())

    assert fingerprint(1) == fingerprint(1)
    assert fingerprint(1)["files"] != fingerprint(2)["files"]
    assert fingerprint(1)["images"] == {"test": 3, "train": 21, "valid": 6}


@pytest.mark.parametrize("valid,test", [(0.2, 0.1), (0.8, 0.1), (0.5, 0.45), (0.05, 0.05)])
def test_every_class_size_from_the_minimum_on_keeps_training_images(valid, test):
    fractions = SplitFractions(valid=valid, test=test)
    root = Path("pool")
    for n in range(minimum_class_size(fractions), 120):
        samples = [(root / "a" / f"{i:03d}.jpg", 0) for i in range(n)]
        split = carve_splits(samples, ["a"], fractions, seed=0, root=root)
        assert len(split["train"]) >= 1 and len(split["valid"]) >= 1 and len(split["test"]) >= 1, n
        assert sum(len(v) for v in split.values()) == n


def test_a_dir_of_several_datasets_is_not_taken_for_class_folders(tmp_path):
    write_tree(tmp_path / "data" / "dogs", {"train": 2, "valid": 1})
    write_tree(tmp_path / "data" / "cats", {"train": 2, "valid": 1})
    with pytest.raises(DataError) as refused:
        SplitDirs.from_data_dir(tmp_path / "data")
    assert str(refused.value) == (
        f"no train split in {tmp_path / 'data'} (found: ['cats', 'dogs']): create train/<class>/<images>, e.g. "
        "train/001.Affenpinscher/x.jpg, or put the class folders directly in it to have the validation and test "
        "splits made automatically")


def test_train_refuses_a_pct_for_an_existing_split_in_one_line(tiny_tree, tmp_path, capsys):
    from dogbreed.cli.train import main

    status = main(["--data-dir", str(tiny_tree), "--valid-pct", "0.2", "--model-dir", str(tmp_path / "model"),
                   "--output-dir", str(tmp_path / "reports"), "--weights", "none", "--finetune", "full",
                   "--accelerator", "cpu", "--logger", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0] == (
        f"error: --valid-pct 0.2 was given but the data has its own validation split ({tiny_tree / 'valid'}): "
        "drop --valid-pct to use that folder, or remove the folder to split automatically")
    assert not (tmp_path / "model").exists() and not (tmp_path / "reports" / "splits.json").exists()


def test_split_dirs_are_an_immutable_value(tmp_path):
    import dataclasses

    dirs = SplitDirs(train=tmp_path / "train", valid=tmp_path / "valid")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dirs.test = tmp_path / "test"  # type: ignore[misc]
    assert {dirs: 1}[SplitDirs(train=tmp_path / "train", valid=tmp_path / "valid")] == 1


@pytest.mark.parametrize("folders, found", [
    ([], "no folders"),
    (["valid", "Test"], "['test', 'valid']"),
    ([f"d{i:02d}" for i in range(12)], "['d00', 'd01', 'd02', 'd03', 'd04', 'd05', 'd06', 'd07', 'd08', 'd09', '...']"),
])
def test_a_dir_without_a_train_split_says_what_it_found(tmp_path, folders, found):
    for name in folders:
        (tmp_path / name / "sub").mkdir(parents=True)  # split-like or empty folders: no images, not a class tree
    with pytest.raises(DataError) as caught:
        SplitDirs.from_data_dir(tmp_path)
    assert str(caught.value) == (
        f"no train split in {tmp_path} (found: {found}): create train/<class>/<images>, e.g. "
        "train/001.Affenpinscher/x.jpg, or put the class folders directly in it to have the validation and test "
        "splits made automatically")


@pytest.mark.parametrize("valid", [0.0, 1.0, 1.5])
def test_a_carved_validation_share_must_lie_strictly_between_0_and_1(tmp_path, valid):
    from dogbreed.data.auto_split import AutoSplit, resolve_fractions

    with pytest.raises(ConfigError) as caught:
        resolve_fractions(SplitDirs(train=tmp_path), AutoSplit(valid_pct=valid, test_pct=0.0))
    assert str(caught.value) == f"--valid-pct must be in (0, 1) when the data has no validation split, got {valid:g}"


def test_the_carved_split_sizes_are_logged_in_split_order(tmp_path, caplog):
    root = flat_tree(tmp_path / "flat", 20)
    with caplog.at_level("INFO", logger="dogbreed.data.datamodule"):
        carved(root)
    assert f"splits made from {root}: 42 train, 12 valid, 6 test" in caplog.messages
    caplog.clear()
    with caplog.at_level("INFO", logger="dogbreed.data.datamodule"):
        dm = carved(root, test_pct=0.0)  # no test split carved: the line names the two there are
    assert f"splits made from {root}: 48 train, 12 valid" in caplog.messages
    assert (f"no test split: final test metrics are computed on the validation split {root}" in caplog.messages)
    assert files(dm, "test") == files(dm, "valid")


def test_without_a_test_folder_and_with_test_pct_0_it_tests_on_the_validation_folder_and_says_so(tmp_path, caplog):
    root = write_tree(tmp_path / "data", {"train": 3, "valid": 2})
    with caplog.at_level("INFO", logger="dogbreed.data.datamodule"):
        dm = carved(root, test_pct=0.0)
    assert caplog.messages[-1] == ("no test split: final test metrics are computed on the validation split "
                                   f"{root / 'valid'}")
    assert dm.datasets["test"].samples == dm.datasets["valid"].samples
