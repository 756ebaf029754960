"""One prepared image at a time (``prepare_image``, no dataset tree): which EXIF orientations swap the sides, a
small rotated photo is rotated rather than copied, and a GIF (whatever its name says) is copied byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
