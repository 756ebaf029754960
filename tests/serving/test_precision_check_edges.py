"""The precision check's image batches: an unreadable file is skipped with a warning naming it, and the images after
it are still measured, in batches of the size asked for."""

from __future__ import annotations

import logging

from dogbreed.serving.precision_check import image_batches
from dogbreed.serving.predictor import Predictor
from tests.helpers.builders import save_image


def test_an_unreadable_file_is_skipped_and_the_rest_still_batched(tiny_model_dir, tmp_path, caplog):
    predictor = Predictor.from_model_dir(tiny_model_dir)
    good = [save_image(tmp_path / f"{i}.jpg", color=(40 * i, 90, 200)) for i in range(5)]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with caplog.at_level(logging.WARNING, logger="dogbreed"):
        batches = list(image_batches(predictor, [good[0], bad, *good[1:]], batch_size=2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 32, 32), (2, 3, 32, 32), (1, 3, 32, 32)]
    assert [r.getMessage() for r in caplog.records] == [  # the reason's first line (PIL's words inside it)
        f"skipped {bad}: cannot decode image {bad}: cannot identify image file '{bad}'. Use a valid JPEG, PNG or "
        "WebP file"]
    assert batches[2][0].equal(predictor.preprocess([good[4]])[0])
