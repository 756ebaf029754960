"""The one input policy: which images dogbreed decodes and how large they may be, checked from the header.

Every decode goes through :func:`dogbreed.core.images.open_image`, which applies a policy before any pixel is
decoded; the endpoint and Batch Transform (``dogbreed.serving.requests``) check the same policy on each image of a
request before the model sees it. So ``predict``, the endpoint and Batch Transform accept and refuse the same files,
with the same message, and training and evaluation share the size bounds:

- **formats** (served: JPEG, MPO, PNG, WebP; training reads any format PIL reads);
- **animated images** (served: refused, a still image is expected; an MPO camera JPEG is a still picture);
- **pixels** per image, from the header (served: 40 megapixels, ``DOGBREED_MAX_PIXELS``; training: PIL's own
  decompression-bomb limit);
- **aspect ratio** (everywhere: at most 20:1, ``DOGBREED_MAX_ASPECT_RATIO`` when served). The evaluation transform
  resizes the *short* side to ``resize_size``, so an image of aspect ratio ``r`` becomes ``resize_size**2 * r``
  pixels before the centre crop: the ratio bound is what bounds that allocation (a 1 x 40000 PNG would otherwise ask
  for ~9 gigapixels at 224 px);
- **truncation** (served: a truncated file is refused, never padded; training pads what is missing).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from dogbreed.core.errors import ImageDecodeError

SERVED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP")  # MPO: multi-picture JPEG from cameras (its first picture)
STILL_MULTI_FRAME_FORMATS = frozenset({"MPO"})
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_ASPECT_RATIO = 20.0


class ImageRefused(ImageDecodeError):
    """An image the input policy refuses; ``status_code`` is the HTTP status the endpoint answers with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class ImagePolicy:
    """What may be decoded. ``formats`` None: any format PIL reads; ``max_pixels`` None: PIL's own limit."""

    formats: tuple[str, ...] | None = SERVED_FORMATS
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    still_only: bool = True
    strict: bool = True

    def check_size(self, width: int, height: int, subject: str = "image") -> None:
        """Pixels and aspect ratio of a ``width`` x ``height`` image (header or array shape)."""
        if width < 1 or height < 1:
            raise ImageRefused(400, f"{subject} has size {width}x{height}: send an image with pixels")
        pixels = width * height
        if self.max_pixels is not None and pixels > self.max_pixels:
            raise ImageRefused(413, f"{subject} is {width}x{height} ({pixels / 1e6:.1f} megapixels), over the "
                                    f"{self.max_pixels / 1e6:g} megapixel limit: resize it before sending")
        ratio = max(width, height) / min(width, height)
        if ratio > self.max_aspect_ratio:
            raise ImageRefused(400, f"{subject} is {width}x{height}, an aspect ratio of {ratio:.0f}:1, over the "
                                    f"{self.max_aspect_ratio:g}:1 limit: crop it to the dog before sending")

    def check_header(self, image: Image.Image, subject: str = "image") -> None:
        """Format, animation and size of an opened, not yet decoded image (reads the header only)."""
        if self.formats is not None and image.format not in self.formats:
            raise ImageRefused(400, f"{subject} format {image.format} is not supported: send a JPEG, PNG or WebP "
                                    "image")
        if self.still_only and image.format not in STILL_MULTI_FRAME_FORMATS and getattr(image, "is_animated", False):
            frames = getattr(image, "n_frames", 2)
            raise ImageRefused(400, f"{subject} is animated ({frames} frames): send a still JPEG, PNG or WebP image "
                                    "(one frame of it)")
        self.check_size(*image.size, subject=subject)


# Training, evaluation and data checks: any format, animated images read at their first frame, PIL's own pixel
# limit, truncated files padded; the aspect-ratio bound is the same as serving's (it bounds the eval resize).
DECODE_POLICY = ImagePolicy(formats=None, max_pixels=None, still_only=False, strict=False)
# Serving (endpoint, Batch Transform, predict) with the default limits.
SERVING_POLICY = ImagePolicy()
