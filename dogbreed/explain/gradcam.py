"""Grad-CAM overlays: which part of the photo made the model pick its top breed.

Captum's ``LayerGradCam`` computes the map on ``layer4`` (7x7 at 224 px) for the top breed of the evaluation
view (resize, centre crop). The map is upsampled onto the crop's footprint in the original photo, so the
overlay has the input's own size; the parts of the photo the centre crop cut off are dimmed.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from dogbreed.core.errors import ConfigError
from dogbreed.core.images import ImageSource
from dogbreed.core.transforms import Preprocessing, build_eval_transform, decode_eval_image
from dogbreed.serving.answers import BreedPrediction
from dogbreed.serving.predictor import Predictor

logger = logging.getLogger(__name__)

HEAT_ALPHA = 0.5  # weight of the colour map where the heat is 1
OUTSIDE_DIM = 0.45  # brightness kept outside the region the model saw
SUFFIX = "_gradcam.png"


@dataclass(frozen=True)
class Explanation:
    """The overlay (the input's size, RGB), the heat map on the input's grid in [0, 1], the breed explained."""

    overlay: Image.Image
    heat: np.ndarray
    prediction: BreedPrediction


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


def explain_image(predictor: Predictor, source: ImageSource) -> Explanation:
    """Grad-CAM overlay for the top breed of one image (the evaluation view, whatever the artifact's TTA)."""
    require_captum()
    pre = predictor.config.preprocessing
    image = decode_eval_image(source, pre)
    batch = build_eval_transform(pre)(image).unsqueeze(0).to(predictor.device)
    top = predictor.answers(predictor.predict_logits(predictor.preprocess([image])), k=1)[0].predictions[0]
    cam = layer_gradcam(predictor.net, batch.contiguous(memory_format=torch.channels_last), top.index)
    overlay, heat = render_overlay(image, cam, pre)
    return Explanation(overlay=overlay, heat=heat, prediction=top)


def overlay_path(out_dir: Path, source: Path, index: int, taken: set[str]) -> Path:
    """``<stem>_gradcam.png``; a second image with the same stem gets its position as a prefix."""
    name = f"{source.stem}{SUFFIX}"
    if name in taken:
        name = f"{index:04d}_{name}"
    taken.add(name)
    return out_dir / name


def write_explanations(predictor: Predictor, images: Sequence[Path], out_dir: Path) -> list[Path]:
    """One PNG overlay per image in ``out_dir`` (created); returns the paths in the order of ``images``."""
    require_captum()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    for index, path in enumerate(images):
        target = overlay_path(out_dir, Path(path), index, taken)
        explain_image(predictor, path).overlay.save(target)
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
