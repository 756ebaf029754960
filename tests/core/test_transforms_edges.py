"""dogbreed.core.transforms at its edges: each refusal's message at its boundary, the derived sizes, the lists
that decide what evaluation sees, and the resize/crop shortcuts, written out (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dogbreed.core.transforms import (
    DRAFT_OVERSAMPLE,
    PIL_FILTERS,
    TRAINING_ONLY_FIELDS,
    EvalTransform,
    Preprocessing,
    ToNormalizedTensor,
    build_eval_transform,
    build_train_transform,
    center_crop,
    resize_short_side,
)


def test_the_lists_are_pinned():
    assert TRAINING_ONLY_FIELDS == ("crop_scale", "crop_min_side", "augment", "random_erasing")
    assert DRAFT_OVERSAMPLE == 2
    assert PIL_FILTERS == {"nearest": Image.Resampling.NEAREST, "nearest-exact": Image.Resampling.NEAREST,
                           "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                           "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
                           "lanczos": Image.Resampling.LANCZOS}


def test_the_image_size_is_at_least_8():
    assert Preprocessing(image_size=8).resize_size == 8  # round(8 * 232 / 224) = round(8.29)
    with pytest.raises(ValueError) as refused:
        Preprocessing(image_size=7)
    assert str(refused.value) == "image_size must be at least 8, got 7"


def test_the_resize_size_is_derived_only_when_not_given():
    assert Preprocessing(image_size=224).resize_size == 232
    assert Preprocessing(image_size=64).resize_size == 66  # round(66.29)
    assert Preprocessing(image_size=64, resize_size=80).resize_size == 80


@pytest.mark.parametrize("scale", [(0.0, 1.0), (0.5, 0.4), (0.1, 1.01), (-0.1, 0.5)])
def test_a_bad_crop_scale_is_refused(scale):
    with pytest.raises(ValueError) as refused:
        Preprocessing(crop_scale=scale)
    assert str(refused.value) == f"crop_scale must satisfy 0 < low <= high <= 1, got {scale}"


@pytest.mark.parametrize(("scale", "kept"), [([1, 1], (1.0, 1.0)), ((0.5, 0.5), (0.5, 0.5)),
                                             ((1e-6, 1.0), (1e-6, 1.0))])
def test_crop_scales_at_the_bounds_are_kept_as_float_tuples(scale, kept):
    made = Preprocessing(crop_scale=scale).crop_scale
    assert made == kept and isinstance(made, tuple) and all(type(v) is float for v in made)


def test_an_unknown_augmentation_is_refused_naming_the_choices():
    with pytest.raises(ValueError) as refused:
        Preprocessing(augment="auto")
    assert str(refused.value) == ("augment must be one of none, default, trivialaugment, randaugment, "
                                  "got 'auto'")


def test_mean_and_std_become_float_tuples():
    pre = Preprocessing(mean=[1, 2, 3], std=np.array([4, 5, 6]))
    assert pre.mean == (1.0, 2.0, 3.0) and pre.std == (4.0, 5.0, 6.0)
    assert all(type(v) is float for v in pre.mean + pre.std)


def test_evaluation_sees_every_field_but_the_training_ones_and_from_dict_ignores_the_rest():
    pre = Preprocessing(image_size=32, crop_scale=(0.5, 1.0), crop_min_side=0.5, augment="randaugment",
                        random_erasing=0.25, interpolation="bicubic")
    assert pre.eval_dict() == {"image_size": 32, "resize_size": 33, "mean": (0.485, 0.456, 0.406),
                               "std": (0.229, 0.224, 0.225), "interpolation": "bicubic"}
    assert Preprocessing.from_dict({**pre.to_dict(), "unknown": 1}) == pre
    assert Preprocessing.from_dict({"image_size": 48}) == Preprocessing(image_size=48)


def test_the_draft_size_is_twice_the_resize_size():
    assert Preprocessing(image_size=224).draft_size == (464, 464)
    assert Preprocessing(image_size=32).draft_size == (66, 66)


@pytest.mark.parametrize(("size", "image_size", "expected"), [((100, 50), 20, (40, 20)), ((30, 70), 20, (20, 46)),
                                                             ((70, 30), 20, (46, 20)), ((40, 40), 10, (10, 10))])
def test_the_short_side_becomes_the_size_and_the_long_side_is_truncated(size, image_size, expected):
    assert resize_short_side(Image.new("RGB", size), image_size).size == expected


def test_an_image_already_at_size_is_returned_as_it_is():
    image = Image.new("RGB", (50, 80))
    assert resize_short_side(image, 50) is image
    square = Image.new("RGB", (16, 16))
    assert center_crop(square, 16) is square
    assert center_crop(Image.new("RGB", (16, 17)), 16).size == (16, 16)


def test_the_crop_offsets_round_half_to_even():
    image = Image.fromarray(np.arange(7 * 7, dtype=np.uint8).reshape(7, 7))
    # (7 - 4) / 2 = 1.5 -> 2 (half to even); rows and columns 2..5
    assert np.asarray(center_crop(image, 4)).tolist() == np.arange(49).reshape(7, 7)[2:6, 2:6].tolist()
    wide = Image.fromarray(np.arange(5 * 10, dtype=np.uint8).reshape(5, 10))
    # width: (10 - 3) / 2 = 3.5 -> 4; height: (5 - 3) / 2 = 1
    assert np.asarray(center_crop(wide, 3)).tolist() == np.arange(50).reshape(5, 10)[1:4, 4:7].tolist()


def test_a_grey_image_is_repeated_over_the_channels_and_normalised():
    to_tensor = ToNormalizedTensor((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    out = to_tensor(Image.new("L", (2, 3), 51))  # 51 / 255 = 0.2
    assert out.shape == (3, 3, 2) and out.dtype == torch.float32
    assert out[:, 0, 0].tolist() == pytest.approx([(0.2 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, 0.2], abs=1e-6)


def test_the_eval_transform_uses_the_preprocessing_sizes_and_interpolation():
    pre = Preprocessing(image_size=16, resize_size=20, interpolation="nearest")
    made = build_eval_transform(pre)
    assert isinstance(made, EvalTransform)
    assert (made.resize_size, made.crop_size, made.interpolation) == (20, 16, "nearest")
    assert made(Image.new("RGB", (50, 30))).shape == (3, 16, 16)


def test_the_train_transform_takes_every_training_field():
    pre = Preprocessing(image_size=24, crop_scale=(0.3, 0.9), crop_min_side=0.5, augment="trivialaugment",
                        random_erasing=0.25, interpolation="bicubic", mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    made = build_train_transform(pre)
    assert (made.size, made.scale, made.min_side, made.policy_name, made.erasing_p) == (
        24, (0.3, 0.9), 0.5, "trivialaugment", 0.25)
    assert made.interpolation.value == "bicubic"
    assert made.mean.flatten().tolist() == pytest.approx([25.5, 51.0, 76.5])
    assert build_train_transform(pre, scale=(0.6, 1.0)).scale == (0.6, 1.0)
    assert isinstance(build_train_transform(Preprocessing(image_size=24, augment="none")), EvalTransform)


def test_an_image_smaller_than_the_crop_is_padded_left_top_by_the_floor_of_half():
    image = Image.fromarray(np.arange(1, 7, dtype=np.uint8).reshape(2, 3) * 10)  # 3 wide, 2 high
    # torchvision's CenterCrop(5): pad 1 left and 1 right (3 -> 5), 1 top and 2 bottom (2 -> 5: 3 // 2 = 1 on top)
    assert np.asarray(center_crop(image, 5)).tolist() == [[0, 0, 0, 0, 0], [0, 10, 20, 30, 0], [0, 40, 50, 60, 0],
                                                          [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]


def test_every_field_survives_the_dict_round_trip_and_the_preprocessing_is_immutable():
    import dataclasses

    pre = Preprocessing(image_size=40, resize_size=50, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
                        interpolation="bicubic", crop_scale=(0.3, 0.9), crop_min_side=0.25, augment="randaugment",
                        random_erasing=0.5)
    back = Preprocessing.from_dict(pre.to_dict())
    assert back == pre and back.resize_size == 50 and back.mean == (0.1, 0.2, 0.3) and back.std == (0.4, 0.5, 0.6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pre.image_size = 64  # type: ignore[misc]
