"""Decoding images into RGB PIL images: one function used by training, evaluation and serving."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dogbreed.core.errors import ImageDecodeError

# dogImages contains at least one truncated JPEG that still decodes; load what is there.
ImageFile.LOAD_TRUNCATED_IMAGES = True

ImageSource = Union[str, Path, bytes, bytearray, Image.Image]
URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "ftp://", "file:")


def looks_like_url(text: str) -> bool:
    """A string that is a URL, not a path (``Path`` would mangle ``https://x`` into ``https:/x``)."""
    return text.strip().lower().startswith(URL_SCHEMES)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha is composited on white, 16-bit is scaled to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def open_image(source: ImageSource, *, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode a path, bytes or PIL image into an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding use a reduced DCT scale when the image is much larger
    than needed (never smaller than ``draft_size``).
    """
    name = str(source) if isinstance(source, (str, Path)) else "<bytes>"
    if isinstance(source, str) and looks_like_url(source):
        raise ImageDecodeError(f"{source} is a URL; images are never downloaded: download it first and pass the file")
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageDecodeError("empty image data: send the bytes of a JPEG, PNG or WebP image")
            image = Image.open(io.BytesIO(bytes(source)))
        else:
            image = Image.open(Path(source))
        if draft_size is not None and image.format == "JPEG":
            image.draft("RGB", draft_size)
        image = ImageOps.exif_transpose(image)
        image.load()
        return _to_rgb(image)
    except ImageDecodeError:
        raise
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"image file {name} not found: check the path") from exc
    except IsADirectoryError as exc:
        raise ImageDecodeError(f"{name} is a directory, not an image file") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(
            f"cannot decode image {name}: {exc}. Use a valid JPEG, PNG or WebP file"
        ) from exc


def is_truncated(data: bytes, image_format: str | None) -> bool:
    """Whether encoded image bytes lack their end marker. Training pads such files (LOAD_TRUNCATED_IMAGES);
    serving and predict reject them."""
    if image_format in ("JPEG", "MPO"):
        # The EOI marker must follow the last start-of-scan (an EXIF thumbnail has its own EOI earlier).
        return data.find(b"\xff\xd9", max(data.rfind(b"\xff\xda"), 0)) == -1
    if image_format == "PNG":
        return b"IEND" not in data[-4096:]
    if image_format == "WEBP":
        return len(data) < int.from_bytes(data[4:8], "little") + 8
    return False


def check_image_header(path: Path) -> str | None:
    """Cheap validity check reading only the header: None when fine, else the reason."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width < 1 or height < 1:
                return f"image has size {width}x{height}"
    except Exception as exc:  # noqa: BLE001 - any failure means "bad image"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None
