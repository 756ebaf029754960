"""One prepared image at a time (``prepare_image``, no dataset tree): which EXIF orientations swap the sides, a
small rotated photo is rotated rather than copied, and a GIF (whatever its name says) is copied byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogbreed.data.prepared_image import PrepareSettings, prepare_image

N = 48


def _marked(width: int, height: int) -> Image.Image:
    """``width`` x ``height`` dark grey with a bright 1/4 x 1/4 square in the top-left corner."""
    array = np.full((height, width, 3), 60, dtype=np.uint8)
    array[: height // 4, : width // 4] = 250
    return Image.fromarray(array, "RGB")


def _stored_with_orientation(path: Path, displayed: Image.Image, orientation: int) -> None:
    """``displayed`` stored as a camera would with EXIF ``orientation``: the pixels such that applying the tag
    gives ``displayed`` back."""
    undo = {5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    displayed.transpose(undo).save(path, quality=95, exif=exif)


def test_every_side_swapping_orientation_reduces_the_displayed_short_side(tmp_path):
    # displayed 90 x 150 (portrait), stored 150 x 90: 5 and 7 (transpose, transverse) swap the sides like 6 and 8
    for orientation in (5, 6, 7, 8):
        source, output = tmp_path / f"o{orientation}.jpg", tmp_path / "out" / f"o{orientation}.jpg"
        _stored_with_orientation(source, _marked(90, 150), orientation)
        with Image.open(source) as stored:
            assert stored.size == (150, 90)
        entry = prepare_image(source, output, PrepareSettings(short_side=N))
        assert (entry["action"], entry["source_size"], entry["output_size"]) == ("resized", [90, 150], [48, 80])
        with Image.open(output) as image:
            assert image.size == (48, 80), orientation
            corner = np.asarray(image.convert("RGB"))[:12, :8].mean()
            assert corner > 220, orientation  # the bright square top-left as displayed


def test_a_small_rotated_photo_is_rotated_not_copied(tmp_path):
    # displayed 40 x 30, already below N: nothing to reduce, but the stored 30 x 40 pixels must still be turned
    source, output = tmp_path / "small.jpg", tmp_path / "out" / "small.jpg"
    _stored_with_orientation(source, _marked(40, 30), 6)
    entry = prepare_image(source, output, PrepareSettings(short_side=N))
    assert (entry["action"], entry["source_size"], entry["output_size"]) == ("converted", [40, 30], [40, 30])
    assert output.read_bytes() != source.read_bytes()
    with Image.open(output) as image:
        assert image.size == (40, 30) and image.getexif().get(0x0112) in (None, 1)
        assert np.asarray(image.convert("RGB"))[:6, :8].mean() > 220


def test_a_gif_is_copied_byte_for_byte_whatever_its_name_says(tmp_path):
    # a GIF named .jpg (a renamed download) and one named .png: large enough to be reduced, yet copied unchanged
    for name in ("renamed.jpg", "renamed.png"):
        source, output = tmp_path / name, tmp_path / "out" / name
        _marked(100, 80).save(source, format="GIF")
        entry = prepare_image(source, output, PrepareSettings(short_side=N))
        assert output.read_bytes() == source.read_bytes(), name
        assert (entry["action"], entry["source_format"], entry["output_size"]) == ("copied", "GIF", [100, 80])
        assert entry["output_sha256"] == entry["source_sha256"]


def test_a_gone_source_loses_its_prepared_copy_also_when_the_settings_change(tmp_path):
    from dogbreed.data.prepare import MANIFEST_NAME, prepare_dataset
    from tests.helpers.builders import write_tree

    source = write_tree(tmp_path / "src", {"train": 2, "valid": 1}, breed_dirs=["001.A", "002.B"])
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=16)
    gone = "train/001.A/001.jpg"
    (source / gone).unlink()
    report = prepare_dataset(source, out, short_side=12)  # a new N: every image again, and the gone one removed
    assert report.counts["removed"] == 1 and report.counts["unchanged"] == 0
    assert not (out / gone).exists()
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert names == {MANIFEST_NAME, "train/001.A/000.jpg", "train/002.B/000.jpg", "train/002.B/001.jpg",
                     "valid/001.A/000.jpg", "valid/002.B/000.jpg"}
    assert prepare_dataset(source, out, short_side=12).counts == {"unchanged": 5}  # and nothing unknown left


def test_an_output_that_holds_the_data_dir_is_refused_as_overlapping(tmp_path):
    from dogbreed.core.errors import DataError
    from dogbreed.data.prepare import prepare_dataset
    from tests.helpers.builders import write_tree

    parent = tmp_path / "photos"
    source = write_tree(parent / "dogs", {"train": 1, "valid": 1}, breed_dirs=["001.A", "002.B"])
    with pytest.raises(DataError) as refused:  # --output above --data-dir: the overlap, not "not empty", is named
        prepare_dataset(source, parent, short_side=16)
    assert str(refused.value) == f"--output {parent} overlaps --data-dir {source}: choose a folder outside the dataset"


@pytest.mark.parametrize("short_side, warned", [(232, False), (231, True)])
def test_the_prepared_short_side_warning_starts_one_pixel_below_the_eval_resize(tmp_path, short_side, warned):
    import json

    from dogbreed.data.prepare import MANIFEST_NAME, prepared_warning

    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"complete": True, "short_side": short_side, "files": {}}))
    expected = (f"{tmp_path} was prepared with short side 231, smaller than the 232 px that --image-size 224 "
                "evaluates at: images are enlarged. Prepare it again with --image-size 224") if warned else None
    assert prepared_warning(tmp_path, 224) == expected


def test_hidden_files_in_the_output_never_block_a_re_run(tmp_path):
    # Finder's .DS_Store, or the temp file of a write killed before its rename: training skips hidden files, and
    # so does prepare's check for files it did not write
    from dogbreed.data.prepare import prepare_dataset
    from tests.helpers.builders import write_tree

    source = write_tree(tmp_path / "src", {"train": 1, "valid": 1}, breed_dirs=["001.A", "002.B"])
    out = tmp_path / "prepared"
    prepare_dataset(source, out, short_side=16)
    (out / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (out / "train" / "001.A" / ".000.jpg.k3j2x1").write_bytes(b"half an image")
    assert prepare_dataset(source, out, short_side=16).counts == {"unchanged": 4}


def test_the_long_side_is_rounded_not_truncated():
    from dogbreed.data.prepared_image import reduced_size

    # 101 x 80 at short side 48: 101 * 48 / 80 = 60.6 -> 61 (truncating would give 60, another aspect ratio)
    assert reduced_size(101, 80, 48) == (61, 48)
    assert reduced_size(80, 101, 48) == (48, 61)
    assert reduced_size(100, 80, 48) == (60, 48) and reduced_size(48, 200, 48) == (48, 200)


def test_the_jpeg_quality_setting_is_the_one_encoded(tmp_path):
    import io

    source = tmp_path / "big.jpg"
    _marked(160, 120).save(source, quality=95)
    for quality in (40, 95):
        output = tmp_path / f"q{quality}" / "big.jpg"
        prepare_image(source, output, PrepareSettings(short_side=N, jpeg_quality=quality))
        reference = io.BytesIO()
        Image.new("RGB", (64, 48)).save(reference, format="JPEG", quality=quality)
        with Image.open(output) as prepared, Image.open(reference) as expected:
            assert prepared.quantization == expected.quantization, quality  # Pillow's tables for that quality


def test_an_interrupted_prepare_leaves_an_unfinished_manifest_and_the_next_run_resumes(tmp_path, monkeypatch):
    import json

    from dogbreed.data import prepare
    from tests.helpers.builders import write_tree

    source = write_tree(tmp_path / "src", {"train": 2, "valid": 1}, breed_dirs=["001.A", "002.B"])
    out = tmp_path / "prepared"
    calls = []

    def stopped_at_the_fifth(*args):
        calls.append(args[0])
        if len(calls) == 5:
            raise KeyboardInterrupt
        return prepare_image(*args)

    monkeypatch.setattr(prepare, "CHECKPOINT_EVERY", 2)
    monkeypatch.setattr(prepare, "prepare_image", stopped_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare_dataset(source, out, short_side=16)
    manifest = json.loads((out / prepare.MANIFEST_NAME).read_text())
    assert manifest["complete"] is False and len(manifest["files"]) == 4  # saved after the 2nd and the 4th image
    assert prepare.prepared_warning(out, 64) == (f"{out} is an unfinished prepared dataset (prepare stopped or found "
                                                 "unreadable images): run prepare again")
    monkeypatch.setattr(prepare, "prepare_image", prepare_image)
    report = prepare.prepare_dataset(source, out, short_side=16)
    assert report.counts["unchanged"] == 4 and sum(report.counts.values()) == 6
    assert json.loads((out / prepare.MANIFEST_NAME).read_text())["complete"] is True


def test_a_resized_image_keeps_its_colour_profile(tmp_path):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source, output = tmp_path / "wide.jpg", tmp_path / "out" / "wide.jpg"
    _marked(160, 120).save(source, quality=95, icc_profile=profile)
    assert prepare_image(source, output, PrepareSettings(short_side=N))["action"] == "resized"
    with Image.open(output) as image:
        assert image.size == (64, 48) and image.info.get("icc_profile") == profile


def test_a_large_jpeg_keeps_its_detail_like_a_full_decode(tmp_path):
    # a 400 x 300 grey pattern of 40 px period, reduced to 64 x 48 (6.4 px period): decoding at a reduced DCT scale
    # must keep at least twice the target short side, or the detail is lost before the Lanczos reduction
    y, x = np.mgrid[0:300, 0:400]
    grey = (127 + 120 * np.sin(2 * np.pi * x / 40) * np.sin(2 * np.pi * y / 40)).astype(np.uint8)
    source, output = tmp_path / "detail.jpg", tmp_path / "out" / "detail.jpg"
    Image.fromarray(np.stack([grey] * 3, axis=2), "RGB").save(source, quality=95)
    prepare_image(source, output, PrepareSettings(short_side=N))
    with Image.open(source) as full:
        reference = np.asarray(full.convert("RGB").resize((64, 48), Image.Resampling.LANCZOS), dtype=float)
    with Image.open(output) as prepared:
        assert np.abs(np.asarray(prepared.convert("RGB"), dtype=float) - reference).mean() < 4.0  # about 1.4
