"""Request payloads shared by the inference tests: valid, odd-but-valid and hostile images."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

from dogbreed.data.demo import draw_breed_image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def dog_image(label: int = 0, seed: int = 0) -> Image.Image:
    return draw_breed_image(label, np.random.default_rng(seed))


def dog_jpeg(label: int = 0, seed: int = 0) -> bytes:
    return encode(dog_image(label, seed), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    """A JPEG cut in its scan data: PIL still decodes it with LOAD_TRUNCATED_IMAGES."""
    noise = np.random.default_rng(3).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=95)
    return data[: len(data) * 2 // 3]


def rgba_png() -> bytes:
    image = dog_image(1).convert("RGBA")
    image.putalpha(Image.new("L", image.size, 90))
    return encode(image, "PNG")


def png16() -> bytes:
    ramp = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def cmyk_jpeg() -> bytes:
    return encode(dog_image(2).convert("CMYK"), "JPEG")


def gray_jpeg() -> bytes:
    return encode(dog_image(0).convert("L"), "JPEG")


def one_pixel_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(side: int = 20000) -> bytes:
    """A complete, valid single-colour 1-bit PNG of side x side pixels, a few tens of KB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_claiming(shape: tuple[int, ...]) -> bytes:
    """A .npy header that claims ``shape`` (uint8) followed by only a few bytes of data."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 3), np.uint8))
    header["shape"] = shape
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\x00" * 12


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def json_body(**payload) -> str:
    return json.dumps(payload)


SEND_INSTEAD = ("send image bytes (Content-Type image/jpeg, image/png, image/webp, application/x-image or "
                'application/octet-stream), JSON {"image": "<base64>"} or {"instances": ["<base64>", ...]} '
                "(application/json), or a uint8 HxWx3 / NxHxWx3 array (application/x-npy)")
SEND_JSON = 'send {"image": "<base64>"} or {"instances": ["<base64>", ...]}'
CONTENT_TYPES = ("image/jpeg, image/png, image/webp, application/x-image, application/octet-stream, application/json, "
                 "application/x-npy")
SEND_ARRAYS = "send uint8 arrays of shape HxWx3 (one RGB image) or NxHxWx3 (a batch), values 0-255"
# name -> (body, Content-Type, status, the whole message of the refusal)
BAD_REQUESTS = {
    "empty": (b"", "image/jpeg", 400, f"empty request body: {SEND_INSTEAD}"),
    "garbage": (b"this is not an image at all", "image/jpeg", 400,
                f"body is not an image PIL can identify: {SEND_INSTEAD}"),
    "truncated_jpeg": (truncated_jpeg(), "image/jpeg", 400,
                       "image is truncated (the file ends inside its image data): use the complete file"),
    "gif": (encode(Image.new("P", (8, 8)), "GIF"), "application/x-image", 400,
            "image format GIF is not supported: send a JPEG, PNG or WebP image"),
    "huge_png": (huge_png(), "image/png", 413,  # in parentheses PIL's DecompressionBombError
                 "image has too many pixels (400 megapixels): resize it to at most 40 megapixels"),
    "big_png": (huge_png(8000), "image/png", 413,
                "image is 8000x8000 (64.0 megapixels), over the 40 megapixel limit: resize it before sending"),
    "wrong_content_type": (dog_jpeg(), "text/plain", 415,
                           f"Content-Type 'text/plain' is not supported: use one of {CONTENT_TYPES}"),
    "missing_content_type": (dog_jpeg(), "", 415, f"Content-Type missing is not supported: use one of {CONTENT_TYPES}"),
    "bad_json": ('{"image": ', "application/json", 400,
                 f"malformed JSON (Expecting value at line 1, column 11): {SEND_JSON}"),
    "json_not_object": ("[1, 2]", "application/json", 400, f"JSON body must be an object, got list: {SEND_JSON}"),
    "json_too_deep": ("[" * 100000 + "]" * 100000, "application/json", 400,  # a RecursionError, in our words
                      f"malformed JSON (nested too deeply): {SEND_JSON}"),
    "json_url": (json_body(url="http://example.com/dog.jpg"), "application/json", 400,
                 'URLs are never fetched: send {"image": "<base64 of the image bytes>"} instead'),
    "json_url_in_image": (json_body(image="https://example.com/d.jpg"), "application/json", 400,
                          "\"image\" looks like a URL ('https://example.com/d.jpg'); URLs are never fetched: send the "
                          "image bytes base64-encoded"),
    "bad_base64": (json_body(image="not base64 !!"), "application/json", 400,
                   '"image" is not valid base64 (Only base64 data is allowed): encode the image file with base64'),
    "base64_of_garbage": (json_body(image=b64(b"nope")), "application/json", 400,
                          f"body is not an image PIL can identify: {SEND_INSTEAD}"),
    "unknown_key": (json_body(image=b64(dog_jpeg()), topk=3), "application/json", 400,
                    "unknown JSON keys ['topk']: allowed keys are image, instances, top_k"),
    "bad_top_k": (json_body(image=b64(dog_jpeg()), top_k=0), "application/json", 400,
                  '"top_k" must be a positive integer, got 0'),
    "empty_instances": (json_body(instances=[]), "application/json", 400,
                        '"instances" must be a non-empty list of base64 strings'),
    "too_many_instances": (json_body(instances=[b64(one_pixel_png())] * 17), "application/json", 413,
                           "17 instances is over the limit of 16 per request: split the batch into several requests"),
    "npy_wrong_shape": (npy(np.zeros((3, 32, 32), np.uint8)), "application/x-npy", 400,
                        f"array has shape (3, 32, 32) and dtype uint8: {SEND_ARRAYS}"),
    "npy_wrong_dtype": (npy(np.zeros((32, 32, 3), np.float32)), "application/x-npy", 400,
                        f"array has shape (32, 32, 3) and dtype float32: {SEND_ARRAYS}"),
    "npy_garbage": (b"\x93NUMPY garbage", "application/x-npy", 400,
                    f"body is not a valid .npy array (its header cannot be parsed): {SEND_ARRAYS} saved with "
                    "numpy.save"),
    "npy_claims_huge": (npy_claiming((100000, 100000, 3)), "application/x-npy", 413,
                        "each image of the array is 100000x100000 (10000.0 megapixels), over the 40 megapixel limit: "
                        "resize it before sending"),
    "npy_truncated": (npy_claiming((64, 64, 3)), "application/x-npy", 400,
                      "array data is truncated (12 of 12288 bytes): send the complete numpy.save output"),
    "oversize_payload": (b"\xff\xd8" + b"\x00" * (7 * 1024 * 1024), "image/jpeg", 413,
                         "payload of 7340034 bytes is over the 6291456 byte limit: send a smaller (re-encoded or "
                         "resized) image, or fewer images per request"),
}

# Valid but unusual images: each must be answered with 200.
ODD_IMAGES = {
    "rgba_png": (rgba_png(), "image/png"),
    "png16": (png16(), "image/png"),
    "cmyk_jpeg": (cmyk_jpeg(), "image/jpeg"),
    "gray_jpeg": (gray_jpeg(), "image/jpeg"),
    "one_pixel_png": (one_pixel_png(), "image/png"),
    "webp": (encode(dog_image(1), "WEBP"), "image/webp"),
    "mpo_camera_jpeg": (encode(dog_image(0), "MPO", save_all=True, append_images=[dog_image(1)]), "image/jpeg"),
}
