"""Grad-CAM overlays (Captum): the input's size, not blank, and ``predict --explain`` from a model dir alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogbreed.core.transforms import Preprocessing
from dogbreed.explain.gradcam import crop_box, explain_image, overlay_figure
from dogbreed.serving.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]


def test_crop_box_is_the_centre_crop_footprint_in_the_original_image():
    pre = Preprocessing(image_size=224)  # resize 232, crop 224
    left, top, right, bottom = crop_box(464, 300, pre)
    side = 224 * 300 / 232
    assert (right - left, bottom - top) == pytest.approx((side, side))
    assert (left, top) == pytest.approx(((464 - side) / 2, (300 - side) / 2))


@pytest.mark.slow
def test_overlay_has_the_input_size_and_is_not_blank(trained):
    config, result = trained
    predictor = Predictor.from_model_dir(result.model_dir, device="cpu")
    path = sorted((config.data.data_dir / "test").rglob("*.jpg"))[0]
    with Image.open(path) as original:
        size, pixels = original.size, np.asarray(original.convert("RGB"), dtype=np.float32)
    explanation = explain_image(predictor, path)
    assert explanation.overlay.size == size and explanation.overlay.mode == "RGB"
    assert explanation.heat.shape == (size[1], size[0]) and explanation.heat.max() == pytest.approx(1.0, abs=0.01)
    assert explanation.heat.std() > 0.01  # a map, not a constant
    assert np.abs(np.asarray(explanation.overlay, dtype=np.float32) - pixels).mean() > 5  # visibly drawn over
    assert explanation.prediction == predictor.predict([path], k=1)[0][0]
    figure = overlay_figure(result.model_dir, [path, path])
    assert len([ax for ax in figure.axes if ax.images]) == 2


@pytest.mark.slow
def test_predict_explain_writes_one_overlay_per_image_from_a_model_dir_alone(trained, tmp_path):
    import subprocess
    import sys

    config, result = trained
    images = sorted(p for p in (config.data.data_dir / "test").rglob("*") if p.is_file())[:2]
    out = tmp_path / "explained"
    assert len({p.stem for p in images}) == 2
    proc = subprocess.run([sys.executable, "-m", "entry_points.predict", "--model-dir", str(result.model_dir),
                           "--json", "--explain", str(out), *map(str, images)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = json.loads(proc.stdout)
    assert [record["explanation"] for record in records] == [str(out / f"{p.stem}_gradcam.png") for p in images]
    assert all(record["confident"] in (True, False, None) for record in records)
    for record, image in zip(records, images):
        with Image.open(record["explanation"]) as overlay, Image.open(image) as original:
            assert overlay.size == original.size
