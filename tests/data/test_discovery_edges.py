"""Edges of split discovery, the data checks, automatic splits and the DataModule's plumbing that the broader
tests pass through without pinning: each test here was written against a mutant the rest of the suite let live
(a case-sensitive suffix, a hidden folder taken for a class, a per-class seed dropped, an off-by-one in a count)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import pytest

from dogbreed.core.errors import DataError
from dogbreed.core.transforms import Preprocessing
from dogbreed.data import sources
from dogbreed.data.auto_split import SplitFractions, carve_splits, splits_record
from dogbreed.data.datamodule import DogBreedDataModule, LoaderSettings
from dogbreed.data.duplicates import MANIFEST_NAME, check_no_leaks, cross_split_duplicates
from dogbreed.data.ood import ood_sets
from dogbreed.data.splits import SplitDirs, bad_files_message, check_splits, index_split
from tests.helpers.builders import save_image, write_tree


def test_a_folder_whose_only_images_are_hidden_is_not_a_tree_of_class_folders(tmp_path):
    # .ipynb_checkpoints holds images, notes/ holds none: no class folder has an image, so this is no dataset
    save_image(tmp_path / "d" / ".ipynb_checkpoints" / "x-checkpoint.jpg", fmt="JPEG")
    (tmp_path / "d" / "notes").mkdir()
    (tmp_path / "d" / "notes" / "readme.txt").write_text("no images")
    with pytest.raises(DataError) as refused:
        SplitDirs.from_data_dir(tmp_path / "d")
    assert str(refused.value).startswith(
        f"no train split in {tmp_path / 'd'} (found: ['.ipynb_checkpoints', 'notes']): create train/<class>/<images>")


def test_an_upper_case_extension_is_an_image_like_its_lower_case_twin(tmp_path):
    save_image(tmp_path / "train" / "a" / "ONE.JPG", fmt="JPEG")
    save_image(tmp_path / "train" / "a" / "two.Png", fmt="PNG")
    save_image(tmp_path / "train" / "b" / "three.jpeg", fmt="JPEG")
    index = index_split(tmp_path / "train", ["a", "b"])
    assert [(p.relative_to(tmp_path / "train").as_posix(), label) for p, label in index.samples] == [
        ("a/ONE.JPG", 0), ("a/two.Png", 0), ("b/three.jpeg", 1)]
    assert index.bad_files == [] and index.hidden == 0


def test_the_bad_file_list_says_how_many_more_only_beyond_twenty():
    twenty = [(Path(f"/d/{i:02d}.jpg"), "truncated") for i in range(20)]
    assert bad_files_message(twenty).splitlines() == [f"  /d/{i:02d}.jpg: truncated" for i in range(20)]
    twenty_two = twenty + [(Path("/d/20.jpg"), "x"), (Path("/d/21.jpg"), "x")]
    lines = bad_files_message(twenty_two).splitlines()
    assert len(lines) == 21 and lines[-1] == "  ... and 2 more" and lines[-2] == "  /d/19.jpg: truncated"


def test_a_single_class_folder_is_refused_naming_it(tmp_path):
    write_tree(tmp_path, {"train": 2}, breed_dirs=["001.Solo"])
    with pytest.raises(DataError) as refused:
        check_splits({"train": tmp_path / "train"})
    assert str(refused.value) == (f"split {tmp_path / 'train'} has one class folder (001.Solo): a classifier needs at "
                                  "least 2 classes, one folder per breed")


def test_a_leak_between_train_and_valid_is_refused_without_a_test_folder(tmp_path):
    write_tree(tmp_path, {"train": 2, "valid": 1}, breed_dirs=["a", "b"])
    copy = tmp_path / "valid" / "a" / "copy.jpg"
    copy.write_bytes((tmp_path / "train" / "a" / "000.jpg").read_bytes())
    with pytest.raises(DataError) as refused:
        check_splits({"train": tmp_path / "train", "valid": tmp_path / "valid"})
    assert str(refused.value).startswith(
        f"1 image(s) appear byte for byte in more than one split (train:{tmp_path / 'train' / 'a' / '000.jpg'} = "
        f"valid:{copy})")


def _names(count: int, classes: tuple[str, ...] = ("a", "b")) -> list[tuple[Path, int]]:
    return [(Path("/r") / c / f"img_{i:03d}.jpg", label) for label, c in enumerate(classes) for i in range(count)]


def test_a_share_is_rounded_down_with_a_tolerance_so_029_of_100_is_29():
    # 100 * 0.29 is 28.999999999999996 in floating point: without the tolerance validation would get 28
    carved = carve_splits(_names(100), ["a", "b"], SplitFractions(valid=0.29, test=0.0), seed=0, root=Path("/r"))
    assert {split: len(samples) for split, samples in carved.items()} == {"train": 142, "valid": 58}


def test_each_class_is_shuffled_by_its_own_seed_and_test_comes_first():
    # random.Random("3/a") and random.Random("3/b") shuffle img_000..img_009 of each class; the test split takes
    # the first n_test of the shuffled list and validation the next n_valid (values worked out once, by hand)
    carved = carve_splits(_names(10), ["a", "b"], SplitFractions(valid=0.2, test=0.1), seed=3, root=Path("/r"))
    picked = {split: [p.relative_to("/r").as_posix() for p, _ in carved[split]] for split in ("valid", "test")}
    assert picked == {"test": ["a/img_008.jpg", "b/img_003.jpg"],
                      "valid": ["a/img_004.jpg", "a/img_005.jpg", "b/img_002.jpg", "b/img_006.jpg"]}


def test_splits_json_records_an_uncarved_share_as_null_not_zero():
    samples = {"train": _names(10)[:9], "valid": _names(10)[9:], "test": [(Path("/r/a/img_009.jpg"), 0)]}
    record = splits_record(samples, ["a", "b"], SplitFractions(valid=0.0, test=0.1), seed=5, root=Path("/r"))
    assert (record["valid_pct"], record["test_pct"], record["carved"]) == (None, 0.1, ["test"])
    assert record["files"] == {"train": [f"a/img_{i:03d}.jpg" for i in range(9)], "test": ["a/img_009.jpg"]}


def _module(splits: SplitDirs) -> DogBreedDataModule:
    return DogBreedDataModule(splits, preprocessing=Preprocessing(image_size=32), batch_size=4)


def test_a_valid_folder_without_a_test_folder_tests_on_images_carved_from_train(tmp_path):
    splits = SplitDirs(train=tmp_path / "train", valid=tmp_path / "valid")
    assert _module(splits).split_paths() == {"train": tmp_path / "train", "valid": tmp_path / "valid",
                                             "test": tmp_path / "train"}


def test_split_folders_named_in_capitals_still_share_one_dataset_root(tmp_path):
    splits = SplitDirs(train=tmp_path / "Train", valid=tmp_path / "Valid", test=tmp_path / "Test")
    assert _module(splits)._dataset_root() == tmp_path


def test_workers_equal_to_the_batches_are_kept_without_a_capping_line(caplog):
    settings = LoaderSettings(num_workers=3, persistent_workers=True)
    with caplog.at_level(logging.INFO, logger="dogbreed.data.datamodule"):
        assert settings.for_batches(3, "valid") is settings
        assert caplog.messages == []
        assert settings.for_batches(2, "valid").num_workers == 2
    assert caplog.messages == ["3 DataLoader workers capped at 2 for the valid split: it has 2 batches per epoch"]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _serve(monkeypatch, data: bytes, seen: list[str]) -> None:
    def urlopen(url, timeout):
        seen.append(url)
        return _Response(data)

    monkeypatch.setattr(sources.urllib.request, "urlopen", urlopen)


class _Response(io.BytesIO):
    headers: dict[str, str] = {}


def test_a_url_scheme_in_capitals_is_downloaded_and_the_macos_folder_removed(tmp_path, monkeypatch):
    seen: list[str] = []
    _serve(monkeypatch, _zip({"./": b"", "dogImages/train/a/x.jpg": b"1", "__MACOSX/dogImages/train/a/._x.jpg": b"2"}),
           seen)
    root = sources.download_dataset("HTTPS://example.com/dogImages.zip", tmp_path / "data")
    assert seen == ["HTTPS://example.com/dogImages.zip"]
    assert root == tmp_path / "data" / "dogImages" and (root / "train" / "a" / "x.jpg").read_bytes() == b"1"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["dogImages"]  # no __MACOSX, no .part file


def test_two_datasets_side_by_side_are_not_guessed_between(tmp_path):
    (tmp_path / "d" / "one" / "train").mkdir(parents=True)
    (tmp_path / "d" / "two" / "train").mkdir(parents=True)
    assert sources.find_dataset_root(tmp_path / "d") == tmp_path / "d"
    (tmp_path / "e" / "only" / "train").mkdir(parents=True)
    (tmp_path / "e" / "other").mkdir()
    assert sources.find_dataset_root(tmp_path / "e") == tmp_path / "e" / "only"



def test_a_dir_with_its_own_train_folder_is_the_root_even_beside_a_copy_of_another_dataset(tmp_path):
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)  # train/ only: valid and test are carved out of it
    (tmp_path / "d" / "old" / "train").mkdir(parents=True)
    assert sources.find_dataset_root(tmp_path / "d") == tmp_path / "d"

def test_the_generated_ood_sets_are_not_the_same_images():
    selection, report, description = ood_sets(None, seed=0, count=4)
    assert description.startswith("4 + 4 generated noise/texture images")
    assert [image.size for image in selection] != [image.size for image in report]
    assert all(a.tobytes() != b.tobytes() for a in selection for b in report)


def test_a_stale_manifest_entry_whose_size_differs_is_hashed_again(tmp_path):
    root = tmp_path / "prepared"
    for name in ("train/a/x.jpg", "test/a/y.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"1234")  # byte-identical: a leak
    # the manifest still describes an older, 5-byte test/a/y.jpg with another digest: it must not hide the leak
    files = {"train/a/x.jpg": {"output_bytes": 4, "output_sha256": hashlib.sha256(b"1234").hexdigest()},
             "test/a/y.jpg": {"output_bytes": 5, "output_sha256": "b" * 64}}
    (root / MANIFEST_NAME).write_text(json.dumps({"files": files}))
    split_files = {"train": [root / "train/a/x.jpg"], "test": [root / "test/a/y.jpg"]}
    assert cross_split_duplicates(split_files, root) == [[("train", root / "train/a/x.jpg"),
                                                          ("test", root / "test/a/y.jpg")]]


def test_exactly_ten_leaks_are_all_listed_without_an_and_more(tmp_path, caplog):
    split_files: dict[str, list[Path]] = {"train": [], "test": []}
    for i in range(10):
        for split in split_files:
            path = tmp_path / split / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * (i + 1))  # ten sizes: ten groups of two
            split_files[split].append(path)
    with caplog.at_level(logging.WARNING, logger="dogbreed.data.duplicates"):
        assert check_no_leaks(split_files, allow=True) == 10
    (message,) = caplog.messages
    assert message.startswith("10 image(s) appear byte for byte in more than one split (train:")
    assert f"test:{tmp_path / 'test' / '9.jpg'}): the metrics" in message and "; ... and" not in message
    split_files["train"].append(tmp_path / "train" / "10.jpg")
    split_files["test"].append(tmp_path / "test" / "10.jpg")
    for path in (split_files["train"][-1], split_files["test"][-1]):
        path.write_bytes(b"y" * 11)
    with pytest.raises(DataError) as refused:
        check_no_leaks(split_files, allow=False)
    assert "test:" + str(tmp_path / "test" / "9.jpg") + "; ... and 1 more): a test or validation image" in \
        str(refused.value)


def test_an_undecodable_image_is_replaced_by_the_next_image_of_its_own_class(tmp_path, caplog):
    from dogbreed.core.errors import ImageDecodeError
    from dogbreed.data.datamodule import ImageFileDataset

    def load(path: Path) -> str:  # stands in for the transform that decodes: the path tells which file was used
        if path.name.startswith("bad"):
            raise ImageDecodeError(f"{path.name}: truncated")
        return path.name

    samples = [(Path("bad0.jpg"), 0), (Path("b1.jpg"), 1), (Path("bad2.jpg"), 0), (Path("a3.jpg"), 0)]
    dataset = ImageFileDataset(samples, load, decode=None, skip_bad_images=True)
    with caplog.at_level(logging.WARNING, logger="dogbreed.data.datamodule"):
        assert dataset[0] == ("a3.jpg", 0)  # b1.jpg is the next file but another class; bad2.jpg fails too
        assert dataset[1] == ("b1.jpg", 1)
    assert caplog.messages == ["skipping bad0.jpg (--skip-bad-images, 1 decode failure(s) so far): bad0.jpg: truncated"]


def test_loader_options_that_need_workers_are_left_out_without_workers():
    assert LoaderSettings(num_workers=0, pin_memory=True, persistent_workers=True,
                          prefetch_factor=4).dataloader_kwargs() == {"num_workers": 0, "pin_memory": True}
    assert LoaderSettings(num_workers=2, persistent_workers=True, prefetch_factor=4).dataloader_kwargs() == {
        "num_workers": 2, "pin_memory": False, "persistent_workers": True, "prefetch_factor": 4}


@pytest.mark.parametrize("workers, persistent", [(0, False), (3, True)])
def test_a_worker_count_alone_makes_the_workers_persistent(tmp_path, workers, persistent):
    module = DogBreedDataModule(SplitDirs(train=tmp_path / "train"), preprocessing=Preprocessing(image_size=32),
                                num_workers=workers)
    assert (module.loader.num_workers, module.loader.persistent_workers, module.num_workers) == (
        workers, persistent, workers)


def test_evaluation_loaders_keep_their_last_partial_batch(tmp_path):
    write_tree(tmp_path, {"train": 3, "valid": 2, "test": 1})  # 9, 6 and 3 images of 3 classes; batches of 4
    module = DogBreedDataModule(SplitDirs.from_data_dir(tmp_path), preprocessing=Preprocessing(image_size=32),
                                batch_size=4)
    module.setup()
    train, valid, test = module.train_dataloader(), module.val_dataloader(), module.test_dataloader()
    assert (train.drop_last, valid.drop_last, test.drop_last) == (True, False, False)
    assert (len(train), len(valid), len(test)) == (2, 2, 1)  # 9 -> 4 + 4 (the 1 dropped); 6 -> 4 + 2; 3 -> 3


def test_a_manifest_entry_without_a_digest_is_ignored_and_the_file_hashed(tmp_path):
    root = tmp_path / "prepared"
    for name in ("train/a/x.jpg", "test/a/y.jpg"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"1234")
    (root / MANIFEST_NAME).write_text(json.dumps({"files": {"train/a/x.jpg": {"output_bytes": 4}}}))
    split_files = {"train": [root / "train/a/x.jpg"], "test": [root / "test/a/y.jpg"]}
    assert cross_split_duplicates(split_files, root) == [[("train", root / "train/a/x.jpg"),
                                                          ("test", root / "test/a/y.jpg")]]
