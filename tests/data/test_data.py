import io
import shutil

import numpy as np
import pytest
from PIL import Image

from dogbreed.core.errors import DataError, ImageDecodeError
from dogbreed.core.images import open_image
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.auto_split import AutoSplit
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs, display_name, list_class_dirs
from tests.helpers.builders import BREED_DIRS, save_image, write_tree


def make_dm(splits: SplitDirs, **kwargs) -> DogBreedDataModule:
    return DogBreedDataModule(splits, preprocessing=Preprocessing(image_size=32), batch_size=4, **kwargs)


@pytest.mark.parametrize(
    "folder,name",
    [("001.Affenpinscher", "Affenpinscher"), ("003.Airedale_terrier", "Airedale terrier"),
     ("124.Poodle", "Poodle"), ("Beagle", "Beagle"), ("12-Cocker_spaniel", "Cocker spaniel")],
)
def test_class_display_names(folder, name):
    assert display_name(folder) == name


def test_classes_in_index_order_with_display_names(tiny_tree):
    dm = make_dm(SplitDirs.from_data_dir(tiny_tree))
    dm.setup()
    assert dm.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert list_class_dirs(tiny_tree / "train") == BREED_DIRS
    labels = sorted({label for _, label in dm.datasets["train"].samples})
    assert labels == [0, 1, 2]
    assert all(BREED_DIRS[label] == path.parent.name for path, label in dm.datasets["train"].samples)


@pytest.mark.parametrize("alias", ["val", "validation", "valid"])
def test_validation_split_aliases(tiny_tree, alias):
    if alias != "valid":
        (tiny_tree / "valid").rename(tiny_tree / alias)
    assert SplitDirs.from_data_dir(tiny_tree).valid.name == alias


def test_missing_train_split_names_the_dir(tiny_tree):
    shutil.rmtree(tiny_tree / "train")
    with pytest.raises(DataError) as refused:
        SplitDirs.from_data_dir(tiny_tree)
    assert str(refused.value) == (
        f"no train split in {tiny_tree} (found: ['test', 'valid']): create train/<class>/<images>, e.g. "
        "train/001.Affenpinscher/x.jpg, or put the class folders directly in it to have the validation and test "
        "splits made automatically")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError) as refused:
        SplitDirs.from_data_dir(tmp_path / "nope")
    # prepare and package take --data-dir too, and have no --download or --demo to offer
    assert str(refused.value) == (f"data dir {tmp_path / 'nope'} does not exist: pass --data-dir pointing at a folder "
                                  "with train/ valid/ test/ subfolders")


def test_a_missing_training_data_dir_names_the_other_sources(tmp_path):
    from dogbreed.config.sections import DataOptions
    from dogbreed.data.sources import resolve_splits

    with pytest.raises(DataError) as refused:
        resolve_splits(DataOptions(data_dir=tmp_path / "nope"), seed=0)
    assert str(refused.value) == (f"data dir {tmp_path / 'nope'} does not exist: pass --data-dir pointing at a folder "
                                  "with train/ valid/ test/ subfolders, or use --download or --demo")


def test_split_with_no_images(tiny_tree):
    for f in (tiny_tree / "test").rglob("*"):
        if f.is_file():
            f.unlink()
    with pytest.raises(DataError) as refused:
        make_dm(SplitDirs.from_data_dir(tiny_tree)).setup()
    assert str(refused.value) == (f"split {tiny_tree / 'test'} has no images (.bmp, .gif, .jpeg, .jpg, .png, .ppm, "
                                  ".tif, .tiff, .webp) in its class folders: put the images in <split>/<class name>/")


def test_empty_class_dir(tiny_tree):
    for f in (tiny_tree / "valid" / BREED_DIRS[1]).iterdir():
        f.unlink()
    with pytest.raises(DataError) as refused:
        make_dm(SplitDirs.from_data_dir(tiny_tree)).setup()
    assert str(refused.value) == (f"class dir {tiny_tree / 'valid' / BREED_DIRS[1]} has no images: add images or "
                                  "remove the folder from every split")


def test_class_sets_that_differ_between_splits(tiny_tree):
    shutil.rmtree(tiny_tree / "test" / BREED_DIRS[2])
    save_image(tiny_tree / "test" / "099.Extra_dog" / "a.jpg")
    with pytest.raises(DataError) as err:
        make_dm(SplitDirs.from_data_dir(tiny_tree)).setup()
    assert str(err.value) == (
        f"class folders of {tiny_tree / 'test'} differ from those of {tiny_tree / 'train'}: missing "
        f"['{BREED_DIRS[2]}'], extra ['099.Extra_dog']. Every split needs the same class folders")


def test_every_corrupt_image_is_listed(tiny_tree):
    bad1 = tiny_tree / "train" / BREED_DIRS[0] / "garbage.jpg"
    bad1.write_bytes(b"this is not a jpeg")
    bad2 = tiny_tree / "test" / BREED_DIRS[1] / "empty.png"
    bad2.write_bytes(b"")
    with pytest.raises(DataError) as err:
        make_dm(SplitDirs.from_data_dir(tiny_tree)).setup()
    assert str(err.value) == (
        "2 unreadable image file(s):\n"
        f"  {bad1}: UnidentifiedImageError: cannot identify image file '{bad1}'\n"
        f"  {bad2}: UnidentifiedImageError: cannot identify image file '{bad2}'\n"
        "Fix or delete them, or pass --skip-bad-images to train without them")


def test_skip_bad_images_drops_them(tiny_tree):
    bad = tiny_tree / "train" / BREED_DIRS[0] / "garbage.jpg"
    bad.write_bytes(b"nope")
    dm = make_dm(SplitDirs.from_data_dir(tiny_tree), skip_bad_images=True)
    dm.setup()
    paths = [p for p, _ in dm.datasets["train"].samples]
    assert bad not in paths and len(paths) == 4 * len(BREED_DIRS)


def test_non_image_files_are_ignored(tiny_tree):
    (tiny_tree / "train" / BREED_DIRS[0] / "notes.txt").write_text("hello")
    (tiny_tree / "train" / BREED_DIRS[0] / ".DS_Store").write_bytes(b"\0")
    dm = make_dm(SplitDirs.from_data_dir(tiny_tree))
    dm.setup()
    assert len(dm.datasets["train"]) == 4 * len(BREED_DIRS)


def test_missing_test_split_with_test_pct_zero_falls_back_to_validation(tiny_tree):
    shutil.rmtree(tiny_tree / "test")
    dm = make_dm(SplitDirs.from_data_dir(tiny_tree), auto_split=AutoSplit(test_pct=0.0))
    dm.setup()
    assert dm.datasets["test"].samples == dm.datasets["valid"].samples
    assert dm.split_record is None and len(dm.datasets["train"]) == 4 * len(BREED_DIRS)


def test_missing_test_split_is_carved_from_train_by_default(tiny_tree):
    shutil.rmtree(tiny_tree / "test")
    dm = make_dm(SplitDirs.from_data_dir(tiny_tree))
    dm.setup()
    # 4 training images per class: 10% rounds to 0, and a carved split takes at least one per class
    assert [len(dm.datasets[s]) for s in ("train", "valid", "test")] == [9, 6, 3]
    test_paths = {p for p, _ in dm.datasets["test"].samples}
    assert all(p.parent.parent == tiny_tree / "train" for p in test_paths)
    assert not test_paths & {p for p, _ in dm.datasets["train"].samples}
    assert dm.split_record["carved"] == ["test"] and dm.split_record["test_pct"] == 0.1


def test_explicit_split_dirs(tmp_path):
    write_tree(tmp_path / "a", {"train": 2})
    write_tree(tmp_path / "b", {"valid": 2}, seed=1)  # other images: the same seed would copy train into valid
    dm = make_dm(SplitDirs(train=tmp_path / "a" / "train", valid=tmp_path / "b" / "valid"))
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape[1:] == (3, 32, 32)


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def test_truncated_jpeg_still_loads(tmp_path):
    rng = np.random.default_rng(0)
    data = _jpeg_bytes(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    image = open_image(path)
    assert image.size == (64, 64) and image.mode == "RGB"


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_every_image_mode_becomes_rgb(tmp_path, mode):
    base = Image.new("RGB", (20, 10), (10, 200, 30))
    image = base.convert(mode) if mode not in ("I;16",) else Image.new("I;16", (20, 10), 40000)
    fmt = "JPEG" if mode == "CMYK" else "PNG" if mode != "1" else "BMP"
    path = tmp_path / f"img.{fmt.lower()}"
    image.save(path, format=fmt)
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (20, 10)
    if mode == "I;16":
        assert out.getpixel((0, 0)) == (155, 155, 155)  # 40000/65535*255, not clipped to white


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    path = tmp_path / "clear.png"
    image.save(path)
    assert open_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert open_image(path).size == (20, 40)


@pytest.mark.parametrize("payload", [b"", b"\x89PNG\r\n\x1a\n garbage", b"GIF89a"])
def test_undecodable_bytes_raise_our_error(payload):
    with pytest.raises(ImageDecodeError):
        open_image(payload)
