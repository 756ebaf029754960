import pytest
import torch
from PIL import Image

from dogbreed.core.transforms import Preprocessing, build_eval_transform, build_train_transform, eval_resize_size

# Written out, not imported: torchvision's ResNet50 IMAGENET1K_V2 recipe (resize 232, centre-crop 224).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.mark.parametrize("size,resize", [(224, 232), (64, 66), (32, 33), (384, 398)])
def test_eval_resize_follows_the_232_over_224_recipe(size, resize):
    assert eval_resize_size(size) == resize
    assert Preprocessing(image_size=size).resize_size == resize


def test_default_preprocessing_is_imagenet():
    pre = Preprocessing()
    assert (pre.image_size, pre.resize_size, pre.mean, pre.std) == (224, 232, IMAGENET_MEAN, IMAGENET_STD)


def _photo(width=300, height=200) -> Image.Image:
    gradient = torch.linspace(0, 255, width).repeat(height, 1)
    array = torch.stack([gradient, gradient.flip(1), torch.full_like(gradient, 90)], dim=2).byte().numpy()
    return Image.fromarray(array, "RGB")


def test_eval_preprocessing_is_deterministic_and_sized():
    transform = build_eval_transform(Preprocessing(image_size=64))
    first, second = transform(_photo()), transform(_photo())
    assert first.shape == (3, 64, 64) and torch.equal(first, second)


def test_eval_preprocessing_normalises_with_imagenet_stats():
    out = build_eval_transform(Preprocessing(image_size=32))(Image.new("RGB", (50, 40), (255, 0, 0)))
    expected = [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]  # pure red, normalised: [2.2489, -2.0357, -1.8044]
    assert out.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-4)


def test_image_size_changes_train_and_eval_alike():
    pre = Preprocessing(image_size=96)
    assert build_train_transform(pre)(_photo()).shape == (3, 96, 96)
    assert build_eval_transform(pre)(_photo(500, 120)).shape == (3, 96, 96)


def test_train_preprocessing_is_random():
    transform = build_train_transform(Preprocessing(image_size=64))
    torch.manual_seed(0)
    outputs = [transform(_photo()) for _ in range(4)]
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])


def test_preprocessing_round_trips_through_a_dict():
    pre = Preprocessing(image_size=128)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
