"""Request refusals no other test quotes, each compared whole (issue 24: every refusal read back)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from dogbreed.serving.requests import RequestError, ServingLimits, decode_json, decode_npy

SEND_INSTEAD = ("send image bytes (Content-Type image/jpeg, image/png, image/webp, application/x-image or "
                'application/octet-stream), JSON {"image": "<base64>"} or {"instances": ["<base64>", ...]} '
                "(application/json), or a uint8 HxWx3 / NxHxWx3 array (application/x-npy)")
LIMITS = ServingLimits.from_env({})


def refusal(call, *args) -> tuple[int, str]:
    with pytest.raises(RequestError) as refused:
        call(*args, LIMITS)
    return refused.value.status_code, refused.value.message


@pytest.mark.parametrize("payload, answer", [
    ({"image": 5}, (400, f'"image" must be a base64 string, got int: {SEND_INSTEAD}')),
    ({"instances": ["", None]}, (400, f"empty image: {SEND_INSTEAD}")),  # "" is valid base64 of no bytes
    ({"instances": [None]}, (400, f'"instances"[0] must be a base64 string, got NoneType: {SEND_INSTEAD}')),
    ({"image": "  \n "}, (400, f"empty image: {SEND_INSTEAD}")),
    ({}, (400, 'send exactly one of "image" (one base64 image) or "instances" (a list of them)')),
    ({"image": "", "instances": []},
     (400, 'send exactly one of "image" (one base64 image) or "instances" (a list of them)')),
    ({"top_k": 2}, (400, 'send exactly one of "image" (one base64 image) or "instances" (a list of them)')),
])
def test_json_requests_that_hold_no_image_say_what_to_send(payload, answer):
    assert refusal(decode_json, json.dumps(payload).encode()) == answer


def _npy(version: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 4, 3), dtype=np.uint8))
    data = bytearray(buffer.getvalue())
    data[6:8] = bytes(version)  # the format version after the \x93NUMPY magic
    return bytes(data)


@pytest.mark.parametrize("version", [(3, 0), (1, 1), (0, 0)])
def test_an_npy_of_a_format_version_numpy_does_not_write_is_refused_as_unparseable(version):
    assert refusal(decode_npy, _npy(version)) == (
        400, "body is not a valid .npy array (its header cannot be parsed): send uint8 arrays of shape HxWx3 (one "
             "RGB image) or NxHxWx3 (a batch), values 0-255 saved with numpy.save")


def test_the_npy_versions_numpy_writes_are_read():
    assert len(decode_npy(_npy((1, 0)), LIMITS).images) == 1
    buffer = io.BytesIO()  # a 2.0 header has a 4-byte length: written by numpy, not patched
    np.lib.format.write_array(buffer, np.zeros((4, 4, 3), dtype=np.uint8), version=(2, 0))
    request = decode_npy(buffer.getvalue(), LIMITS)
    assert request.batched is False and len(request.images) == 1


def test_a_data_url_is_decoded_after_its_first_comma_only():
    """base64 has no comma: one after the header's is part of the payload, which is then not valid base64."""
    import base64

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    encoded = base64.b64encode(png.getvalue()).decode()
    request = decode_json(json.dumps({"image": f"data:image/png;base64,{encoded}"}).encode(), LIMITS)
    assert request.images == [png.getvalue()]
    assert refusal(decode_json, json.dumps({"image": f"data:image/png;base64,{encoded},extra"}).encode()) == (
        400, '"image" is not valid base64 (Only base64 data is allowed): encode the image file with base64')
