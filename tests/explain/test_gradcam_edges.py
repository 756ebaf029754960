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
