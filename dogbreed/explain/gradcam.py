"""Grad-CAM overlays: which part of the photo made the model pick its top breed.

Captum's ``LayerGradCam`` computes the map on ``layer4`` (7x7 at 224 px) for a breed of the evaluation view
(resize, centre crop). The map is upsampled onto the crop's footprint in the photo decoded at full size with its
EXIF orientation applied, so the overlay has the photo's own size (a 1024x768 photo gives a 1024x768 overlay);
the parts the centre crop cut off are dimmed. Each overlay names the breed it explains with its probability and
carries a colour key (low -> high attention); ``top_k`` explains the k best breeds side by side.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from dogbreed.core.errors import ConfigError
from dogbreed.core.images import ImageSource, open_image
from dogbreed.core.transforms import Preprocessing, build_eval_transform, decode_eval_image
from dogbreed.serving.answers import BreedPrediction
from dogbreed.serving.predictor import Predictor

logger = logging.getLogger(__name__)

HEAT_ALPHA = 0.5  # weight of the colour map where the heat is 1
OUTSIDE_DIM = 0.45  # brightness kept outside the region the model saw
SUFFIX = "_gradcam.png"
KEY_STEPS = 5  # colour key: 0, 0.25, 0.5, 0.75, 1


@dataclass(frozen=True)
class Explanation:
    """The overlay (RGB: the photo's size, or k photos side by side), the heat map of the first breed on the
    photo's grid in [0, 1], the breeds explained, and what was drawn: one caption per panel and the colour key
    (attention value, RGB colour)."""

    overlay: Image.Image
    heat: np.ndarray
    prediction: BreedPrediction
    predictions: tuple[BreedPrediction, ...] = ()
    captions: tuple[str, ...] = ()
    key: tuple[tuple[float, tuple[int, int, int]], ...] = ()


def require_captum() -> None:
    if importlib.util.find_spec("captum") is None:
        raise ConfigError("--explain needs Captum: pip install -e '.[explain]' (or pip install captum)")


def crop_box(width: int, height: int, pre: Preprocessing) -> tuple[float, float, float, float]:
    """Where the evaluation view (short side resized to ``resize_size``, centre crop ``image_size``) lies in the
    original image: (left, top, right, bottom) in original pixels."""
    side = pre.image_size * min(width, height) / pre.resize_size
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def layer_gradcam(net: torch.nn.Module, batch: torch.Tensor, target: int) -> torch.Tensor:
    """Captum Grad-CAM of ``target`` on ``net.layer4``, ReLU'd and scaled to [0, 1]: (h, w) on the CPU."""
    from captum.attr import LayerGradCam

    with torch.inference_mode(False), torch.enable_grad():
        cam = LayerGradCam(net, net.layer4).attribute(batch.clone(), target=target, relu_attributions=True)
    cam = cam.detach()[0, 0].float().cpu()
    peak = float(cam.max())
    return cam / peak if peak > 0 else cam


def _colour(heat: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["jet"](heat)[..., :3] * 255.0


def render_overlay(image: Image.Image, cam: torch.Tensor, pre: Preprocessing) -> tuple[Image.Image, np.ndarray]:
    """Blend the colour-mapped ``cam`` onto ``image`` over the crop's footprint; dim what the crop left out."""
    width, height = image.size
    left, top, right, bottom = crop_box(width, height, pre)
    box = (round(left), round(top), max(round(right), round(left) + 1), max(round(bottom), round(top) + 1))
    cam_image = Image.fromarray((cam.numpy() * 255).astype(np.uint8), "L")
    resized = np.asarray(cam_image.resize((box[2] - box[0], box[3] - box[1]), Image.Resampling.BILINEAR),
                         dtype=np.float32) / 255.0
    heat = np.zeros((height, width), dtype=np.float32)
    seen = np.zeros((height, width), dtype=bool)
    heat[box[1]:box[3], box[0]:box[2]] = resized  # the box lies inside the image: its side <= the short side
    seen[box[1]:box[3], box[0]:box[2]] = True
    rgb = np.asarray(image, dtype=np.float32)
    weight = (HEAT_ALPHA * heat)[..., None]
    blended = rgb * (1 - weight) + _colour(heat) * weight
    blended[~seen] = rgb[~seen] * OUTSIDE_DIM
    return Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8), "RGB"), heat


def caption(prediction: BreedPrediction, rank: int) -> str:
    return f"#{rank} {prediction.breed} {prediction.probability:.2f}"


def colour_key() -> tuple[tuple[float, tuple[int, int, int]], ...]:
    values = np.linspace(0.0, 1.0, KEY_STEPS)
    colours = _colour(values)
    return tuple((float(v), (int(c[0]), int(c[1]), int(c[2]))) for v, c in zip(values, colours))


def draw_labels(panel: Image.Image, text: str, key: tuple[tuple[float, tuple[int, int, int]], ...]) -> None:
    """A dark band along the bottom of ``panel`` with ``text`` (breed, probability) and the colour key."""
    width, height = panel.size
    size = max(10, min(width, height) // 16)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(panel)
    band = min(height, 2 * size + 3 * (size // 2))
    draw.rectangle([0, height - band, width, height], fill=(0, 0, 0))
    draw.text((size // 2, height - band + size // 4), text, fill=(255, 255, 255), font=font)
    swatch = max(2, (width - size) // (2 * len(key)))
    top = height - size - size // 4
    draw.text((size // 2, top), "low", fill=(255, 255, 255), font=font)
    left = size // 2 + 3 * size
    for _, colour in key:
        draw.rectangle([left, top, left + swatch, top + size], fill=colour)
        left += swatch
    draw.text((left + size // 4, top), "high", fill=(255, 255, 255), font=font)


def explain_image(predictor: Predictor, source: ImageSource, *, top_k: int = 1) -> Explanation:
    """Grad-CAM overlays of the ``top_k`` best breeds of one image (the evaluation view, whatever the artifact's
    TTA), side by side, each at the photo's own size with its caption and colour key."""
    require_captum()
    pre = predictor.config.preprocessing
    view = decode_eval_image(source, pre)
    photo = view if isinstance(source, Image.Image) else open_image(source)  # full size, EXIF-oriented
    batch = build_eval_transform(pre)(view).unsqueeze(0).to(predictor.device)
    top = predictor.answers(predictor.predict_logits(predictor.preprocess([view])), k=top_k)[0].predictions
    key = colour_key()
    panels, heats, captions = [], [], []
    for rank, prediction in enumerate(top, start=1):
        cam = layer_gradcam(predictor.net, batch.contiguous(memory_format=torch.channels_last), prediction.index)
        panel, heat = render_overlay(photo, cam, pre)
        captions.append(caption(prediction, rank))
        draw_labels(panel, captions[-1], key)
        panels.append(panel)
        heats.append(heat)
    overlay = panels[0]
    if len(panels) > 1:
        overlay = Image.new("RGB", (photo.width * len(panels), photo.height))
        for index, panel in enumerate(panels):
            overlay.paste(panel, (index * photo.width, 0))
    return Explanation(overlay=overlay, heat=heats[0], prediction=top[0], predictions=tuple(top),
                       captions=tuple(captions), key=key)


def overlay_path(out_dir: Path, source: Path, index: int, taken: set[str]) -> Path:
    """``<stem>_gradcam.png``; a second image with the same stem gets its position as a prefix."""
    name = f"{source.stem}{SUFFIX}"
    if name in taken:
        name = f"{index:04d}_{name}"
    taken.add(name)
    return out_dir / name


def write_explanations(predictor: Predictor, images: Sequence[Path], out_dir: Path, *, top_k: int = 1) -> list[Path]:
    """One PNG overlay per image in ``out_dir`` (created; ``top_k`` breeds side by side); returns the paths in the
    order of ``images``."""
    require_captum()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    for index, path in enumerate(images):
        target = overlay_path(out_dir, Path(path), index, taken)
        explain_image(predictor, path, top_k=top_k).overlay.save(target)
        written.append(target)
    return written


def overlay_figure(model_dir: Path | str, images: Sequence[ImageSource], *, columns: int = 4) -> Any:
    """A matplotlib figure of Grad-CAM overlays titled with the top breed and its probability (for notebooks)."""
    import matplotlib.pyplot as plt

    predictor = Predictor.from_model_dir(model_dir, precision="fp32")  # gradients: a float model
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, source in zip(axes.flat, images):
        explanation = explain_image(predictor, source)
        ax.imshow(explanation.overlay)
        top = explanation.prediction
        ax.set_title(f"{top.breed} {top.probability:.2f}", fontsize=9)
    fig.tight_layout()
    return fig
