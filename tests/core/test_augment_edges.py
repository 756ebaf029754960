"""dogbreed.core.augment at its edges: torchvision's crop box on tiny and thin images (the fallback included), and
the EXIF orientations that swap width and height, written out (issue 24: mutmut survivors of augment.py)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from dogbreed.core.augment import oriented_size, sample_crop_box


@pytest.mark.parametrize(("size", "scale"), [((1, 1), (0.08, 1.0)), ((2, 3), (0.01, 0.2)), ((3, 2), (0.05, 0.5)),
                                             ((1, 5), (0.5, 1.0)), ((1000, 10), (0.9, 1.0)),
                                             ((10, 1000), (0.9, 1.0)), ((4, 3), (1.0, 1.0))])
def test_crop_box_is_torchvisions_on_tiny_and_thin_images(size, scale):
    """Tiny images draw boxes 1 pixel wide or none at all; thin ones fall back to the central crop."""
    width, height = size
    for seed in range(30):
        torch.manual_seed(seed)
        expected = T.RandomResizedCrop.get_params(torch.empty(0, height, width), list(scale), [3 / 4, 4 / 3])
        torch.manual_seed(seed)
        assert sample_crop_box(width, height, scale) == tuple(expected), (size, scale, seed)


def test_the_fallback_is_the_central_crop_within_the_ratio_range():
    torch.manual_seed(0)
    assert sample_crop_box(1000, 10, (0.9, 1.0)) == (0, 493, 10, 13)  # 10 * 4/3 = 13 wide, (1000 - 13) // 2
    torch.manual_seed(0)
    assert sample_crop_box(10, 1000, (0.9, 1.0)) == (493, 0, 13, 10)  # 10 / (3/4) = 13 high, centred


def jpeg_with_orientation(orientation: int) -> Image.Image:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (40, 20)).save(buffer, format="JPEG", exif=exif.tobytes())
    buffer.seek(0)
    return Image.open(buffer)


@pytest.mark.parametrize(("orientation", "size"), [(1, (40, 20)), (2, (40, 20)), (3, (40, 20)), (4, (40, 20)),
                                                   (5, (20, 40)), (6, (20, 40)), (7, (20, 40)), (8, (20, 40)),
                                                   (9, (40, 20))])
def test_orientations_5_to_8_swap_width_and_height(orientation, size):
    assert oriented_size(jpeg_with_orientation(orientation)) == size


def test_an_image_without_exif_keeps_its_size():
    assert oriented_size(Image.new("RGB", (7, 3))) == (7, 3)
