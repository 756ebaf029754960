"""Budgets on what is allocated: a thin image (1 x 40000) would become resize_size x (resize_size * 40000) pixels in
the eval resize; every decode path (serving, predict, training, evaluation, the data check) refuses it from the
header, before any pixel is decoded or resized, and images at the aspect-ratio limit are resized within the bound."""

from __future__ import annotations

import io
import tracemalloc

import pytest
import torch
from PIL import Image, ImageFile

from dogbreed.core.augment import TrainTransform
from dogbreed.core.image_policy import DECODE_POLICY, SERVING_POLICY, ImagePolicy, ImageRefused
from dogbreed.core.images import check_image_header, open_image
from dogbreed.core.transforms import Preprocessing, build_eval_transform, decode_eval_image, resize_short_side
from dogbreed.serving.requests import RequestError, ServingLimits, decode_request

THIN_MESSAGE = "image is 1x40000, an aspect ratio of 40000:1, over the 20:1 limit: crop it to the dog before sending"


def png(width: int, height: int, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def nothing_decoded(monkeypatch):
    """Any pixel decode (PIL's ImageFile.load) fails the test: refusals must come from the header."""
    def load(self):
        raise AssertionError(f"decoded {self.size} pixels")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_policy_limits_written_out():
    assert SERVING_POLICY == ImagePolicy(formats=("JPEG", "MPO", "PNG", "WEBP"), max_pixels=40_000_000,
                                         max_aspect_ratio=20.0, still_only=True, strict=True)
    assert DECODE_POLICY == ImagePolicy(formats=None, max_pixels=None, max_aspect_ratio=20.0, still_only=False,
                                        strict=False)
    assert ServingLimits.from_env({"DOGBREED_MAX_ASPECT_RATIO": "5"}).image_policy.max_aspect_ratio == 5.0


def test_thin_png_is_refused_from_the_header_on_every_path_at_224_px(nothing_decoded):
    thin, pre = png(1, 40000), Preprocessing(image_size=224)
    tracemalloc.start()
    try:
        for decode in (lambda: decode_eval_image(thin, pre),  # evaluation, training's validation
                       lambda: decode_eval_image(thin, pre, policy=SERVING_POLICY),  # predict, predict_fn
                       lambda: TrainTransform(224, mean=pre.mean, std=pre.std).load(thin)):  # training
            with pytest.raises(ImageRefused) as caught:
                decode()
            assert (caught.value.status_code, str(caught.value)) == (400, THIN_MESSAGE)
        with pytest.raises(RequestError) as refused:  # the endpoint's and Batch Transform's input_fn
            decode_request(thin, "image/png", ServingLimits())
        assert (refused.value.status_code, refused.value.message) == (400, THIN_MESSAGE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"refusing a thin image allocated {peak} bytes (traced)"


def test_thin_image_is_a_bad_file_for_the_data_check(tmp_path):
    (tmp_path / "thin.png").write_bytes(png(40000, 1))
    assert check_image_header(tmp_path / "thin.png") == THIN_MESSAGE.replace("1x40000", "40000x1")


def test_thin_array_and_pil_image_are_refused():
    buffer = io.BytesIO()
    import numpy as np

    np.save(buffer, np.zeros((40000, 1, 3), np.uint8))
    with pytest.raises(RequestError) as caught:
        decode_request(buffer.getvalue(), "application/x-npy", ServingLimits())
    assert caught.value.status_code == 400 and caught.value.message == (
        "each image of the array is 1x40000, an aspect ratio of 40000:1, over the 20:1 limit: crop it to the dog "
        "before sending")
    with pytest.raises(ImageRefused) as refused:
        open_image(Image.new("RGB", (1, 21)))
    assert str(refused.value) == ("image is 1x21, an aspect ratio of 21:1, over the 20:1 limit: crop it to the dog "
                                  "before sending")


def test_at_the_ratio_limit_the_eval_resize_stays_within_the_bound():
    """20:1 is decoded and resized: at most resize_size**2 * 20 pixels before the centre crop."""
    pre = Preprocessing(image_size=32)  # resize_size 33
    image = decode_eval_image(png(2, 40, "RGB"), pre, policy=SERVING_POLICY)
    resized = resize_short_side(image, pre.resize_size)
    assert resized.size == (33, 660) and resized.width * resized.height <= pre.resize_size ** 2 * 20
    assert build_eval_transform(pre)(image).shape == torch.Size([3, 32, 32])


def test_ratio_limit_is_configurable_for_serving(monkeypatch):
    monkeypatch.setenv("DOGBREED_MAX_ASPECT_RATIO", "2")
    with pytest.raises(RequestError) as refused:
        decode_request(png(30, 10), "image/png", ServingLimits.from_env())
    assert str(refused.value) == ("image is 30x10, an aspect ratio of 3:1, over the 2:1 limit: crop it to the dog "
                                  "before sending")
    assert len(decode_request(png(20, 10), "image/png", ServingLimits.from_env()).images) == 1
