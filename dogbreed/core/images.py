"""Decoding images into RGB PIL images: one function used by training, evaluation and serving."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dogbreed.core.errors import ImageDecodeError

# dogImages contains at least one truncated JPEG that still decodes; load what is there.
ImageFile.LOAD_TRUNCATED_IMAGES = True

ImageSource = Union[str, Path, bytes, bytearray, Image.Image]


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


DraftSize = Union[tuple[int, int], Callable[[Image.Image], Optional[tuple[int, int]]], None]


def open_image(source: ImageSource, *, draft_size: DraftSize = None) -> Image.Image:
    """Decode a path, bytes or PIL image into an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding use a reduced DCT scale when the image is much larger
    than needed (never smaller than ``draft_size``). It may be a function of the opened, not yet
    decoded image (its header: size, EXIF) returning that size, or None for a full decode.
    """
    name = str(source) if isinstance(source, (str, Path)) else "<bytes>"
    try:
        if isinstance(source, Image.Image):
            image = source
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageDecodeError("empty image data: send the bytes of a JPEG, PNG or WebP image")
            image = Image.open(io.BytesIO(bytes(source)))
        else:
            image = Image.open(Path(source))
        requested = draft_size(image) if callable(draft_size) else draft_size
        if requested is not None and image.format == "JPEG":
            image.draft("RGB", requested)
        if image is source:
            image = ImageOps.exif_transpose(image)
        else:  # an image we opened: in place, which avoids a full copy when there is nothing to rotate
            ImageOps.exif_transpose(image, in_place=True)
        image.load()
        return _to_rgb(image)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(
            f"cannot decode image {name}: {exc}. Use a valid JPEG, PNG or WebP file"
        ) from exc


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
