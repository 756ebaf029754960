"""dogbreed.core.augment, third pass (hand-written semantic mutants that the suite let through): the raised crop
floor capped by the configured largest crop, each option reaching its consumer (flip probability, the policy's
interpolation, a fractional random-erasing probability), the refused "none" policy, and which decoded sizes count
as the header's image at a DCT scale."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode

from dogbreed.core.augment import TrainTransform, _same_shape

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def test_the_short_side_floor_never_rises_above_the_largest_configured_crop():
    """min_side asks for the whole 32 px image (1.0), but scale caps the crop at half its area: (0.5, 0.5), never a
    range whose low end is above its high end (torch's uniform_ would then draw outside the asked range)."""
    transform = TrainTransform(32, mean=MEAN, std=STD, scale=(0.08, 0.5), min_side=1.0)
    assert transform.crop_scale_for(32, 32) == (0.5, 0.5)
    # a floor below the cap is kept as computed: (0.25 * 32 / 32) ** 2 = 0.0625 < 0.08, (0.5 * 32 / 32) ** 2 = 0.25
    assert TrainTransform(32, mean=MEAN, std=STD, scale=(0.08, 0.5), min_side=0.25).crop_scale_for(32, 32) == (
        0.08, 0.5)
    assert TrainTransform(32, mean=MEAN, std=STD, scale=(0.08, 0.5), min_side=0.5).crop_scale_for(32, 32) == (
        0.25, 0.5)


def _left_black_right_white() -> Image.Image:
    image = Image.new("RGB", (16, 16), (0, 0, 0))
    image.paste((255, 255, 255), (8, 0, 16, 16))
    return image


@pytest.mark.parametrize("flip_p, flipped", [(0.0, False), (1.0, True)])
def test_the_flip_probability_reaches_the_flip(flip_p, flipped):
    """The whole image (scale and ratio 1) every time: with flip_p 0 the white half stays right, with 1 it is
    always left; a fixed coin of 0.5 would mix the two over 20 draws."""
    transform = TrainTransform(8, mean=MEAN, std=STD, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=flip_p)
    for seed in range(20):
        torch.manual_seed(seed)
        out = transform(_left_black_right_white())
        left, right = out[0, 0, 0].item(), out[0, 0, -1].item()  # (0 - 0.5) / 0.5 = -1, (1 - 0.5) / 0.5 = 1
        assert (left, right) == ((1.0, -1.0) if flipped else (-1.0, 1.0)), seed


@pytest.mark.parametrize("policy", ["trivialaugment", "randaugment"])
@pytest.mark.parametrize("interpolation, mode", [("bilinear", InterpolationMode.BILINEAR),
                                                  ("bicubic", InterpolationMode.BICUBIC)])
def test_the_policy_rotates_and_shears_with_the_configured_interpolation(policy, interpolation, mode):
    """torchvision's policies default to NEAREST; the transform hands them its own interpolation."""
    transform = TrainTransform(32, mean=MEAN, std=STD, policy=policy, interpolation=interpolation)
    assert transform.policy.interpolation == mode
    assert transform.interpolation == mode


def test_a_small_random_erasing_probability_is_kept_not_rounded_up_to_always():
    """--random-erasing 0.25 erases about a quarter of the crops: RandomErasing gets p = 0.25 and value 0 (the mean
    after normalising); a p of 1e-9 erases nothing in 30 draws of a white image, where p = 1 would every time."""
    transform = TrainTransform(16, mean=MEAN, std=STD, erasing=0.25)
    assert (transform.erasing.p, transform.erasing.value) == (0.25, [0.0])
    rare = TrainTransform(16, mean=MEAN, std=STD, erasing=1e-9)
    for seed in range(30):
        torch.manual_seed(seed)
        out = rare(Image.new("RGB", (20, 20), (255, 255, 255)))
        assert torch.equal(out, torch.ones(3, 16, 16)), seed  # (1 - 0.5) / 0.5 everywhere: nothing erased
    assert TrainTransform(16, mean=MEAN, std=STD).erasing is None


def test_policy_none_is_refused_by_the_training_transform():
    """"none" is the eval view (resize and centre crop), built elsewhere: TrainTransform refuses it by name."""
    with pytest.raises(ValueError) as refused:
        TrainTransform(32, mean=MEAN, std=STD, policy="none")
    assert str(refused.value) == "policy must be one of ('default', 'trivialaugment', 'randaugment'), got 'none'"


@pytest.mark.parametrize("decoded, same", [
    ((1001, 803), True),  # full scale
    ((501, 402), True), ((251, 201), True), ((126, 101), True),  # 1/2, 1/4, 1/8: sides rounded up, as libjpeg does
    ((500, 401), False), ((250, 200), False), ((125, 100), False),  # rounded down: not a DCT scale of this image
    ((803, 1001), False),  # transposed: the decoder oriented it otherwise than the header said
])
def test_which_decoded_sizes_are_the_header_image_at_a_dct_scale(decoded, same):
    assert _same_shape(decoded, (1001, 803)) is same


def test_the_draft_size_of_an_exif_rotated_jpeg_is_in_its_stored_orientation(monkeypatch):
    """The crop is drawn on the displayed (oriented) image, but the decoder's draft is asked in the stored frame:
    an 800 x 400 JPEG shown as 400 x 800 (orientation 6) with a crop keeping 8 x 16 px both ways is drafted at
    (800 // 8, 400 // 8) = (100, 50). The oriented frame's (50, 100) makes PIL pick 1/4 instead (400 // 100)."""
    import io

    from dogbreed.core.augment import _CropPlan

    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (800, 400)).save(buffer, format="JPEG", exif=exif.tobytes())
    buffer.seek(0)
    transform = TrainTransform(16, mean=MEAN, std=STD)
    monkeypatch.setattr(transform, "sample_box", lambda width, height: (0, 0, 400, 400))
    plan = _CropPlan(transform)
    assert plan(Image.open(buffer)) == (100, 50)
    assert plan.full_size == (400, 800)  # the box is drawn on the displayed frame


def test_a_uint8_tensor_is_cropped_in_its_own_width_and_height():
    """A CHW tensor's width is its last dimension: a 60 x 20 (wide) tensor gets the same crops as the same pixels
    as a PIL image, seed for seed (width and height swapped would draw boxes for a 20 x 60 image)."""
    import numpy as np

    array = np.random.default_rng(5).integers(0, 256, (20, 60, 3), dtype=np.uint8)
    transform = TrainTransform(8, mean=MEAN, std=STD, scale=(0.2, 0.6))
    for seed in range(10):
        torch.manual_seed(seed)
        from_pil = transform(Image.fromarray(array, "RGB"))
        torch.manual_seed(seed)
        from_tensor = transform(torch.from_numpy(array).permute(2, 0, 1).contiguous())
        assert torch.allclose(from_pil, from_tensor, atol=1e-5), seed


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_the_configured_interpolation_reaches_the_resize(interpolation):
    """A 1 px black-and-white checkerboard halved: nearest keeps whole pixels (every value -1 or 1 after
    normalising), bilinear (antialiased) averages each 2 x 2 block to grey (0.5 -> 0)."""
    board = Image.fromarray(((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 255).to(torch.uint8)
                            .numpy()).convert("RGB")
    transform = TrainTransform(8, mean=MEAN, std=STD, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0,
                               interpolation=interpolation)
    torch.manual_seed(0)
    out = transform(board)
    if interpolation == "nearest":
        assert set(out.unique().tolist()) <= {-1.0, 1.0}
    else:
        assert out.abs().max().item() < 0.05
