"""One image of a prepared dataset: decoded once (EXIF orientation applied, RGB), its short side reduced to N
(never enlarged), re-encoded at high quality in the format its file name says; and its manifest entry."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from dogbreed.core.errors import ImageDecodeError
from dogbreed.core.images import open_image

# Large JPEGs are decoded at a reduced DCT scale that keeps at least twice the target short side (like the eval
# decode), then reduced with Lanczos: the same pixels as a full decode to within JPEG noise, several times faster.
DRAFT_OVERSAMPLE = 2
# Formats that cannot hold 24-bit RGB faithfully: such files are copied unchanged.
COPY_ONLY_FORMATS = frozenset({"GIF"})
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # transpose, rotate 90/270, transverse


@dataclass(frozen=True)
class PrepareSettings:
    """What a prepared image depends on (recorded in the manifest; a change re-prepares every image)."""

    short_side: int
    jpeg_quality: int = 95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def reduced_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is ``short_side``; unchanged when it is already no larger."""
    short = min(width, height)
    if short <= short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _output_format(path: Path) -> str | None:
    """The Pillow format a file name asks for (``.jpg`` -> JPEG, ``.png`` -> PNG), None if unknown."""
    return Image.registered_extensions().get(path.suffix.lower())


def _encode(image: Image.Image, image_format: str, settings: PrepareSettings, icc_profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, Any] = {"icc_profile": icc_profile} if icc_profile else {}
    if image_format == "JPEG":
        options.update(quality=settings.jpeg_quality, optimize=True)
    elif image_format == "WEBP":
        options.update(quality=settings.jpeg_quality)
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Temp file in the same folder, then rename: an interrupted run never leaves half an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_image(source: Path, output: Path, settings: PrepareSettings) -> dict[str, Any]:
    """Write the prepared version of ``source`` to ``output``; return its manifest entry.

    Raises :class:`ImageDecodeError` naming ``source`` when it cannot be decoded. An image that needs no change
    (short side already <= N, no EXIF rotation, RGB or greyscale), a GIF, or a file whose name names no format
    Pillow writes is copied byte for byte (after being decoded once, so a corrupt file is still caught).
    """
    data = source.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as header:
            source_format, mode, (width, height) = header.format, header.mode, header.size
            orientation = header.getexif().get(_EXIF_ORIENTATION, 1)
        full_size = (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)
        target = reduced_size(*full_size, settings.short_side)
        draft = (DRAFT_OVERSAMPLE * settings.short_side,) * 2 if target != full_size else None
        decoded = open_image(data, draft_size=draft)
    except Exception as exc:  # any failure to decode means "bad image"; the reason is reported
        reason = exc.__cause__ if isinstance(exc, ImageDecodeError) and exc.__cause__ else exc
        raise ImageDecodeError(f"cannot decode image {source}: {reason}") from exc
    out_format = _output_format(output)
    unchanged = target == full_size and orientation == 1 and mode in ("RGB", "L")
    if unchanged or out_format is None or COPY_ONLY_FORMATS & {out_format, source_format}:
        written, action, out_size = data, "copied", full_size
    else:
        image = decoded if decoded.size == target else decoded.resize(target, Image.Resampling.LANCZOS)
        written = _encode(image, out_format, settings, decoded.info.get("icc_profile"))
        action, out_size = ("resized" if target != full_size else "converted"), target
    write_file(output, written)
    return {
        "source_bytes": len(data), "source_mtime_ns": source.stat().st_mtime_ns, "source_sha256": sha256_of(data),
        "source_format": source_format, "source_size": list(full_size), "action": action,
        "output_bytes": len(written), "output_sha256": sha256_of(written), "output_size": list(out_size),
    }
