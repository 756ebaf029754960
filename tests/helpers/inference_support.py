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


# name -> (body, content type, expected status, fragment of the message)
BAD_REQUESTS = {
    "empty": (b"", "image/jpeg", 400, "empty"),
    "garbage": (b"this is not an image at all", "image/jpeg", 400, "not an image"),
    "truncated_jpeg": (truncated_jpeg(), "image/jpeg", 400, "truncated"),
    "gif": (encode(Image.new("P", (8, 8)), "GIF"), "application/x-image", 400, "JPEG, PNG or WebP"),
    "huge_png": (huge_png(), "image/png", 413, "megapixel"),
    "big_png": (huge_png(8000), "image/png", 413, "over the 40 megapixel limit"),
    "wrong_content_type": (dog_jpeg(), "text/plain", 415, "application/json"),
    "missing_content_type": (dog_jpeg(), "", 415, "image/jpeg"),
    "bad_json": ('{"image": ', "application/json", 400, "malformed JSON"),
    "json_not_object": ("[1, 2]", "application/json", 400, "must be an object"),
    "json_too_deep": ("[" * 100000 + "]" * 100000, "application/json", 400, "malformed JSON"),
    "json_url": (json_body(url="http://example.com/dog.jpg"), "application/json", 400, "never fetched"),
    "json_url_in_image": (json_body(image="https://example.com/d.jpg"), "application/json", 400, "never fetched"),
    "bad_base64": (json_body(image="not base64 !!"), "application/json", 400, "base64"),
    "base64_of_garbage": (json_body(image=b64(b"nope")), "application/json", 400, "not an image"),
    "unknown_key": (json_body(image=b64(dog_jpeg()), topk=3), "application/json", 400, "unknown JSON keys"),
    "bad_top_k": (json_body(image=b64(dog_jpeg()), top_k=0), "application/json", 400, "top_k"),
    "empty_instances": (json_body(instances=[]), "application/json", 400, "non-empty list"),
    "too_many_instances": (json_body(instances=[b64(one_pixel_png())] * 17), "application/json", 413, "limit of 16"),
    "npy_wrong_shape": (npy(np.zeros((3, 32, 32), np.uint8)), "application/x-npy", 400, "HxWx3"),
    "npy_wrong_dtype": (npy(np.zeros((32, 32, 3), np.float32)), "application/x-npy", 400, "uint8"),
    "npy_garbage": (b"\x93NUMPY garbage", "application/x-npy", 400, "not a valid .npy"),
    "npy_claims_huge": (npy_claiming((100000, 100000, 3)), "application/x-npy", 413, "megapixel"),
    "npy_truncated": (npy_claiming((64, 64, 3)), "application/x-npy", 400, "truncated"),
    "oversize_payload": (b"\xff\xd8" + b"\x00" * (7 * 1024 * 1024), "image/jpeg", 413, "byte limit"),
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
