"""dogbreed.core.images at its edges: every refusal's exact message, URL detection, mode conversion values, strict
vs padded truncation, EXIF orientation and draft decoding, written out (issue 24)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from dogbreed.core.errors import ImageDecodeError
from dogbreed.core.images import URL_SCHEMES, check_image_header, looks_like_url, open_image


def jpeg(size: tuple[int, int] = (64, 48), exif_orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[0x0112] = exif_orientation
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_url_schemes_are_pinned_and_matched_case_and_space_insensitively():
    assert URL_SCHEMES == ("http://", "https://", "s3://", "gs://", "ftp://", "file:")
    for text in ("HTTPS://example.com/dog.jpg", "  s3://bucket/dog.jpg", "file:/tmp/dog.jpg", "gs://b/k",
                 "ftp://host/x", "http://x"):
        assert looks_like_url(text), text
    for text in ("dog.jpg", "/data/https/dog.jpg", "http:/x", "s3:/b"):
        assert not looks_like_url(text), text


def test_a_url_is_refused_without_downloading():
    with pytest.raises(ImageDecodeError) as refused:
        open_image("https://example.com/dog.jpg")
    assert str(refused.value) == ("https://example.com/dog.jpg is a URL; images are never downloaded: download it "
                                  "first and pass the file")


def test_empty_bytes_are_refused():
    for empty in (b"", bytearray()):
        with pytest.raises(ImageDecodeError) as refused:
            open_image(empty)
        assert str(refused.value) == "empty image data: send the bytes of a JPEG, PNG or WebP image"


def test_a_missing_path_and_a_directory_are_named(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageDecodeError) as refused:
        open_image(missing)
    assert str(refused.value) == f"image {missing} not found: check the path"
    with pytest.raises(ImageDecodeError) as refused:
        open_image(str(tmp_path))
    assert str(refused.value) == f"image {tmp_path} is a directory, not an image file"


def test_garbage_is_named_with_what_to_send(tmp_path):
    with pytest.raises(ImageDecodeError) as refused:
        open_image(b"not an image at all")
    # PIL names the in-memory file by its repr, whose address changes each run: only that is left open.
    assert re.fullmatch(r"cannot decode image: cannot identify image file <_io\.BytesIO object at 0x[0-9a-f]+>\. Use a "
                        r"valid JPEG, PNG or WebP file", str(refused.value)), str(refused.value)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"junk")
    with pytest.raises(ImageDecodeError) as refused:
        open_image(bad)
    assert str(refused.value) == (f"cannot decode image {bad}: cannot identify image file '{bad}'. Use a valid JPEG, "
                                  "PNG or WebP file")


def test_a_truncated_jpeg_is_refused_when_strict_and_padded_otherwise():
    data = jpeg((256, 256))
    truncated = data[: len(data) // 2]
    with pytest.raises(ImageDecodeError) as refused:
        open_image(truncated, strict=True)
    assert str(refused.value) == ("image is truncated (the file ends inside its image data): use the "
                                  "complete file")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the global is restored after a strict load
    assert open_image(truncated).size == (256, 256)


def test_too_many_pixels_for_pil_is_named(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses above twice this
    with pytest.raises(ImageDecodeError) as refused:
        open_image(jpeg((20, 20)))
    assert str(refused.value) == "image has too many pixels to decode safely (0.0004 megapixels): resize it"


def test_alpha_is_composited_on_white():
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert open_image(clear).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (2, 2), (0, 128))
    assert open_image(half).getpixel((0, 0)) == (127, 127, 127)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.info["transparency"] = 0
    assert open_image(palette).getpixel((0, 0)) == (255, 255, 255)
    opaque = Image.new("P", (2, 2), 0)
    opaque.putpalette([10, 20, 30] * 256)
    assert open_image(opaque).getpixel((0, 0)) == (10, 20, 30)


@pytest.mark.parametrize(("mode", "value", "grey"), [("I;16", 65535, 255), ("I;16", 257, 1), ("I;16", 256, 0),
                                                     ("I", 200, 200), ("I", 1000, 3), ("I", -5, 0),
                                                     ("I", 70000, 255)])
def test_sixteen_bit_images_are_scaled_to_eight_bits(mode, value, grey):
    if mode == "I;16":
        image = Image.fromarray(np.full((2, 2), value, dtype=np.uint16))
    else:
        image = Image.fromarray(np.full((2, 2), value, dtype=np.int32))
    assert image.mode == mode
    assert open_image(image).getpixel((1, 1)) == (grey, grey, grey)


def test_an_rgb_image_given_is_returned_unconverted_and_exif_applied_to_a_copy():
    rgb = Image.new("RGB", (3, 2), (1, 2, 3))
    assert open_image(rgb).getpixel((0, 0)) == (1, 2, 3)
    rotated = Image.open(io.BytesIO(jpeg((40, 20), exif_orientation=6)))
    rotated.load()
    assert open_image(rotated).size == (20, 40) and rotated.size == (40, 20)  # the caller's image untouched


def test_exif_orientation_is_applied_to_opened_files():
    assert open_image(jpeg((40, 20), exif_orientation=6)).size == (20, 40)
    assert open_image(jpeg((40, 20), exif_orientation=1)).size == (40, 20)


def test_draft_decoding_never_goes_below_the_requested_size(tmp_path):
    data = jpeg((800, 600))
    assert open_image(data).size == (800, 600)
    assert open_image(data, draft_size=(100, 100)).size == (200, 150)  # 1/4 scale keeps both sides >= 100
    assert open_image(data, draft_size=(300, 300)).size == (400, 300)  # 1/2
    seen: list[tuple[int, int]] = []
    assert open_image(data, draft_size=lambda image: seen.append(image.size) or (100, 100)).size == (200, 150)
    assert seen == [(800, 600)]  # the callable sees the header's size, before decoding
    assert open_image(data, draft_size=lambda image: None).size == (800, 600)
    png = tmp_path / "big.png"
    Image.new("RGB", (800, 600)).save(png)
    assert open_image(png, draft_size=(100, 100)).size == (800, 600)  # only JPEG has a draft mode


def test_the_header_check_says_none_or_the_reason(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg())
    assert check_image_header(good) is None
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"junk")
    assert check_image_header(bad) == f"UnidentifiedImageError: cannot identify image file '{bad}'"
    thin = tmp_path / "thin.png"
    Image.new("L", (100, 2)).save(thin)
    assert check_image_header(thin) == ("image is 100x2, an aspect ratio of 50:1, over the 20:1 limit: crop it to "
                                        "the dog before sending")
    missing = tmp_path / "missing.jpg"  # the OS's words for a missing file are left open
    assert re.fullmatch(rf"FileNotFoundError: \[Errno 2\] [^\n]+: '{re.escape(str(missing))}'",
                        check_image_header(missing)), check_image_header(missing)


def test_a_refused_file_is_closed(tmp_path, monkeypatch):
    closed: list[bool] = []
    original = Image.Image.close

    def close(self):
        closed.append(True)
        original(self)

    monkeypatch.setattr(Image.Image, "close", close)
    thin = tmp_path / "thin.png"
    Image.new("L", (100, 2)).save(thin)
    with pytest.raises(ImageDecodeError):
        open_image(Path(thin))
    assert closed


def test_importing_the_module_lets_training_read_truncated_files():
    import subprocess
    import sys

    probe = "import dogbreed.core.images; from PIL import ImageFile; print(ImageFile.LOAD_TRUNCATED_IMAGES is True)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_eight_bit_data_in_an_int_image_is_kept():
    image = Image.fromarray(np.full((2, 2), 255, dtype=np.int32))
    assert image.mode == "I" and open_image(image).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(("mode", "dtype"), [("I;16B", ">u2"), ("I;16L", "<u2")])
def test_big_and_little_endian_sixteen_bit_images_are_scaled_not_clipped(mode, dtype):
    image = Image.frombytes(mode, (2, 2), np.full(4, 257, dtype=dtype).tobytes())
    assert open_image(image).getpixel((0, 0)) == (1, 1, 1)  # PIL's own convert would clip 257 to 255


@pytest.mark.parametrize("mode", ["RGBa", "PA"])
def test_premultiplied_and_palette_alpha_are_composited_on_white(mode):
    image = Image.new(mode, (2, 2), (0, 0, 0, 0) if mode == "RGBa" else (0, 0))
    if mode == "PA":
        image.putpalette([10, 20, 30] * 256)
    assert open_image(image).getpixel((0, 0)) == (255, 255, 255)  # PIL's convert("RGB") drops the alpha instead


def test_a_strict_decode_of_garbage_is_not_called_truncated():
    with pytest.raises(ImageDecodeError) as refused:
        open_image(b"not an image at all", strict=True)
    assert re.fullmatch(r"cannot decode image: cannot identify image file <_io\.BytesIO object at 0x[0-9a-f]+>\. Use a "
                        r"valid JPEG, PNG or WebP file", str(refused.value)), str(refused.value)


@pytest.mark.parametrize(("mode", "key", "other"), [("RGB", (10, 20, 30), (1, 2, 3)), ("L", 7, 9)])
def test_a_png_colour_key_is_transparent_like_a_palette_entry(mode, key, other, tmp_path):
    """PNG's tRNS chunk on a grey or RGB image: pixels of the key colour are transparent, so they become white
    like transparent palette entries and alpha (they used to keep the key colour)."""
    image = Image.new(mode, (2, 1), key)
    image.putpixel((1, 0), other)
    path = tmp_path / "keyed.png"
    image.save(path, transparency=key)
    decoded = open_image(path)
    grey = (other,) * 3 if mode == "L" else other
    assert decoded.getpixel((0, 0)) == (255, 255, 255) and decoded.getpixel((1, 0)) == grey


def test_a_bomb_size_is_said_in_megapixels_and_any_other_wording_is_kept():
    from dogbreed.core.images import bomb_size

    pil = Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit of 178956970 pixels, could be "
                                       "decompression bomb DOS attack.")
    assert bomb_size(pil) == "400 megapixels"
    assert bomb_size(Image.DecompressionBombError("1234567 pixels")) == "1234567 pixels"  # unknown shape: as is
