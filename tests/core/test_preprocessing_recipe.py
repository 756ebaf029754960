"""The preprocessing recipe and class-name parsing against values written out here (never imported from the
code under test): torchvision's ResNet50 IMAGENET1K_V2 eval recipe is resize 232 -> centre-crop 224 with the
ImageNet mean/std; training is a random-resized crop and a horizontal flip with the same normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from dogbreed.core.transforms import (
    Preprocessing,
    build_eval_transform,
    build_train_transform,
    center_crop,
    resize_short_side,
)
from dogbreed.data.splits import display_name, list_class_dirs

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def photo(width: int = 300, height: int = 200, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (height // 10 + 1, width // 10 + 1, 3), dtype=np.uint8)
    return Image.fromarray(smooth).resize((width, height), Image.BILINEAR)


def reference_eval(resize: int, crop: int) -> T.Compose:
    return T.Compose([T.Resize(resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                      T.CenterCrop(crop), T.ToTensor(), T.Normalize(MEAN, STD)])


def test_default_preprocessing_written_out():
    assert Preprocessing().to_dict() == {"image_size": 224, "resize_size": 232, "mean": MEAN, "std": STD,
                                         "interpolation": "bilinear", "crop_scale": (0.08, 1.0), "augment": "default",
                                         "crop_min_side": 0.0, "random_erasing": 0.0}


@pytest.mark.parametrize("image_size, resize", [(224, 232), (64, 66), (48, 50), (32, 33)])
def test_eval_transform_is_resize_then_centre_crop_then_imagenet_normalisation(image_size, resize):
    image = photo()
    ours = build_eval_transform(Preprocessing(image_size=image_size))(image)
    expected = reference_eval(resize, image_size)(image)
    assert ours.shape == (3, image_size, image_size)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("interpolation", ["nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming",
                                           "lanczos"])
@pytest.mark.parametrize("width, height", [(300, 200), (199, 301), (33, 33), (41, 40), (20, 90)])
def test_pil_resize_and_centre_crop_are_torchvisions_pixel_for_pixel(interpolation, width, height):
    """Serving resizes and crops without torchvision: the same pixels as T.Resize + T.CenterCrop on a PIL image,
    for every interpolation the schema allows, odd offsets, an image already the size, and crops larger than the
    resized image (torchvision pads with zeros)."""
    image = photo(width, height, seed=width)
    for size, crop in [(33, 32), (37, 37), (32, 40), (50, 45)]:
        mode = T.InterpolationMode(interpolation)
        expected = T.CenterCrop(crop)(T.Resize(size, interpolation=mode, antialias=True)(image))
        ours = center_crop(resize_short_side(image, size, interpolation), crop)
        assert ours.size == expected.size == (crop, crop)
        assert np.array_equal(np.asarray(ours), np.asarray(expected)), (size, crop)


def test_centre_crop_pads_odd_differences_on_the_right_and_bottom():
    image = Image.new("RGB", (3, 2), (255, 255, 255))
    out = np.asarray(center_crop(image, 6))[..., 0]
    # width 3 -> 6: 1 column of zeros on the left, 2 on the right; height 2 -> 6: 2 rows on top, 2 below
    assert out.tolist() == [[0] * 6] * 2 + [[0, 255, 255, 255, 0, 0]] * 2 + [[0] * 6] * 2


def test_eval_transform_of_a_flat_grey_image_is_minus_mean_over_std():
    out = build_eval_transform(Preprocessing(image_size=32))(Image.new("RGB", (40, 40), (0, 0, 0)))
    expected = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])  # [-2.1179, -2.0357, -1.8044]
    torch.testing.assert_close(out[:, 5, 7], expected, rtol=0, atol=1e-5)


def test_train_transform_is_random_resized_crop_flip_and_imagenet_normalisation():
    image = photo(seed=1)
    # torchvision's ImageNet recipe (crop area 8-100 %, flip, ImageNet mean/std), on uint8 tensors as the training
    # transform runs it (one conversion to float after the resize).
    reference = v2.Compose([v2.PILToTensor(),
                            v2.RandomResizedCrop(64, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BILINEAR,
                                                 antialias=True),
                            v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    ours = build_train_transform(Preprocessing(image_size=64))
    for seed in range(4):
        torch.manual_seed(seed)
        expected = reference(image)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours(image), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("folder, name", [
    ("133.Yorkshire_terrier", "Yorkshire terrier"),
    ("German_shepherd_dog", "German shepherd dog"),
    ("10 Boxer", "Boxer"),
    ("2_Pugs", "Pugs"),
    ("001.Affenpinscher ", "Affenpinscher"),
    ("Saint_Bernard-2", "Saint Bernard-2"),  # only a leading number is a prefix
    ("001.", "001."),  # nothing left after the prefix: the folder name stays
    ("007", "007"),  # digits without a separator are a name
])
def test_class_name_parsing(folder, name):
    assert display_name(folder) == name


def test_class_index_order_is_the_sorted_folder_order(tmp_path):
    for folder in ["010.Beagle", "002.Afghan_hound", "001.Affenpinscher", ".hidden", "100.Plott"]:
        (tmp_path / folder).mkdir()
    (tmp_path / "README.txt").write_text("not a class")
    assert list_class_dirs(tmp_path) == ["001.Affenpinscher", "002.Afghan_hound", "010.Beagle", "100.Plott"]
