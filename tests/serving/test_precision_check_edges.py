"""The precision check's image batches: an unreadable file is skipped with a warning naming it, and the images after
it are still measured, in batches of the size asked for."""

from __future__ import annotations

import logging

import pytest

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


@pytest.mark.slow  # int8 quantization of a ResNet50: make test
def test_the_comparison_says_what_it_measures_on_and_records_it(tiny_model_dir, tmp_path, capsys):
    import json
    import shutil

    from dogbreed.serving.precision_check import reduce_model_dir

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    images = [save_image(tmp_path / f"{i}.jpg", color=(30 * i, 120, 60)) for i in range(3)]
    calibration = [save_image(tmp_path / f"c{i}.jpg", color=(200, 20 * i, 90)) for i in range(2)]
    capsys.readouterr()
    reduce_model_dir(model_dir, "int8", images, calibration, minimum=0.0)
    assert capsys.readouterr().out.splitlines() == [
        "int8: calibrating activation ranges on 2 training image(s)",
        "int8: comparing with fp32 on 3 validation image(s)"]
    record = json.loads((model_dir / "model_config.json").read_text())["precision"]
    assert (record["mode"], record["images"], record["calibration_images"], record["measured_on"], record["tta"]) == (
        "int8", 3, 2, "validation split", "none")
    reduce_model_dir(model_dir, "bf16", images[:2], minimum=0.0)
    assert capsys.readouterr().out.splitlines() == ["bf16: comparing with fp32 on 2 validation image(s)"]
    record = json.loads((model_dir / "model_config.json").read_text())["precision"]
    assert (record["mode"], record["images"], "calibration_images" in record) == ("bf16", 2, False)


def test_the_agreement_counts_every_batch_and_keeps_the_largest_probability_change():
    """Two batches, as fake predictors answer them: the largest |delta p| is the first batch's (0.3), not the last
    one's (0.25); top-1 agreement counts the rows of both (3 of 4); progress sees the running image count."""
    import torch

    from dogbreed.serving.precision_check import measure_agreement

    first, second = torch.zeros(2, 1), torch.ones(2, 1)  # the batch's value picks the answers below
    reference_p = {0.0: [[0.9, 0.1], [0.2, 0.8]], 1.0: [[0.6, 0.4], [0.7, 0.3]]}
    reduced_p = {0.0: [[0.6, 0.4], [0.2, 0.8]], 1.0: [[0.55, 0.45], [0.45, 0.55]]}  # row 4: argmax 1 vs fp32's 0

    class Fake:
        def __init__(self, answers: dict, precision: str) -> None:
            self.answers, self.precision = answers, precision

        def predict_proba(self, batch: torch.Tensor) -> torch.Tensor:
            return torch.tensor(self.answers[float(batch[0, 0])], dtype=torch.float64)

    seen: list[int] = []
    agreement = measure_agreement(Fake(reference_p, "fp32"), Fake(reduced_p, "bf16"),  # type: ignore[arg-type]
                                  iter([first, second]), progress=seen.append)
    assert (agreement.precision, agreement.images, agreement.agreeing) == ("bf16", 4, 3)
    assert agreement.max_abs_delta_p == pytest.approx(0.3, abs=1e-12)
    assert seen == [2, 4]
    assert agreement.line() == ("bf16 vs fp32 on 4 held-out image(s): top-1 agreement 75.00% (3/4), "
                                "max |delta p| 0.3000")


def test_calibration_images_are_spread_evenly_over_a_class_sorted_split():
    from pathlib import Path

    from dogbreed.serving.precision_check import spread

    paths = [Path(f"class{i // 5}/{i}.jpg") for i in range(20)]  # 4 classes of 5 images, sorted by class
    # step 20 / 8 = 2.5: images 0, 2, 5, 7, 10, 12, 15, 17, two per class (an integer step of 2 would stop at
    # image 14 and leave the last class out)
    assert spread(paths, 8) == [paths[i] for i in (0, 2, 5, 7, 10, 12, 15, 17)]
    assert spread(paths, 20) == paths and spread(paths, 256) == paths  # at most count: all of them, in order
    assert spread(paths, 1) == [paths[0]]
