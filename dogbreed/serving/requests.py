"""Endpoint request decoding and response encoding: content types, Accept, limits, client errors.

Everything here treats the request as untrusted: sizes and pixel counts are checked from headers
before anything is decoded, URLs are never fetched, and every problem a client can cause becomes
a :class:`RequestError` with an HTTP status and a message that says what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from dogbreed.core.errors import ConfigError, DogBreedError
from dogbreed.core.image_policy import (
    DEFAULT_MAX_ASPECT_RATIO,
    DEFAULT_MAX_PIXELS,
    ImagePolicy,
    ImageRefused,
)
from dogbreed.core.images import bomb_size
from dogbreed.core.jsontext import JsonTextError, parse_json

IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "application/x-image", "application/octet-stream")
JSON = "application/json"
NPY = "application/x-npy"
SUPPORTED_CONTENT_TYPES = IMAGE_CONTENT_TYPES + (JSON, NPY)
SUPPORTED_ACCEPTS = (JSON, NPY)
SEND_INSTEAD = (
    "send image bytes (Content-Type image/jpeg, image/png, image/webp, application/x-image or "
    'application/octet-stream), JSON {"image": "<base64>"} or {"instances": ["<base64>", ...]} '
    "(application/json), or a uint8 HxWx3 / NxHxWx3 array (application/x-npy)"
)
# curl's -d/--data (the common slip for --data-binary) strips CR and LF from the file and, without -H, sends it as
# a form: an image arrives with bytes missing, or under the form's media type.
CURL_HINT = "with curl, send the file with --data-binary @FILE (-d/--data removes its line breaks)"
FORM = "application/x-www-form-urlencoded"
JSON_KEYS = ("image", "instances", "top_k")


def curl_hint(data: object) -> str:
    """The hint for image bytes without one CR or LF byte (what ``curl -d`` leaves of a file of some size), else
    nothing: appended to a refusal, never a reason to refuse."""
    mangled = isinstance(data, (bytes, bytearray)) and len(data) > 64 and b"\n" not in data and b"\r" not in data
    return f"; {CURL_HINT}" if mangled else ""
URL_PREFIXES = ("http://", "https://", "s3://", "ftp://", "file:")

Body = Union[bytes, bytearray, str, None]


class RequestError(DogBreedError):
    """A request the endpoint refuses; ``status_code`` is the HTTP status to answer with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {name}={raw!r} must be a positive integer (default {default})")
    return value


@dataclass(frozen=True)
class ServingLimits:
    """What one request may contain; each can be overridden by an environment variable."""

    default_top_k: int = 5  # DOGBREED_TOP_K
    max_payload_bytes: int = 6 * 1024 * 1024  # DOGBREED_MAX_PAYLOAD_BYTES (SageMaker's own cap is 6 MB)
    max_pixels: int = DEFAULT_MAX_PIXELS  # DOGBREED_MAX_PIXELS, per image, checked from the header
    max_aspect_ratio: int = int(DEFAULT_MAX_ASPECT_RATIO)  # DOGBREED_MAX_ASPECT_RATIO: longer side : shorter side
    max_batch: int = 16  # DOGBREED_MAX_BATCH, images per request
    # DOGBREED_MAX_REQUEST_PIXELS: all images of one request together, from their headers. Bounds the decode
    # work one request can ask of the (single) worker: 16 flat 36-megapixel PNGs fit in 1.5 MB.
    max_request_pixels: int = 80_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServingLimits":
        env = os.environ if environ is None else environ
        base = cls()
        return cls(
            default_top_k=_env_int(env, "DOGBREED_TOP_K", base.default_top_k),
            max_payload_bytes=_env_int(env, "DOGBREED_MAX_PAYLOAD_BYTES", base.max_payload_bytes),
            max_pixels=_env_int(env, "DOGBREED_MAX_PIXELS", base.max_pixels),
            max_batch=_env_int(env, "DOGBREED_MAX_BATCH", base.max_batch),
            max_request_pixels=_env_int(env, "DOGBREED_MAX_REQUEST_PIXELS", base.max_request_pixels),
            max_aspect_ratio=_env_int(env, "DOGBREED_MAX_ASPECT_RATIO", base.max_aspect_ratio),
        )

    @property
    def image_policy(self) -> ImagePolicy:
        """The input policy with these limits: what ``predict``, the endpoint and Batch Transform accept."""
        return ImagePolicy(max_pixels=self.max_pixels, max_aspect_ratio=float(self.max_aspect_ratio))


@dataclass
class InferenceRequest:
    """Validated images (encoded bytes or decoded arrays) plus what the client asked for."""

    images: Sequence[Union[bytes, Image.Image]]
    batched: bool
    top_k: int | None = None


def _shown(value: object, limit: int = 80) -> str:
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def media_type(header: str | None) -> str:
    """``"Image/JPEG; q=1"`` -> ``"image/jpeg"``; empty string when absent."""
    return (header or "").split(";", 1)[0].strip().lower()


def negotiate_accept(accept: str | None) -> str:
    """The response type for an Accept header (lists, parameters and q-values allowed)."""
    candidates = []
    for position, part in enumerate((accept or "").split(",")):
        media, *params = [item.strip() for item in part.split(";")]
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 1.0
        if media and quality > 0:
            candidates.append((-quality, position, media.lower()))
    if not candidates and not (accept or "").strip():
        return JSON
    for _, _, media in sorted(candidates):
        if media in ("*/*", "application/*"):
            return JSON
        if media in SUPPORTED_ACCEPTS:
            return media
    raise RequestError(406, f"cannot answer in {_shown(accept)}: set Accept to {' or '.join(SUPPORTED_ACCEPTS)}")


def check_image_bytes(data: bytes, limits: ServingLimits) -> bytes:
    """Check format, animation, size and aspect ratio from the header (the input policy), decoding no pixels."""
    if not data:
        raise RequestError(400, f"empty image: {SEND_INSTEAD}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            limits.image_policy.check_header(image)
    except ImageRefused as exc:
        raise RequestError(exc.status_code, exc.message) from exc
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image has too many pixels ({bomb_size(exc)}): resize it to at most "
                                f"{limits.max_pixels / 1e6:g} megapixels") from exc
    except UnidentifiedImageError as exc:
        raise RequestError(400, f"body is not an image PIL can identify: {SEND_INSTEAD}{curl_hint(data)}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(400, f"image header cannot be read ({exc}): send a complete JPEG, PNG or WebP file") from exc
    # Completeness is checked by the strict decode in predict_fn (no padding of missing data); data after
    # the image's end marker (phone vendors append some) is ignored there.
    return data


def image_pixels(image: Union[bytes, Image.Image]) -> int:
    """Pixels an image of a request will decode to, from its header (already checked by check_image_bytes)."""
    if isinstance(image, Image.Image):
        return image.width * image.height
    with Image.open(io.BytesIO(image)) as opened:
        return opened.width * opened.height


def check_request_pixels(request: "InferenceRequest", limits: ServingLimits) -> "InferenceRequest":
    """All images of one request together stay under ``max_request_pixels`` (a 413 otherwise)."""
    total = sum(image_pixels(image) for image in request.images)
    if total > limits.max_request_pixels:
        raise RequestError(413, f"the {len(request.images)} image(s) of this request hold {total / 1e6:.1f} "
                                f"megapixels together, over the {limits.max_request_pixels / 1e6:g} megapixel "
                                "limit per request: send fewer or smaller images per request")
    return request


def _decode_base64(value: object, where: str, limits: ServingLimits) -> bytes:
    if not isinstance(value, str):
        raise RequestError(400, f"{where} must be a base64 string, got {type(value).__name__}: {SEND_INSTEAD}")
    text = value.strip()
    if text.lower().startswith(URL_PREFIXES):
        raise RequestError(400, f"{where} looks like a URL ({_shown(text)}); URLs are never fetched: "
                                "send the image bytes base64-encoded")
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"{where} is not valid base64 ({exc}): encode the image file with base64") from exc
    return check_image_bytes(data, limits)


def _parse_top_k(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(400, f'"top_k" must be a positive integer, got {_shown(value)}')
    return value


def decode_json(body: Union[str, bytes], limits: ServingLimits) -> InferenceRequest:
    try:
        payload = parse_json(body)
    except JsonTextError as exc:
        raise RequestError(400, f"malformed JSON ({exc}): send {{\"image\": \"<base64>\"}} or "
                                '{"instances": ["<base64>", ...]}') from exc
    if not isinstance(payload, dict):
        raise RequestError(400, f"JSON body must be an object, got {type(payload).__name__}: "
                                'send {"image": "<base64>"} or {"instances": ["<base64>", ...]}')
    if "url" in payload:
        raise RequestError(400, 'URLs are never fetched: send {"image": "<base64 of the image bytes>"} instead')
    unknown = sorted(set(payload) - set(JSON_KEYS))
    if unknown:
        raise RequestError(400, f"unknown JSON keys {_shown(unknown)}: allowed keys are {', '.join(JSON_KEYS)}")
    top_k = _parse_top_k(payload.get("top_k"))
    if ("image" in payload) == ("instances" in payload):
        raise RequestError(400, 'send exactly one of "image" (one base64 image) or "instances" (a list of them)')
    if "image" in payload:
        return InferenceRequest([_decode_base64(payload["image"], '"image"', limits)], batched=False, top_k=top_k)
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of base64 strings')
    if len(instances) > limits.max_batch:
        raise RequestError(413, f"{len(instances)} instances is over the limit of {limits.max_batch} per request: "
                                "split the batch into several requests")
    images = [_decode_base64(item, f'"instances"[{i}]', limits) for i, item in enumerate(instances)]
    return InferenceRequest(images, batched=True, top_k=top_k)


NPY_SHAPES = "uint8 arrays of shape HxWx3 (one RGB image) or NxHxWx3 (a batch), values 0-255"


def decode_npy(data: bytes, limits: ServingLimits) -> InferenceRequest:
    """Parse the .npy header first: a header may claim a shape far larger than the payload."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:  # numpy's message may echo internal objects
        raise RequestError(400, "body is not a valid .npy array (its header cannot be parsed): "
                                f"send {NPY_SHAPES} saved with numpy.save") from exc
    batched = len(shape) == 4
    if dtype != np.uint8 or len(shape) not in (3, 4) or shape[-1] != 3 or min(shape) < 1:
        raise RequestError(400, f"array has shape {tuple(shape)} and dtype {dtype}: send {NPY_SHAPES}")
    height, width = shape[-3], shape[-2]
    try:
        limits.image_policy.check_size(width, height, subject="each image of the array")
    except ImageRefused as exc:
        raise RequestError(exc.status_code, exc.message) from exc
    if batched and shape[0] > limits.max_batch:
        raise RequestError(413, f"{shape[0]} images is over the limit of {limits.max_batch} per request: "
                                "split the batch into several requests")
    count, offset = math.prod(shape), stream.tell()
    if len(data) - offset < count:
        raise RequestError(400, f"array data is truncated ({len(data) - offset} of {count} bytes): "
                                "send the complete numpy.save output")
    array = np.frombuffer(data, dtype=np.uint8, count=count, offset=offset)
    array = array.reshape(shape, order="F" if fortran_order else "C")
    stack = array if batched else array[None]
    images = [Image.fromarray(np.ascontiguousarray(item), "RGB") for item in stack]
    return InferenceRequest(images, batched=batched)


def check_content_type(content_type: str | None) -> str:
    """The media type of a supported Content-Type; a 415 that lists the supported ones otherwise."""
    kind = media_type(content_type)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = _shown(content_type) if content_type else "missing"
        hint = f" ({CURL_HINT} and -H 'Content-Type: image/jpeg')" if kind == FORM else ""
        raise RequestError(415, f"Content-Type {shown} is not supported: use one of "
                                f"{', '.join(SUPPORTED_CONTENT_TYPES)}{hint}")
    return kind


def decode_request(body: Body, content_type: str | None, limits: ServingLimits) -> InferenceRequest:
    """Turn a request body into validated images; raises :class:`RequestError`."""
    kind = check_content_type(content_type)
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    if not data:
        raise RequestError(400, f"empty request body: {SEND_INSTEAD}")
    if len(data) > limits.max_payload_bytes:
        raise RequestError(413, f"payload of {len(data)} bytes is over the {limits.max_payload_bytes} byte limit: "
                                "send a smaller (re-encoded or resized) image, or fewer images per request")
    if kind == JSON:
        request = decode_json(data, limits)
    elif kind == NPY:
        request = decode_npy(data, limits)
    else:
        request = InferenceRequest([check_image_bytes(data, limits)], batched=False)
    return check_request_pixels(request, limits)
