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


def _rotated_photo(path: Path, size=(320, 240)) -> Path:
    """A JPEG stored landscape with EXIF orientation 6 (rotate 90 degrees): shown portrait, size[::-1]."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, format="JPEG", exif=exif.tobytes(), quality=90)
    return path


def test_overlays_are_at_the_photos_oriented_size_and_name_each_breed_with_a_colour_key(tiny_model_dir, tmp_path,
                                                                                        monkeypatch):
    """A 320x240 JPEG shown portrait (EXIF) through a 32 px model: each panel is 240x320, not the decoded view's
    size; the captions drawn are the breeds explained with their probabilities, and the colour key is drawn."""
    from PIL import ImageDraw

    drawn_text: list[str] = []
    drawn_fills: list[tuple] = []
    real_text, real_rectangle = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.rectangle

    def spy_text(self, xy, text, *args, **kwargs):
        drawn_text.append(text)
        return real_text(self, xy, text, *args, **kwargs)

    def spy_rectangle(self, xy, *args, **kwargs):
        drawn_fills.append(kwargs.get("fill"))
        return real_rectangle(self, xy, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy_text)
    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle", spy_rectangle)
    predictor = Predictor.from_model_dir(tiny_model_dir, device="cpu")
    photo = _rotated_photo(tmp_path / "portrait.jpg")
    single = explain_image(predictor, photo)
    assert single.overlay.size == (240, 320) and single.heat.shape == (320, 240)
    top = predictor.predict([photo], k=2)[0]
    assert single.prediction == top[0]
    assert single.captions == (f"#1 {top[0].breed} {top[0].probability:.2f}",)
    assert drawn_text == [single.captions[0], "low", "high"]
    # The key: 5 swatches from the bottom of the jet map (dark blue) to its top (dark red), drawn as filled boxes.
    assert [value for value, _ in single.key] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert single.key[0][1] == (0, 0, 127) and single.key[-1][1] == (127, 0, 0)
    assert [fill for fill in drawn_fills if fill != (0, 0, 0)] == [colour for _, colour in single.key]

    drawn_text.clear()
    pair = explain_image(predictor, photo, top_k=2)
    assert pair.overlay.size == (480, 320)  # two panels side by side, each the photo's size
    assert [p.breed for p in pair.predictions] == [p.breed for p in top]
    assert pair.captions == tuple(f"#{rank} {p.breed} {p.probability:.2f}" for rank, p in enumerate(top, 1))
    assert drawn_text == [pair.captions[0], "low", "high", pair.captions[1], "low", "high"]


def test_predict_explain_top_k_writes_side_by_side_overlays(tiny_model_dir, tmp_path):
    from dogbreed.cli.predict import predict_command

    photo = _rotated_photo(tmp_path / "portrait.jpg", size=(200, 100))
    out = tmp_path / "explained"
    records = json.loads(predict_command(["--model-dir", str(tiny_model_dir), "--json", "--explain", str(out),
                                          "--explain-top-k", "3", str(photo)]).summary)
    with Image.open(records[0]["explanation"]) as overlay:
        assert overlay.size == (3 * 100, 200)
