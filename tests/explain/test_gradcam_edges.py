"""Grad-CAM drawing at its edges, fast and exact: the dimming outside the crop, the label band's height, the
explanation's defaults, and the notebook figure from the tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dogbreed.core.transforms import Preprocessing
from dogbreed.explain.gradcam import Explanation, draw_labels, overlay_figure, render_overlay


def test_outside_the_crop_is_dimmed_to_45_percent_and_cold_heat_leaves_the_photo():
    photo = Image.new("RGB", (64, 32), (200, 100, 40))
    overlay, heat = render_overlay(photo, torch.zeros(7, 7), Preprocessing(image_size=32, resize_size=32))
    pixels = np.asarray(overlay)
    # the 32 px centre crop of a 64x32 photo covers columns 16..47; heat 0 blends nothing in there
    assert pixels[:, 16:48].tolist() == np.full((32, 32, 3), (200, 100, 40)).tolist()
    assert pixels[:, :16].tolist() == np.full((32, 16, 3), (90, 45, 18)).tolist()
    assert pixels[:, 48:].tolist() == np.full((32, 16, 3), (90, 45, 18)).tolist()
    assert heat.shape == (32, 64) and heat.max() == 0.0


def test_the_label_band_is_two_and_a_half_text_lines_high():
    panel = Image.new("RGB", (320, 320), (255, 255, 255))
    draw_labels(panel, "#1 Affenpinscher 0.91", ((0.0, (0, 0, 127)), (1.0, (127, 0, 0))))
    # text size max(10, 320 // 16) = 20: the band is 2 * 20 + 3 * 10 = 70 rows
    assert panel.getpixel((319, 250)) == (0, 0, 0) and panel.getpixel((319, 249)) == (255, 255, 255)


def test_an_explanation_defaults_to_no_extra_panels_captions_or_key():
    explanation = Explanation(overlay=Image.new("RGB", (2, 2)), heat=np.zeros((2, 2)), prediction=None)  # type: ignore[arg-type]
    assert (explanation.predictions, explanation.captions, explanation.key) == ((), (), ())


def test_the_notebook_figure_titles_each_overlay_with_its_top_breed(tiny_model_dir):
    from dogbreed.serving.predictor import Predictor

    photos = [Image.new("RGB", (48, 40), (30 * i, 120, 200)) for i in range(3)]
    figure = overlay_figure(tiny_model_dir, photos, columns=2)
    shown = [ax for ax in figure.axes if ax.images]
    top = [answer[0] for answer in Predictor.from_model_dir(tiny_model_dir, precision="fp32").predict(photos, k=1)]
    assert [ax.get_title() for ax in shown] == [f"{p.breed} {p.probability:.2f}" for p in top]
    assert len(figure.axes) == 4 and tuple(figure.get_size_inches()) == pytest.approx((6.4, 6.8))
    assert [ax.images[0].get_array().shape[:2] for ax in shown] == [(40, 48)] * 3
    one_row = overlay_figure(tiny_model_dir, [], columns=3)  # fewer images than columns: one row, not two
    assert len(one_row.axes) == 3 and tuple(one_row.get_size_inches()) == pytest.approx((9.6, 3.4))


@pytest.mark.parametrize("head_scale", [1.0, 0.01])  # peaks above and below 1: both scaled to exactly 1
def test_the_cam_is_relu_d_and_scaled_to_a_peak_of_1(head_scale):
    from captum.attr import LayerGradCam

    from dogbreed.core.network import build_resnet50
    from dogbreed.explain.gradcam import layer_gradcam

    torch.manual_seed(0)
    net = build_resnet50(3).eval()
    with torch.no_grad():
        net.fc.weight.mul_(head_scale)
    batch = torch.randn(1, 3, 96, 96)
    raw = LayerGradCam(net, net.layer4).attribute(batch.clone(), target=0, relu_attributions=True)[0, 0].detach()
    assert (float(raw.max()) > 1) == (head_scale == 1.0)
    cam = layer_gradcam(net, batch, 0)
    assert cam.shape == (3, 3) and float(cam.max()) == 1.0 and float(cam.min()) >= 0.0
    assert torch.allclose(cam, raw / raw.max())


def test_hot_heat_blends_half_the_colour_map_over_the_photo():
    photo = Image.new("RGB", (32, 32), (200, 100, 40))
    overlay, heat = render_overlay(photo, torch.ones(4, 4), Preprocessing(image_size=32, resize_size=32))
    # heat 1 inside the crop: rgb * (1 - 0.5) + jet(1) * 0.5, jet(1) = (127.5, 0, 0)
    assert heat.min() == 1.0
    assert np.asarray(overlay)[5, 5].tolist() == [163, 50, 20]


def test_the_labels_use_a_font_of_a_sixteenth_of_the_short_side_and_keep_2_px_swatches(monkeypatch):
    from PIL import ImageDraw

    fonts, boxes = [], []
    real_text, real_rectangle = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.rectangle
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **k: fonts.append(k["font"].size) or real_text(self, xy, text, *a,
                                                                                                    **k))
    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle",
                        lambda self, xy, *a, **k: boxes.append(xy) or real_rectangle(self, xy, *a, **k))
    key = tuple((v, (0, 0, 0)) for v in (0.0, 0.25, 0.5, 0.75, 1.0))
    draw_labels(Image.new("RGB", (480, 640)), "#1 Affenpinscher 0.91", key)
    assert fonts == [30, 30, 30]  # min(480, 640) // 16
    fonts.clear(), boxes.clear()
    draw_labels(Image.new("RGB", (30, 30)), "#1 Affenpinscher 0.91", key)
    # a 30 px panel: text size 10 (the floor), swatches max(2, (30 - 10) // 10) = 2 px from x = 5 + 30
    assert fonts == [10, 10, 10]
    assert [box[0] for box in boxes[1:]] == [35, 37, 39, 41, 43] and all(box[2] - box[0] == 2 for box in boxes[1:])


def test_the_caption_the_key_ends_and_the_swatches_sit_where_the_layout_says(monkeypatch):
    from PIL import ImageDraw

    texts, boxes = [], []
    real_text, real_rectangle = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.rectangle
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, text, *a, **k: texts.append((tuple(xy), text)) or real_text(self, xy, text,
                                                                                                   *a, **k))
    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle",
                        lambda self, xy, *a, **k: boxes.append(list(xy)) or real_rectangle(self, xy, *a, **k))
    key = tuple((v, (0, 0, 0)) for v in (0.0, 0.25, 0.5, 0.75, 1.0))
    draw_labels(Image.new("RGB", (480, 640)), "#1 Affenpinscher 0.91", key)
    # text size 30; band min(640, 2 x 30 + 3 x 15) = 105 rows from y 535; caption 15 px in, 7 px down; the key's
    # row at 640 - 30 - 7 = 603; swatches (480 - 30) // 10 = 45 px wide from x 15 + 90 = 105; "high" 7 px after
    assert texts == [((15, 542), "#1 Affenpinscher 0.91"), ((15, 603), "low"), ((337, 603), "high")]
    assert boxes[0] == [0, 535, 480, 640]
    assert boxes[1:] == [[105 + 45 * i, 603, 150 + 45 * i, 633] for i in range(5)]
    texts.clear()
    draw_labels(Image.new("RGB", (496, 700)), "#1 Affenpinscher 0.91", key)
    # text size 31 (odd): every offset a whole pixel, halves rounded down: 15 px in, 7 px down; band 62 + 45 = 107
    # rows from y 593; key row 700 - 31 - 7 = 662; swatches (496 - 31) // 10 = 46 px from x 15 + 93 = 108
    assert texts == [((15, 600), "#1 Affenpinscher 0.91"), ((15, 662), "low"), ((345, 662), "high")]
    assert all(type(v) is int for xy, _ in texts for v in xy)


def test_a_photo_one_pixel_wide_still_gets_its_heat_over_that_pixel():
    photo = Image.new("RGB", (1, 40), (10, 20, 30))
    overlay, heat = render_overlay(photo, torch.ones(7, 7), Preprocessing(image_size=32, resize_size=32))
    assert overlay.size == (1, 40) and heat.shape == (40, 1)
    assert heat.max() == pytest.approx(1.0, abs=0.01)  # the crop's 1 px column carries the cam


def test_overlays_of_photos_with_the_same_name_do_not_overwrite_each_other(tmp_path):
    """photos/a/dog.jpg and photos/b/dog.png: the second overlay takes its position in the list as a prefix."""
    from pathlib import Path

    from dogbreed.explain.gradcam import overlay_path

    taken: set[str] = set()
    paths = [overlay_path(tmp_path, Path(p), index, taken)
             for index, p in enumerate(["a/dog.jpg", "b/cat.jpg", "b/dog.png", "c/dog.webp"])]
    assert paths == [tmp_path / "dog_gradcam.png", tmp_path / "cat_gradcam.png", tmp_path / "0002_dog_gradcam.png",
                     tmp_path / "0003_dog_gradcam.png"]
    assert taken == {"dog_gradcam.png", "cat_gradcam.png", "0002_dog_gradcam.png", "0003_dog_gradcam.png"}


@pytest.mark.slow  # builds and saves a 96 px ResNet50 (about 5 s): make test, not make test-quick
def test_the_heat_returned_with_several_breeds_is_the_first_breeds(tmp_path):
    """``Explanation.heat`` is documented as the heat map of the first breed: explaining a second breed beside it
    must not change it, nor the first panel. At 96 px the map is 3x3 (at the tiny model's 32 px it is one cell,
    the same for every breed)."""
    from dogbreed.core.network import build_resnet50
    from dogbreed.explain.gradcam import explain_image
    from dogbreed.serving.artifact import ModelConfig, save_artifact
    from dogbreed.serving.predictor import Predictor

    torch.manual_seed(0)
    config = ModelConfig(class_names=["Affenpinscher", "Afghan hound", "Airedale terrier"],
                         preprocessing=Preprocessing(image_size=96))
    predictor = Predictor.from_model_dir(save_artifact(tmp_path / "model", build_resnet50(3).eval(), config),
                                         device="cpu")
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8), "RGB")
    single, pair = explain_image(predictor, photo), explain_image(predictor, photo, top_k=2)
    assert pair.prediction == single.prediction == pair.predictions[0]
    assert np.array_equal(pair.heat, single.heat)
    panels = np.asarray(pair.overlay)
    assert np.array_equal(panels[:, :120], np.asarray(single.overlay))
    # above the label band (rows 65..99: text size 10, 2 x 10 + 3 x 5 rows) the second breed's map is another map
    assert not np.array_equal(panels[:65, :120], panels[:65, 120:])


@pytest.mark.parametrize("seed, target, zeros", [(0, 2, 6), (2, 0, 9)])
def test_negative_evidence_is_cut_to_zero_heat_not_scaled_into_the_map(seed, target, zeros):
    """Grad-CAM keeps only the regions that speak for the breed (ReLU): on these seeds the raw map of ``target``
    has ``zeros`` negative cells of the 3x3 (seed 2, breed 0: all nine, so no heat at all)."""
    from captum.attr import LayerGradCam

    from dogbreed.core.network import build_resnet50
    from dogbreed.explain.gradcam import layer_gradcam

    torch.manual_seed(seed)
    net = build_resnet50(3).eval()
    batch = torch.randn(1, 3, 96, 96)
    raw = LayerGradCam(net, net.layer4).attribute(batch.clone(), target=target, relu_attributions=False)[0, 0]
    assert int((raw < 0).sum()) == zeros
    cam = layer_gradcam(net, batch, target)
    assert int((cam == 0).sum()) == zeros and float(cam.min()) == 0.0
    positive = raw.detach().clamp(min=0)
    expected = positive / positive.max() if zeros < 9 else positive
    assert torch.allclose(cam, expected)


def test_the_heat_is_upsampled_smoothly_onto_the_crop():
    """A 2x2 cam (cold left, hot right) over a 32 px crop: bilinear upsampling gives a ramp from 0 to 1 across the
    columns, not two flat blocks."""
    photo = Image.new("RGB", (32, 32), (0, 0, 0))
    _, heat = render_overlay(photo, torch.tensor([[0.0, 1.0], [0.0, 1.0]]), Preprocessing(image_size=32,
                                                                                         resize_size=32))
    row = heat[16]
    assert row[0] == 0.0 and row[-1] == 1.0
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 10
    assert np.array_equal(heat, np.tile(row, (32, 1)))  # the same in every row
