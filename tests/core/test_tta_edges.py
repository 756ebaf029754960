"""dogbreed.core.tta at its edges: the modes and view counts pinned, the refusal's message, the tencrop canvas
size, a crop exactly the canvas's size, identity averaging and the dtype of the averaged logits (issue 24)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from dogbreed.core.constants import TTA_MODES
from dogbreed.core.transforms import Preprocessing
from dogbreed.core.tta import (
    TENCROP_RESIZE_RATIO,
    VIEWS,
    average_views,
    build_tta_transform,
    canvas_size,
    check_tta_mode,
    ten_crop,
    tta_logits,
    tta_views,
    views_per_image,
)


def test_modes_and_view_counts_are_pinned():
    assert TTA_MODES == ("none", "flip", "tencrop")
    assert VIEWS == {"none": 1, "flip": 2, "tencrop": 10}
    assert [views_per_image(mode) for mode in ("none", "flip", "tencrop")] == [1, 2, 10]
    assert TENCROP_RESIZE_RATIO == 256 / 224


@pytest.mark.parametrize("mode", ["ten_crop", "Flip", "", None, 2])
def test_an_unknown_mode_is_refused_naming_the_choices(mode):
    with pytest.raises(ValueError) as refused:
        check_tta_mode(mode)
    assert str(refused.value) == f"tta must be one of none, flip, tencrop, got {mode!r}"
    with pytest.raises(ValueError) as refused:
        check_tta_mode("x", "--tta")
    assert str(refused.value) == "--tta must be one of none, flip, tencrop, got 'x'"
    with pytest.raises(ValueError) as refused:
        views_per_image(mode)  # type: ignore[arg-type]
    assert str(refused.value) == f"tta must be one of none, flip, tencrop, got {mode!r}"


def test_a_known_mode_comes_back_as_a_string():
    assert check_tta_mode("tencrop") == "tencrop"


@pytest.mark.parametrize(("image_size", "mode", "side"), [(224, "tencrop", 256), (64, "tencrop", 73),
                                                          (32, "tencrop", 37), (224, "flip", 224),
                                                          (64, "none", 64)])
def test_the_canvas_is_the_classic_256_224_scale_only_for_tencrop(image_size, mode, side):
    pre = Preprocessing(image_size=image_size)
    assert canvas_size(pre, mode) == side
    made = build_tta_transform(pre, mode)(Image.new("RGB", (300, 200), (120, 80, 40)))
    assert made.shape == (3, side, side)


def test_a_crop_the_size_of_the_canvas_is_every_view_of_it():
    batch = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    views = tta_views(batch, "tencrop", 4)
    assert views.shape == (20, 3, 4, 4)
    for image in range(2):
        for view in range(5):
            assert torch.equal(views[image * 10 + view], batch[image])
            assert torch.equal(views[image * 10 + 5 + view], batch[image].flip(-1))
    with pytest.raises(ValueError) as refused:
        tta_views(batch, "tencrop", 5)
    assert str(refused.value) == "crop size 5 is bigger than the canvas (4x4)"
    with pytest.raises(ValueError) as refused:
        tta_views(batch[..., :3], "tencrop", 4)
    assert str(refused.value) == "crop size 4 is bigger than the canvas (4x3)"


def test_none_returns_the_batch_and_flip_interleaves_the_mirror():
    batch = torch.arange(2 * 1 * 1 * 3, dtype=torch.float32).reshape(2, 1, 1, 3)  # rows [0 1 2], [3 4 5]
    assert tta_views(batch, "none", 1) is batch
    flipped = tta_views(batch, "flip", 1)
    assert flipped.reshape(4, 3).tolist() == [[0, 1, 2], [2, 1, 0], [3, 4, 5], [5, 4, 3]]


def test_average_views_of_one_view_is_the_identity_and_means_adjacent_rows_otherwise():
    logits = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 0.0], [7.0, 2.0]])
    assert average_views(logits, 1) is logits
    assert average_views(logits, 2).tolist() == [[2.0, 4.0], [6.0, 1.0]]
    assert average_views(logits, 4).tolist() == [[4.0, 2.5]]


def test_tta_logits_are_float32_even_from_a_reduced_precision_network():
    class Half(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.is_contiguous(memory_format=torch.channels_last)  # what the served network is given
            return x.mean(dim=(2, 3)).to(torch.bfloat16)

    batch = torch.ones(3, 2, 4, 4)
    out = tta_logits(Half(), batch, "flip", 4)
    assert out.dtype == torch.float32 and out.shape == (3, 2) and torch.equal(out, torch.ones(3, 2))


def test_ten_crop_takes_a_single_image_without_a_batch_dimension():
    from dogbreed.core.tta import ten_crop

    image = torch.arange(3 * 5 * 6, dtype=torch.float32).reshape(3, 5, 6)
    views = ten_crop(image, 4)
    assert len(views) == 10 and all(view.shape == (3, 4, 4) for view in views)
    assert torch.equal(views[0], image[:, :4, :4]) and torch.equal(views[3], image[:, 1:, 2:])
    assert torch.equal(views[4], image[:, 0:4, 1:5])  # centre: (5 - 4) / 2 = 0.5 -> 0, (6 - 4) / 2 = 1


def test_the_tencrop_centre_rounds_half_to_even_like_torchvision():
    """A 21 px crop of a 24 px canvas (image_size 21: canvas round(21 * 256 / 224) = 24): the centre is 1.5 px in,
    which torchvision's ``center_crop`` rounds to 2 (``int(round(1.5))``), not 1."""
    canvas = torch.arange(24 * 24, dtype=torch.float32).reshape(1, 1, 24, 24)
    views = ten_crop(canvas, 21)
    assert torch.equal(views[4], canvas[..., 2:23, 2:23])
    assert torch.equal(views[9], canvas.flip(-1)[..., 2:23, 2:23])
    assert torch.equal(views[3], canvas[..., 3:, 3:])  # bottom-right: the last 21 rows and columns
