"""``prepare``: the same tree, images decoded once, oriented and reduced, a manifest, idempotent re-runs, corrupt
sources named, and training on the result."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogbreed.core.errors import DataError
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.prepare import MANIFEST_NAME, default_short_side, prepare_dataset, prepared_warning
from dogbreed.data.splits import SplitDirs
from dogbreed.training.run import train
from entry_points.prepare import main as prepare_main
from tests.helpers.builders import fast_config, write_tree
from tests.helpers.report_checks import json_layout

REPO = Path(__file__).resolve().parents[2]
N = 48  # short side used in these tests
CLASSES = ["001.Affenpinscher", "002.Afghan_hound"]


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A smooth gradient with a class-independent bright square in the top-left corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                      np.full_like(x, int(rng.integers(40, 200)))], axis=2).astype(np.uint8)
    array[: height // 4, : width // 4] = (250, 250, 250)
    return Image.fromarray(array, "RGB")


def _rotated_jpeg(path: Path, displayed: Image.Image) -> None:
    """Stored as a camera would: pixels rotated, EXIF orientation 6 says 'rotate 90 clockwise to display'."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    displayed.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """train/valid/test with: large JPEGs (resized), a small JPEG (copied), a PNG with alpha (converted, stays PNG),
    an EXIF-rotated JPEG, a greyscale JPEG, and a non-image file that training ignores."""
    root = tmp_path / "src"
    for split, count in (("train", 3), ("valid", 2), ("test", 2)):
        for label, breed in enumerate(CLASSES):
            folder = root / split / breed
            folder.mkdir(parents=True)
            for i in range(count):
                _photo(160 + 20 * i, 120, seed=label * 10 + i).save(folder / f"big_{i}.jpg", quality=92)
    folder = root / "train" / CLASSES[0]
    _photo(40, 30, seed=99).save(folder / "small.jpg", quality=90)
    rgba = _photo(120, 90, seed=5).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    _rotated_jpeg(folder / "rotated.jpg", _photo(90, 150, seed=6))
    _photo(100, 200, seed=7).convert("L").save(root / "train" / CLASSES[1] / "grey.jpg", quality=90)
    (folder / "notes.txt").write_text("not an image")
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_short_side_is_115_percent_of_the_image_size():
    assert default_short_side(224) == 258 and default_short_side(64) == 74 and default_short_side(384) == 442


def test_prepared_tree_has_the_same_splits_classes_and_file_names(source, tmp_path):
    out = tmp_path / "prepared"
    report = prepare_dataset(source, out, short_side=N)
    expected = _files(source) - {"train/001.Affenpinscher/notes.txt"}
    assert _files(out) == expected and len(expected) == 18
    assert report.counts == {"resized": 17, "copied": 1, "unchanged": 0}  # small.jpg (40x30) needs nothing
    splits = SplitDirs.from_data_dir(out)
    assert splits.test is not None
    assert (splits.train.name, splits.valid.name, splits.test.name) == ("train", "valid", "test")


def test_images_are_oriented_resized_and_keep_their_format(source, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    train = out / "train" / CLASSES[0]
    with Image.open(train / "big_0.jpg") as big:
        assert big.format == "JPEG" and big.mode == "RGB" and big.size == (64, 48)  # 160x120 -> short side 48
    with Image.open(train / "rotated.jpg") as rotated:  # displayed 90x150 -> 48x80, no orientation tag left
        assert rotated.size == (48, 80) and rotated.getexif().get(0x0112) in (None, 1)
        corner = np.asarray(rotated.convert("RGB"))[:10, :6].mean(axis=(0, 1))
        assert corner.min() > 220  # the bright square is top-left as displayed, not where the camera stored it
    with Image.open(train / "alpha.png") as alpha:
        assert alpha.format == "PNG" and alpha.mode == "RGB" and alpha.size == (64, 48)
    assert (train / "small.jpg").read_bytes() == (source / "train" / CLASSES[0] / "small.jpg").read_bytes()
    with Image.open(out / "train" / CLASSES[1] / "grey.jpg") as grey:
        assert grey.size == (48, 96)
    reference = np.asarray(_photo(160, 120, seed=0).resize((64, 48), Image.Resampling.LANCZOS), dtype=float)
    with Image.open(train / "big_0.jpg") as big:
        assert np.abs(np.asarray(big, dtype=float) - reference).mean() < 4.0  # grey levels: JPEG noise only


def test_manifest_records_source_sizes_short_side_and_checksums(source, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert json_layout((out / MANIFEST_NAME).read_text()) == (1, True)  # one space per level: a line per file
    assert manifest["short_side"] == N and manifest["jpeg_quality"] == 95 and manifest["complete"] is True
    assert manifest["image_size"] is None  # N was given, not derived from --image-size
    files = manifest["files"]
    assert set(files) == _files(out)
    for name, entry in files.items():
        assert entry["source_sha256"] == _sha(source / name) and entry["output_sha256"] == _sha(out / name)
        assert entry["source_bytes"] == (source / name).stat().st_size
        assert entry["output_bytes"] == (out / name).stat().st_size
        with Image.open(out / name) as image:
            assert list(image.size) == entry["output_size"]
    assert files["train/001.Affenpinscher/rotated.jpg"]["source_size"] == [90, 150]  # as displayed
    assert files["train/001.Affenpinscher/big_2.jpg"]["source_size"] == [200, 120]
    assert files["train/001.Affenpinscher/small.jpg"]["action"] == "copied"
    totals = manifest["totals"]
    assert totals["images"] == 18
    assert totals["source_bytes"] == sum((source / n).stat().st_size for n in files)
    assert totals["output_bytes"] == sum((out / n).stat().st_size for n in files)


def test_re_running_changes_nothing_and_then_only_what_changed(source, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    before = {name: ((out / name).stat().st_mtime_ns, _sha(out / name)) for name in _files(out)}
    manifest = (out / MANIFEST_NAME).read_text()
    again = prepare_dataset(source, out, short_side=N)
    assert again.counts == {"unchanged": 18}
    assert {name: ((out / name).stat().st_mtime_ns, _sha(out / name)) for name in _files(out)} == before
    assert (out / MANIFEST_NAME).read_text() == manifest
    changed = source / "valid" / CLASSES[1] / "big_0.jpg"
    _photo(300, 100, seed=42).save(changed, quality=92)
    (source / "test" / CLASSES[0] / "big_1.jpg").unlink()
    third = prepare_dataset(source, out, short_side=N)
    assert third.counts == {"unchanged": 16, "resized": 1, "removed": 1}
    with Image.open(out / "valid" / CLASSES[1] / "big_0.jpg") as image:
        assert image.size == (144, 48)
    assert not (out / "test" / CLASSES[0] / "big_1.jpg").exists()
    fourth = prepare_dataset(source, out, short_side=40)  # a new N re-prepares everything
    assert fourth.counts == {"unchanged": 0, "resized": 16, "copied": 1}


def test_a_damaged_output_file_is_prepared_again(source, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    damaged = out / "train" / CLASSES[0] / "big_1.jpg"
    good = damaged.read_bytes()
    damaged.write_bytes(good[:-3] + b"xyz")  # same size, different content
    report = prepare_dataset(source, out, short_side=N)
    assert report.counts["resized"] == 1 and damaged.read_bytes() == good


def test_a_corrupt_source_is_reported_by_name_and_the_rest_is_prepared(source, tmp_path, capsys):
    bad = source / "valid" / CLASSES[0] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as raised:
        prepare_dataset(source, out, short_side=N)
    assert str(raised.value) == (
        f"1 image(s) in {source} could not be decoded (the others are prepared in {out}):\n"
        f"  valid/001.Affenpinscher/broken.jpg: cannot decode image {bad}: Truncated File Read\n"
        "Fix or delete them and run prepare again, or pass --skip-bad-images to leave them out")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] is False and list(manifest["failed"]) == ["valid/001.Affenpinscher/broken.jpg"]
    assert len(manifest["files"]) == 18 and not (out / "valid" / CLASSES[0] / "broken.jpg").exists()
    assert "unfinished prepared dataset" in (prepared_warning(out, 32) or "")
    status = prepare_main(["--data-dir", str(source), "--output", str(out), "--short-side", str(N), "--workers", "1"])
    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == (
        f"error: 1 image(s) in {source} could not be decoded (the others are prepared in {out}): "
        f"valid/001.Affenpinscher/broken.jpg: cannot decode image {bad}: Truncated File Read; "
        "Fix or delete them and run prepare again, or pass --skip-bad-images to leave them out")
    skipped = prepare_dataset(source, out, short_side=N, skip_bad_images=True)
    assert skipped.counts["unchanged"] == 18 and list(skipped.failed) == ["valid/001.Affenpinscher/broken.jpg"]
    assert json.loads((out / MANIFEST_NAME).read_text())["complete"] is True


def test_refuses_an_output_that_is_not_a_prepared_dataset_or_overlaps_the_source(source, tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    with pytest.raises(DataError) as refused:
        prepare_dataset(source, occupied, short_side=N)
    assert str(refused.value) == (f"--output {occupied} is not empty and holds no prepared_manifest.json: it is not a "
                                  "prepared dataset. Choose a new or empty folder")
    assert (occupied / "mine.txt").read_text() == "keep me"
    with pytest.raises(DataError) as refused:
        prepare_dataset(source, source / "prepared", short_side=N)
    assert str(refused.value) == (f"--output {source / 'prepared'} overlaps --data-dir {source}: choose a folder "
                                  "outside the dataset")
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    stray = out / "train" / CLASSES[0] / "stray.jpg"
    _photo(60, 60, seed=3).save(stray)
    with pytest.raises(DataError) as raised:
        prepare_dataset(source, out, short_side=N)
    assert str(raised.value) == (f"1 file(s) in {out} were not written by prepare and training would read them:\n"
                                 f"  {stray}: not from the data dir\nRemove them or choose a new --output")


def test_prepare_with_worker_processes_writes_the_same_files(source, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    prepare_dataset(source, one, short_side=N, workers=1)
    prepare_dataset(source, two, short_side=N, workers=2)
    assert {n: _sha(one / n) for n in _files(one)} == {n: _sha(two / n) for n in _files(two)}


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_training_on_a_prepared_tree_sees_the_same_samples_and_prints_the_data_wait(tmp_path, capsys):
    source = write_tree(tmp_path / "src", {"train": 4, "valid": 2, "test": 2}, seed=3)
    out = tmp_path / "prepared"
    prepare_dataset(source, out, image_size=32)
    assert json.loads((out / MANIFEST_NAME).read_text())["short_side"] == 37
    result = train(fast_config(tmp_path / "run", out, epochs=1, batch_size=4))
    assert result.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert result.test_metrics["acc"] >= 0.0 and len(result.history) == 1
    stdout = capsys.readouterr().out
    assert "data wait: " in stdout and "of training step time (2 steps" in stdout
    # ... and the run summary repeats it, between the phase durations and where everything went
    wait_lines = [line for line in result.summary if "data wait: " in line]
    assert len(wait_lines) == 1 and wait_lines[0].startswith("  data wait: ")
    assert "of training step time (2 steps" in wait_lines[0]
    total = result.summary.index(next(line for line in result.summary if line.startswith("  total ")))
    places = result.summary.index(next(line for line in result.summary if line.startswith("model artifact")))
    assert total < result.summary.index(wait_lines[0]) < places


def test_training_warns_when_the_prepared_short_side_is_below_the_eval_resize(tmp_path, caplog):
    source = write_tree(tmp_path / "src", {"train": 2, "valid": 1}, seed=4)
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=40)
    with caplog.at_level(logging.WARNING):
        DogBreedDataModule(SplitDirs.from_data_dir(out), preprocessing=Preprocessing(image_size=64)).setup()
    assert caplog.messages == [
        f"{out} was prepared with short side 40, smaller than the 66 px that --image-size 64 evaluates at: images are "
        "enlarged. Prepare it again with --image-size 64"]


def test_prepare_help_answers_without_loading_torch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "entry_points.prepare", "--help"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert proc.returncode == 0 and "python -m entry_points.prepare" in proc.stdout and "--short-side" in proc.stdout
    assert "dogbreed" in imported and imported.isdisjoint({"torch", "torchvision", "PIL", "numpy"})


def test_an_unknown_option_is_one_error_line(capsys):
    assert prepare_main(["--data-dir", "x", "--output", "y", "--shortside", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown option(s) --shortside (did you mean --short-side?). Options of python -m entry_points.prepare: "
        "--data-dir, --help, --image-size, --output, --quality, --short-side, --skip-bad-images, --workers "
        "(hyphens or underscores)")


@pytest.mark.parametrize("counts, source, output, line", [
    ({}, 0, 0, "prepared dataset out (short side 258; nothing to do): 0.0 MB of source images -> 0.0 MB. "
               "Train with --data-dir out"),
    ({"unchanged": 4, "resized": 10, "copied": 0}, 52_300_000, 7_845_000,
     "prepared dataset out (short side 258; 10 resized, 4 unchanged): 52.3 MB of source images -> 7.8 MB (15.0%). "
     "Train with --data-dir out"),
])
def test_the_prepare_summary_reads_back(counts, source, output, line):
    from dogbreed.data.prepare import PrepareReport

    report = PrepareReport(output=Path("out"), short_side=258, counts=counts, source_bytes=source,
                           output_bytes=output)
    assert report.summary() == line


def test_the_manifest_totals_are_the_sums_of_its_files(source, tmp_path):
    out = tmp_path / "prepared"
    report = prepare_dataset(source, out, short_side=N)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    source_bytes = sum(entry["source_bytes"] for entry in manifest["files"].values())
    output_bytes = sum((out / name).stat().st_size for name in manifest["files"])
    assert manifest["totals"] == {"images": 18, "source_bytes": source_bytes, "output_bytes": output_bytes,
                                  "output_share": round(output_bytes / source_bytes, 4)}
    assert (report.source_bytes, report.output_bytes) == (source_bytes, output_bytes)
    assert 0 < manifest["totals"]["output_share"] < 1 and manifest["complete"] is True


def _same_size_jpeg(path: Path, image: Image.Image) -> None:
    """Replace ``path`` with ``image`` as a JPEG of exactly the old byte count (zeros after the end-of-image
    marker, which decoders ignore): only the modification time and the content tell the change."""
    size = path.stat().st_size
    for quality in range(92, 10, -5):
        image.save(path, quality=quality)
        data = path.read_bytes()
        if len(data) <= size:
            path.write_bytes(data + b"\0" * (size - len(data)))
            return
    raise AssertionError("no quality gives a JPEG small enough")


def test_a_source_rewritten_at_the_same_size_is_prepared_again_and_a_touched_one_is_not(source, tmp_path):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    rewritten = source / "valid" / CLASSES[1] / "big_0.jpg"
    size = rewritten.stat().st_size
    _same_size_jpeg(rewritten, _photo(300, 100, seed=42))
    os.utime(rewritten, ns=(10**18, 10**18))  # a new modification time, the size unchanged
    assert rewritten.stat().st_size == size
    touched = source / "train" / CLASSES[0] / "big_2.jpg"
    os.utime(touched, ns=(2 * 10**18, 2 * 10**18))  # same bytes, new time
    report = prepare_dataset(source, out, short_side=N)
    assert report.counts == {"unchanged": 17, "resized": 1}  # the touched one is unchanged, its bytes are the same
    with Image.open(out / "valid" / CLASSES[1] / "big_0.jpg") as image:
        assert image.size == (144, 48)  # the new content, not the old 160 x 120 photo
    entries = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert entries[f"train/{CLASSES[0]}/big_2.jpg"]["source_mtime_ns"] == 2 * 10**18  # hashed once, time recorded
    assert entries[f"valid/{CLASSES[1]}/big_0.jpg"]["source_mtime_ns"] == 10**18


def test_a_settings_change_and_the_images_left_out_are_logged_with_their_values(source, tmp_path, caplog):
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=N)
    bad = source / "valid" / CLASSES[0] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with caplog.at_level("INFO", logger="dogbreed.data.prepare"):
        report = prepare_dataset(source, out, short_side=40, jpeg_quality=90, skip_bad_images=True)
    assert ("settings changed ({'short_side': 48, 'jpeg_quality': 95} -> {'short_side': 40, 'jpeg_quality': 90}): "
            "preparing every image again") in caplog.messages
    assert f"preparing 19 of 19 images into {out} (short side 40, 1 worker(s))" in caplog.messages
    (reason,) = report.failed.values()
    assert (f"left out 1 image(s) that could not be decoded:\n  valid/{CLASSES[0]}/broken.jpg: {reason}"
            in caplog.messages)
    assert report.counts == {"unchanged": 0, "resized": 17, "copied": 1}
