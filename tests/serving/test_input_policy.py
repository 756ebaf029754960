"""One input policy: the same awkward files through ``predict`` (the CLI) and through the served handlers
(model_fn / input_fn / predict_fn / output_fn, as the endpoint and Batch Transform call them), compared one by one:
the same answers, the same refusals with the same message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from sagemaker_inference.errors import GenericInferenceToolkitError

from dogbreed.cli.predict import main as predict_main
from dogbreed.serving import handlers
from tests.helpers.inference_support import dog_image, dog_jpeg, encode, truncated_jpeg

MAX_PIXELS = 1_000_000  # DOGBREED_MAX_PIXELS for this test: a "too many pixels" file stays small


def _animated(fmt: str) -> bytes:
    frames = [dog_image(0), dog_image(1)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


# file name -> (bytes, expected outcome: 200 or the refusal's status, a fragment of the answer or refusal)
AWKWARD_FILES = {
    "photo.jpg": (dog_jpeg(), 200, ""),
    "photo.png": (encode(dog_image(1), "PNG"), 200, ""),
    "photo.webp": (encode(dog_image(2), "WEBP", lossless=True), 200, ""),
    "camera.jpg": (encode(dog_image(0), "MPO", save_all=True, append_images=[dog_image(1)]), 200, ""),
    "trailing_data.jpg": (dog_jpeg(1) + b"vendor data after the end marker", 200, ""),
    "strip_at_limit.png": (encode(Image.new("RGB", (2, 40), (9, 90, 9)), "PNG"), 200, ""),
    "big.jpg": (encode(Image.new("RGB", (1250, 1000), (120, 80, 40)), "JPEG"), 413,
                "image is 1250x1000 (1.2 megapixels), over the 1 megapixel limit: resize it before sending"),
    "big.png": (encode(Image.new("L", (1001, 1000)), "PNG"), 413, "over the 1 megapixel limit"),
    "thin.png": (encode(Image.new("L", (1, 40000)), "PNG"), 400,
                 "image is 1x40000, an aspect ratio of 40000:1, over the 20:1 limit: crop it to the dog"),
    "strip_over_limit.png": (encode(Image.new("RGB", (2, 41)), "PNG"), 400, "aspect ratio of 20:1, over the 20:1"),
    "still.gif": (encode(Image.new("P", (8, 8)), "GIF"), 400, "image format GIF is not supported"),
    "bitmap.bmp": (encode(dog_image(0), "BMP"), 400, "image format BMP is not supported"),
    "animated.png": (_animated("PNG"), 400, "image is animated (2 frames): send a still JPEG, PNG or WebP"),
    "animated.webp": (_animated("WEBP"), 400, "image is animated (2 frames)"),
    "truncated.jpg": (truncated_jpeg(), 400, "truncated"),
    "text.jpg": (b"not an image at all", 400, ""),
    "empty.jpg": (b"", 400, ""),
}
# The files the policy refuses (not the transport: empty or unidentifiable bodies): the very same message.
POLICY_REFUSALS = {"big.jpg", "big.png", "thin.png", "strip_over_limit.png", "still.gif", "bitmap.bmp",
                   "animated.png", "animated.webp"}


def _served(predictor, data: bytes) -> tuple[int, object]:
    try:
        request = handlers.input_fn(data, "application/x-image")  # Batch Transform's content type for images
        body, _ = handlers.output_fn(handlers.predict_fn(request, predictor), "application/json")
    except GenericInferenceToolkitError as exc:
        return exc.status_code, exc.message
    return 200, json.loads(body)


@pytest.fixture
def both_ways(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """file name -> (predict's record, (status, served answer or refusal message))."""
    from sagemaker_inference.transformer import Transformer

    monkeypatch.setenv("DOGBREED_MAX_PIXELS", str(MAX_PIXELS))
    monkeypatch.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # model_fn swaps it
    paths = []
    for name, (data, _, _) in AWKWARD_FILES.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    status = predict_main([*paths, "--model-dir", str(tiny_model_dir), "--jsonl", "--top-k", "3"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert status == 1 and [Path(r["image"]).name for r in records] == list(AWKWARD_FILES)
    predictor = handlers.model_fn(str(tiny_model_dir))
    return {Path(r["image"]).name: (r, _served(predictor, AWKWARD_FILES[Path(r["image"]).name][0]))
            for r in records}


def test_predict_and_the_served_handlers_accept_and_refuse_the_same_files(both_ways):
    for name, (expected_status, fragment) in ((n, v[1:]) for n, v in AWKWARD_FILES.items()):
        record, (status, served) = both_ways[name]
        assert status == expected_status, (name, served)
        if expected_status == 200:
            assert "error" not in record, (name, record)
            assert [p["breed"] for p in record["predictions"]] == [p["breed"] for p in served["predictions"]], name
            assert [p["probability"] for p in record["predictions"]] == pytest.approx(
                [p["probability"] for p in served["predictions"]], abs=1e-6), name
        else:
            assert "predictions" not in record and record["error"], (name, record)
            assert fragment in served, (name, served)
            if name in POLICY_REFUSALS:
                assert record["error"] == served, name
            else:
                assert fragment in record["error"], (name, record)


def test_an_image_at_the_pixel_limit_is_answered_both_ways(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = encode(Image.new("RGB", (1000, 1000), (30, 60, 90)), "JPEG")
    monkeypatch.setenv("DOGBREED_MAX_PIXELS", str(MAX_PIXELS))
    (tmp_path / "at_limit.jpg").write_bytes(data)
    assert predict_main([str(tmp_path / "at_limit.jpg"), "--model-dir", str(tiny_model_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["predictions"]) == 3
    assert handlers.input_fn(data, "image/jpeg").images == [data]
