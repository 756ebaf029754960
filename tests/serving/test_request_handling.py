"""Request handling on the random-weights ``tiny_model_dir`` (no trained model): decoding, limits at their exact
boundaries, Accept negotiation, content-type spelling, truncated files and where top-k comes from."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from sagemaker_inference.errors import GenericInferenceToolkitError

from dogbreed.core.image_policy import ImagePolicy
from dogbreed.serving import handlers as inference
from dogbreed.serving.predictor import Predictor
from dogbreed.serving.requests import RequestError, ServingLimits, decode_request, negotiate_accept
from tests.helpers.inference_support import b64, dog_image, dog_jpeg, encode, json_body, npy, one_pixel_png

CLASS_NAMES = ["Affenpinscher", "Afghan hound", "Airedale terrier"]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir) -> Predictor:
    return Predictor.from_model_dir(tiny_model_dir, device="cpu")


def status_of(body, content_type: str) -> tuple[int, str]:
    with pytest.raises(RequestError) as caught:
        decode_request(body, content_type, ServingLimits.from_env())
    return caught.value.status_code, caught.value.message


def answer(predictor: Predictor, body, content_type: str, accept: str | None = "application/json"):
    result = inference.predict_fn(decode_request(body, content_type, ServingLimits.from_env()), predictor)
    return inference.encode_result(result, negotiate_accept(accept))


def noise(fmt: str, size: int = 64) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), fmt)


# --- decoding


def test_the_limits_written_out():
    assert ServingLimits.from_env({}) == ServingLimits(default_top_k=5, max_payload_bytes=6 * 1024 * 1024,
                                                       max_pixels=40_000_000, max_batch=16,
                                                       max_request_pixels=80_000_000, max_aspect_ratio=20)
    assert ServingLimits(max_pixels=7, max_aspect_ratio=3).image_policy == ImagePolicy(
        formats=("JPEG", "MPO", "PNG", "WEBP"), max_pixels=7, max_aspect_ratio=3.0, still_only=True, strict=True)


@pytest.mark.parametrize("fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                               ("WEBP", "image/webp"), ("PNG", "application/octet-stream")])
def test_each_image_format_decodes_to_the_same_prediction_as_the_library(predictor, fmt, content_type):
    data = encode(dog_image(1), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    body, response_type = answer(predictor, data, content_type)
    answer_ = json.loads(body)
    assert response_type == "application/json" and answer_["confident"] is None  # no abstention rule set
    rows = answer_["predictions"]
    assert [row["breed"] for row in rows] == [p.breed for p in predictor.predict([data], k=5)[0]]
    assert {row["breed"] for row in rows} == set(CLASS_NAMES)  # top-5 of 3 breeds: all three, best first


@pytest.mark.parametrize("content_type", ["IMAGE/JPEG", "Image/Jpeg; charset=binary", " image/jpeg "])
def test_content_type_is_case_and_parameter_insensitive(predictor, content_type):
    assert answer(predictor, dog_jpeg(), content_type)[1] == "application/json"


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/json; charset=utf-8"])
def test_json_content_type_spellings(predictor, content_type):
    rows = json.loads(answer(predictor, json_body(image=b64(dog_jpeg())), content_type)[0])["predictions"]
    assert len(rows) == 3


def test_npy_content_type_spelling(predictor):
    array = np.asarray(dog_image(2), dtype=np.uint8)
    body, kind = answer(predictor, npy(array), "Application/X-NPY", accept="application/x-npy")
    assert kind == "application/x-npy" and np.load(io.BytesIO(body)).shape == (3,)


# --- truncated files


def refused(predictor: Predictor, body: bytes, content_type: str) -> tuple[int, str]:
    """Completeness is checked by the strict decode in predict_fn, not by looking for end markers."""
    with pytest.raises((RequestError, GenericInferenceToolkitError)) as caught:
        inference.predict_fn(decode_request(body, content_type, ServingLimits.from_env()), predictor)
    return caught.value.status_code, caught.value.message


def test_truncated_png_is_refused(predictor):
    data = noise("PNG")
    status, message = refused(predictor, data[: len(data) * 2 // 3], "image/png")
    assert (status, message) == (400, "image is truncated (the file ends inside its image data): use the complete file")


def test_truncated_webp_is_refused(predictor):
    data = noise("WEBP")
    for cut in (len(data) * 2 // 3, len(data) - 1):
        status, message = refused(predictor, data[:cut], "image/webp")
        # inside the parentheses libwebp's words, through PIL ("could not create decoder object")
        assert status == 400 and re.fullmatch(r"image header cannot be read \(([a-z ]+)\): send a complete JPEG, PNG "
                                              r"or WebP file", message), message


def test_complete_png_and_webp_are_accepted():
    for fmt, kind in (("PNG", "image/png"), ("WEBP", "image/webp")):
        request = decode_request(noise(fmt), kind, ServingLimits())
        assert len(request.images) == 1 and not request.batched


# --- limits, each at the boundary


def test_a_batch_of_exactly_the_limit_is_answered_and_one_more_is_413(predictor):
    images = [b64(one_pixel_png())] * 16
    answers = json.loads(answer(predictor, json_body(instances=images, top_k=1), "application/json")[0])
    assert len(answers) == 16 and all(len(a["predictions"]) == 1 and a["confident"] is None for a in answers)
    assert status_of(json_body(instances=images + images[:1]), "application/json") == (
        413, "17 instances is over the limit of 16 per request: split the batch into several requests")


def test_npy_batch_of_exactly_the_limit_and_one_more():
    batch = np.zeros((16, 8, 8, 3), np.uint8)
    assert len(decode_request(npy(batch), "application/x-npy", ServingLimits()).images) == 16
    assert status_of(npy(np.zeros((17, 8, 8, 3), np.uint8)), "application/x-npy") == (
        413, "17 images is over the limit of 16 per request: split the batch into several requests")


def test_batch_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOGBREED_MAX_BATCH", "2")
    assert len(decode_request(json_body(instances=[b64(one_pixel_png())] * 2), "application/json",
                              ServingLimits.from_env()).images) == 2
    assert status_of(json_body(instances=[b64(one_pixel_png())] * 3), "application/json")[0] == 413


def test_payload_limit_boundary(monkeypatch):
    data = dog_jpeg()
    monkeypatch.setenv("DOGBREED_MAX_PAYLOAD_BYTES", str(len(data)))
    assert decode_request(data, "image/jpeg", ServingLimits.from_env()).images == [data]
    monkeypatch.setenv("DOGBREED_MAX_PAYLOAD_BYTES", str(len(data) - 1))
    assert status_of(data, "image/jpeg") == (413, f"payload of {len(data)} bytes is over the {len(data) - 1} byte "
                                                  "limit: send a smaller (re-encoded or resized) image, or fewer "
                                                  "images per request")


def test_pixel_limit_boundary(monkeypatch):
    data = encode(Image.new("RGB", (20, 20), (1, 2, 3)), "PNG")
    monkeypatch.setenv("DOGBREED_MAX_PIXELS", "400")
    assert len(decode_request(data, "image/png", ServingLimits.from_env()).images) == 1
    monkeypatch.setenv("DOGBREED_MAX_PIXELS", "399")
    status, message = status_of(data, "image/png")
    assert status == 413 and message == ("image is 20x20 (0.0 megapixels), over the 0.000399 megapixel limit: resize "
                                         "it before sending")


@pytest.mark.parametrize("value", ["0", "-3", "lots"])
def test_bad_limit_variables_are_refused(monkeypatch, value):
    monkeypatch.setenv("DOGBREED_MAX_BATCH", value)
    with pytest.raises(Exception) as refused:
        ServingLimits.from_env()
    assert str(refused.value) == (f"environment variable DOGBREED_MAX_BATCH='{value}' must be a positive integer "
                                  "(default 16)")


# --- Accept negotiation


@pytest.mark.parametrize("accept, expected", [
    (None, "application/json"),
    ("", "application/json"),
    ("*/*", "application/json"),
    ("application/*", "application/json"),
    ("APPLICATION/X-NPY", "application/x-npy"),
    ("application/x-npy, application/json", "application/x-npy"),  # equal q: the first listed
    ("application/json;q=0, application/x-npy", "application/x-npy"),  # q=0 means "not this"
    ("application/x-npy;q=0.1, */*;q=0.5", "application/json"),
    ("text/html;q=1, application/x-npy;q=0.3", "application/x-npy"),
    ("application/json;q=bogus", "application/json"),  # an unreadable q counts as 1
])
def test_accept_negotiation(accept, expected):
    assert negotiate_accept(accept) == expected


@pytest.mark.parametrize("accept", ["*/*;q=0", "application/json;q=0", "application/json;q=0, application/x-npy;q=0",
                                    "text/csv", "image/*"])
def test_accept_that_excludes_every_supported_type_is_406(accept):
    with pytest.raises(RequestError) as caught:
        negotiate_accept(accept)
    assert caught.value.status_code == 406
    assert caught.value.message == f"cannot answer in '{accept}': set Accept to application/json or application/x-npy"


def test_npy_response_holds_the_probabilities(predictor):
    data = dog_jpeg(2)
    body, kind = answer(predictor, data, "image/jpeg", accept="application/x-npy")
    probabilities = np.load(io.BytesIO(body), allow_pickle=False)
    assert kind == "application/x-npy" and probabilities.dtype == np.float32 and probabilities.shape == (3,)
    expected = predictor.predict_proba(predictor.preprocess([data]))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)


# --- top-k: request > DOGBREED_TOP_K > 5, capped at the number of breeds


@pytest.mark.parametrize("request_top_k, environment, expected", [
    (None, None, 3),  # default 5, capped at 3 breeds
    (None, "2", 2),
    (1, "2", 1),  # the request wins
    (2, None, 2),
    (10, None, 3),
])
def test_top_k_from_request_then_environment(predictor, monkeypatch, request_top_k, environment, expected):
    if environment is not None:
        monkeypatch.setenv("DOGBREED_TOP_K", environment)
    else:
        monkeypatch.delenv("DOGBREED_TOP_K", raising=False)
    payload = {"image": b64(dog_jpeg())} if request_top_k is None else {"image": b64(dog_jpeg()),
                                                                        "top_k": request_top_k}
    rows = json.loads(answer(predictor, json.dumps(payload), "application/json")[0])["predictions"]
    assert len(rows) == expected
    probabilities = [row["probability"] for row in rows]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(row["breed"] == CLASS_NAMES[row["index"]] for row in rows)


@pytest.mark.parametrize("top_k, shown", [(0, "0"), (-1, "-1"), (1.5, "1.5"), ("2", "'2'"), (True, "True")])
def test_bad_top_k_in_the_request_is_400(top_k, shown):
    status, message = status_of(json_body(image=b64(dog_jpeg()), top_k=top_k), "application/json")
    assert status == 400 and message == f'"top_k" must be a positive integer, got {shown}'


def test_malformed_json_says_what_to_send():
    from dogbreed.serving.requests import decode_json

    with pytest.raises(RequestError) as caught:
        decode_json(b"{", ServingLimits.from_env({}))
    assert caught.value.status_code == 400
    assert caught.value.message == ('malformed JSON (Expecting property name enclosed in double quotes at line 1, '
                                    'column 2): send {"image": "<base64>"} or '
                                    '{"instances": ["<base64>", ...]}')


@pytest.mark.parametrize("shape", [(8, 8, 1), (2, 8, 8, 1), (8, 8, 4), (8, 8)])
def test_an_npy_array_that_is_not_rgb_is_a_400_naming_its_shape(shape):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(shape, dtype=np.uint8))
    with pytest.raises(RequestError) as refused:
        decode_request(buffer.getvalue(), "application/x-npy", ServingLimits())
    assert (refused.value.status_code, refused.value.message) == (
        400, f"array has shape {shape} and dtype uint8: send uint8 arrays of shape HxWx3 (one RGB image) or NxHxWx3 "
             "(a batch), values 0-255")
