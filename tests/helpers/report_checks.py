"""Content checks for the report files a run writes: a plot is a PNG of the expected size with data drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def check_plot(path: Path, size: tuple[int, int], min_coloured: float = 0.002) -> np.ndarray:
    """``path`` is a PNG of ``size`` pixels (matplotlib figsize x dpi 100) in which something coloured was drawn
    (curves, bars, a colour map): an empty figure holds only white, black and greys. Returns the RGB array."""
    with Image.open(path) as image:
        assert image.format == "PNG", f"{path.name}: {image.format}"
        assert image.size == size, f"{path.name}: {image.size} != {size}"
        rgb = np.asarray(image.convert("RGB")).astype(int)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2) > 60).mean()
    assert coloured >= min_coloured, f"{path.name}: only {coloured:.4%} coloured pixels (a blank plot?)"
    assert (rgb.min(axis=2) < 100).mean() > 0.001, f"{path.name}: no dark pixels (no axes or text)"
    return rgb


def json_layout(text: str) -> tuple[int, bool]:
    """(the indent of the first key, whether the text ends in exactly one newline) of a JSON file written for
    people to read: the layout a format argument (``indent=``, the final newline) decides."""
    second = text.splitlines()[1]
    return len(second) - len(second.lstrip(" ")), text.endswith("\n") and not text.endswith("\n\n")
