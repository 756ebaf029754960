"""dogbreed.core.augment at its edges: the central-crop fallback, the EXIF orientations that swap width and height,
and the crop plan's box on a reduced decode, written out (issue 24: mutmut survivors of augment.py; torchvision's
box on tiny and thin images is compared in test_train_augment.py)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from dogbreed.core.augment import TrainTransform, oriented_size, sample_crop_box


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


def test_a_plan_whose_hook_did_not_run_draws_its_box_on_the_decoded_image():
    from dogbreed.core.augment import TrainTransform, _CropPlan

    plan = _CropPlan(TrainTransform(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    torch.manual_seed(3)
    top, left, h, w = plan.box_on(Image.new("RGB", (40, 30)))
    assert plan.full_size == (40, 30) and plan.box == (top, left, h, w)
    assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 40 and h > 0 and w > 0


def test_a_box_drawn_on_the_full_image_moves_to_the_reduced_grid_rounding_half_up():
    from dogbreed.core.augment import TrainTransform, _CropPlan

    plan = _CropPlan(TrainTransform(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    plan.full_size, plan.box = (800, 600), (3, 5, 400, 400)  # top 3, left 5, 400 x 400
    # 1/4 scale: top 0.75 -> 1, left 1.25 -> 1, bottom 100.75 -> 101, right 101.25 -> 101
    assert plan.box_on(Image.new("RGB", (200, 150))) == (1, 1, 100, 100)
    assert plan.box_on(Image.new("RGB", (800, 600))) == (3, 5, 400, 400)  # full size: the box as drawn


def test_a_grey_pil_image_given_directly_is_spread_over_three_channels():
    from dogbreed.core.augment import TrainTransform

    grey = Image.new("L", (20, 12), 102)  # 102 / 255 = 0.4 everywhere
    out = TrainTransform(8, mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 1.0))(grey)
    assert out.shape == (3, 8, 8)
    expected = torch.tensor([-0.2, 0.3, 0.4]).view(3, 1, 1).expand(3, 8, 8)  # (0.4 - mean) / std per channel
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("size, box, asked", [
    (16, (0, 0, 800, 1000), (125, 100)),  # 800 >= 8 x 16: 1/8; sides not divisible by 8 are floored (1001/8, 803/8)
    (100, (0, 0, 400, 900), (250, 200)),  # 400 >= 4 x 100 but not 8 x 100: 1/4 (1001 // 4, 803 // 4)
    (100, (0, 0, 399, 900), (500, 401)),  # 399 < 4 x 100: 1/2
    (300, (0, 0, 599, 900), None),  # 599 < 2 x 300: the full decode
])
def test_the_draft_hook_asks_the_decoder_for_whole_pixel_sizes(size, box, asked, monkeypatch):
    """The size handed to PIL's draft: whole pixels, the stored size divided by the reduction and floored. A
    fractional height (803 / 8 = 100.375) makes PIL's own scale pick (803 // 100.375 = 7) a smaller reduction."""
    from dogbreed.core.augment import TrainTransform, _CropPlan

    transform = TrainTransform(size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    monkeypatch.setattr(transform, "sample_box", lambda width, height: box)
    plan = _CropPlan(transform)
    answer = plan(Image.new("RGB", (1001, 803)))
    assert answer == asked and (answer is None or all(type(side) is int for side in answer))
    assert plan.full_size == (1001, 803) and plan.box == box


def test_by_default_the_crop_area_range_is_torchvisions_whatever_the_image_size():
    """No short-side floor unless asked (``min_side`` 0): a 1000 px and a 40 px image draw from the same range."""
    transform = TrainTransform(224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert transform.min_side == 0.0 and transform.ratio == (3 / 4, 4 / 3) and transform.flip_p == 0.5
    assert transform.crop_scale_for(1000, 1000) == (0.08, 1.0) and transform.crop_scale_for(40, 60) == (0.08, 1.0)
