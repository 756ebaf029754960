"""Decoding images into RGB PIL images: one function used by training, evaluation and serving."""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dogbreed.core.errors import ImageDecodeError
from dogbreed.core.image_policy import DECODE_POLICY, ImagePolicy

_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")  # PIL: "Image size (N pixels) exceeds limit of M pixels, ..."


def bomb_size(exc: BaseException) -> str:
    """The size PIL's DecompressionBombError names, in megapixels (PIL's own sentence, with its limit and its
    talk of attacks, otherwise)."""
    found = _BOMB_PIXELS.search(str(exc))
    return f"{int(found.group(1)) / 1e6:g} megapixels" if found else str(exc)


# dogImages contains at least one truncated JPEG that still decodes; training loads what is there.
# Serving decodes strictly (``strict=True``): PIL then raises instead of padding missing data.
ImageFile.LOAD_TRUNCATED_IMAGES = True
_STRICT_LOAD = threading.Lock()  # LOAD_TRUNCATED_IMAGES is a PIL global: a strict load flips it under this lock

ImageSource = Union[str, Path, bytes, bytearray, Image.Image]
URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "ftp://", "file:")


def looks_like_url(text: str) -> bool:
    """A string that is a URL, not a path (``Path`` would mangle ``https://x`` into ``https:/x``)."""
    return text.strip().lower().startswith(URL_SCHEMES)

# 16-bit -> 8-bit as one table lookup: floor(v * 255 / 65535), no float64 copy of a 36-megapixel image.
_SIXTEEN_TO_EIGHT = (np.arange(65536, dtype=np.uint32) * 255 // 65535).astype(np.uint8)


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """I;16* (and I holding 16-bit data) -> L, scaled; I holding 8-bit data (max <= 255) is kept as is."""
    array = np.array(image)
    if image.mode == "I":
        np.clip(array, 0, 65535, out=array)
        if array.max(initial=0) <= 255:
            return Image.fromarray(array.astype(np.uint8), "L")
    return Image.fromarray(_SIXTEEN_TO_EIGHT[array], "L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha is composited on white, 16-bit is scaled to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = _sixteen_bit_to_l(image)
    if image.mode in ("P", "L", "RGB") and "transparency" in image.info:  # a palette entry or a colour key (PNG tRNS)
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB") if image.mode != "RGB" else image


def _load(image: Image.Image, strict: bool) -> None:
    if not strict:
        image.load()
        return
    with _STRICT_LOAD:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            image.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = True


def _checked(image: Image.Image, policy: ImagePolicy, subject: str) -> None:
    """The policy on an image we opened; closed (its file released) when refused."""
    try:
        policy.check_header(image, subject)
    except ImageDecodeError:
        image.close()
        raise


DraftSize = Union[tuple[int, int], Callable[[Image.Image], Optional[tuple[int, int]]], None]


def open_image(source: ImageSource, *, draft_size: DraftSize = None, strict: bool = False,
               policy: ImagePolicy = DECODE_POLICY) -> Image.Image:
    """Decode a path, bytes or PIL image into an RGB image with EXIF orientation applied.

    ``draft_size`` lets JPEG decoding use a reduced DCT scale when the image is much larger
    than needed (never smaller than ``draft_size``). It may be a function of the opened, not yet
    decoded image (its header: size, EXIF) returning that size, or None for a full decode. ``strict``: a truncated
    or broken image is an error instead of being padded (serving); data after the image's end marker is ignored
    either way. ``policy`` (:mod:`dogbreed.core.image_policy`) is checked on the header before anything is decoded.
    """
    subject = f"image {source}" if isinstance(source, (str, Path)) else "image"
    if isinstance(source, str) and looks_like_url(source):
        raise ImageDecodeError(f"{source} is a URL; images are never downloaded: download it first and pass the file")
    try:
        if isinstance(source, Image.Image):
            image = source
            policy.check_size(*image.size, subject=subject)
        elif isinstance(source, (bytes, bytearray)):
            if not source:
                raise ImageDecodeError("empty image data: send the bytes of a JPEG, PNG or WebP image")
            image = Image.open(io.BytesIO(bytes(source)))
        else:
            image = Image.open(Path(source))
        if image is not source:
            _checked(image, policy, subject)
        requested = draft_size(image) if callable(draft_size) else draft_size
        if requested is not None and image.format == "JPEG":
            image.draft("RGB", requested)
        _load(image, strict)
        if image is source:
            image = ImageOps.exif_transpose(image)
        else:  # an image we opened: in place, which avoids a full copy when there is nothing to rotate
            ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"{subject} has too many pixels to decode safely ({bomb_size(exc)}): resize it") from exc
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"{subject} not found: check the path") from exc
    except IsADirectoryError as exc:
        raise ImageDecodeError(f"{subject} is a directory, not an image file") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if strict and "truncated" in str(exc):
            # PIL's "(N bytes not processed)" counts its buffer, not what is missing: not worth quoting
            raise ImageDecodeError(f"{subject} is truncated (the file ends inside its image data): use the complete "
                                   "file") from exc
        raise ImageDecodeError(f"cannot decode {subject}: {exc}. Use a valid JPEG, PNG or WebP file") from exc


def check_image_header(path: Path) -> str | None:
    """Cheap validity check reading only the header: None when fine, else the reason."""
    try:
        with Image.open(path) as image:
            DECODE_POLICY.check_header(image)  # the bounds every decode applies (e.g. the aspect ratio)
    except ImageDecodeError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure means "bad image"; the reason is reported
        return f"{type(exc).__name__}: {exc}"
    return None
