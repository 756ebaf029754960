"""The training augmentation: torchvision's recipe, crop drawn before decoding, JPEG draft decoding only where the
crop keeps at least the output size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from bench.benchlib import draw_photo_like
from dogbreed.core import augment
from dogbreed.core.augment import TrainTransform, jpeg_reduction, sample_crop_box
from dogbreed.core.images import open_image
from dogbreed.core.transforms import Preprocessing, build_train_transform
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs

PRE = Preprocessing(image_size=224)
SIZES = [(1600, 1200), (1200, 1600), (1024, 768), (800, 600), (640, 480), (1333, 1000)]


@pytest.fixture(scope="module")
def large_jpegs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    paths = []
    for i, size in enumerate(SIZES):
        path = root / f"{i}.jpg"
        draw_photo_like(i % 5, 5, size, rng).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.mark.parametrize("size,scale", [((500, 375), (0.08, 1.0)), ((375, 500), (0.25, 1.0)),
                                        ((64, 1000), (0.08, 1.0)), ((1000, 64), (0.5, 1.0)), ((33, 33), (0.9, 1.0)),
                                        # tiny images (boxes a pixel wide, or none drawn) and thin ones (the fallback)
                                        ((1, 1), (0.08, 1.0)), ((2, 3), (0.01, 0.2)), ((3, 2), (0.05, 0.5)),
                                        ((1, 5), (0.5, 1.0)), ((1000, 10), (0.9, 1.0)), ((10, 1000), (0.9, 1.0)),
                                        ((4, 3), (1.0, 1.0))])
def test_crop_box_is_torchvisions_for_the_same_seed(size, scale):
    width, height = size
    for seed in range(30):
        torch.manual_seed(seed)
        expected = T.RandomResizedCrop.get_params(torch.empty(0, height, width), list(scale), [3 / 4, 4 / 3])
        torch.manual_seed(seed)
        assert sample_crop_box(width, height, scale) == tuple(expected)


def test_transform_of_a_decoded_image_is_torchvisions_v2_recipe():
    array = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB")
    reference = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(64, scale=(0.2, 1.0), antialias=True),
                            v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(PRE.mean, PRE.std)])
    ours = build_train_transform(Preprocessing(image_size=64), scale=(0.2, 1.0))
    for seed in range(6):
        torch.manual_seed(seed)
        expected = reference(image)
        torch.manual_seed(seed)
        got = ours(image)
        assert got.shape == (3, 64, 64) and got.dtype == torch.float32 and got.is_contiguous()
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("crop,expected", [((447, 1000), 1), ((448, 448), 2), ((895, 2000), 2), ((896, 900), 4),
                                           ((1791, 1791), 4), ((1792, 1800), 8), ((5000, 5000), 8), ((100, 90), 1)])
def test_jpeg_reduction_keeps_at_least_the_output_size_both_ways(crop, expected):
    assert jpeg_reduction(*crop, 224) == expected


def _decoded_sizes(monkeypatch) -> list[tuple[tuple[int, int], tuple[int, int, int, int]]]:
    """Record (decoded size, crop box on it) of every load."""
    seen: list = []
    original = augment._CropPlan.box_on

    def spy(self, decoded):
        box = original(self, decoded)
        seen.append((decoded.size, box))
        return box

    monkeypatch.setattr(augment._CropPlan, "box_on", spy)
    return seen


def test_draft_decoding_reduces_large_crops_and_keeps_the_output_size(large_jpegs, monkeypatch):
    seen = _decoded_sizes(monkeypatch)
    transform = build_train_transform(PRE, scale=(0.5, 1.0))
    for seed in range(8):
        for path in large_jpegs:
            torch.manual_seed(seed)
            assert transform.load(path).shape == (3, 224, 224)
    reduced = [(size, box) for size, box in seen if size[0] < 640]
    assert reduced, "no crop was large enough to decode at a reduced scale"
    assert all(box[2] >= 224 and box[3] >= 224 for _, box in seen)  # never fewer pixels than the output needs


def test_small_crops_decode_at_full_size_and_equal_the_full_decode(large_jpegs):
    # Crops of 1-2% of the image are smaller than 2 x 224 px: no reduction is allowed, so the result is exact.
    transform = build_train_transform(PRE, scale=(0.01, 0.02))
    for seed, path in enumerate(large_jpegs):
        torch.manual_seed(seed)
        drafted = transform.load(path)
        torch.manual_seed(seed)
        assert torch.equal(drafted, transform(open_image(path)))


def test_draft_decoding_differs_from_the_full_decode_less_than_a_one_pixel_shift(large_jpegs):
    transform = build_train_transform(PRE, scale=(0.7, 1.0))  # on these sizes every crop is >= 2 x 224 px
    transform.flip_p = 0.0
    draft_diffs, shift_diffs = [], []
    for seed, path in enumerate(large_jpegs[:4]):
        full = open_image(path)
        torch.manual_seed(seed)
        drafted = transform.load(path)
        torch.manual_seed(seed)
        top, left, h, w = transform.sample_box(*full.size)
        pixels = augment._uint8_chw(full)
        exact = transform._finish(pixels, (top, left, h, w))
        shifted = transform._finish(pixels, (top - 1 if top else 1, left - 1 if left else 1, h, w))
        draft_diffs.append((drafted - exact).abs().mean().item())
        shift_diffs.append((shifted - exact).abs().mean().item())
    assert all(d > 0 for d in draft_diffs)  # every one of these was decoded at a reduced scale
    assert np.mean(draft_diffs) < np.mean(shift_diffs)  # what the crop sees moves less than with a 1-px shift
    assert max(draft_diffs) < 0.1  # normalised units (0.1 ~ 6 grey levels of 255)


def test_exif_rotated_jpeg_is_cropped_in_its_displayed_orientation(tmp_path):
    # Displayed (after EXIF orientation 6, rotate 90 clockwise): 600 wide x 900 tall, left half red.
    displayed = np.zeros((900, 600, 3), dtype=np.uint8)
    displayed[:, :300] = (220, 20, 20)
    displayed[:, 300:] = (20, 20, 220)
    stored = Image.fromarray(displayed).transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: 900 x 600
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    assert open_image(path).size == (600, 900)
    transform = TrainTransform(32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), scale=(1.0, 1.0), ratio=(2 / 3, 2 / 3),
                               flip_p=0.0)
    out = transform.load(path)  # the whole displayed image: 600 / 900 is exactly the ratio 2/3
    assert out[0, :, :12].mean() > 0.8 and out[2, :, :12].mean() < 0.2  # red on the left
    assert out[2, :, 20:].mean() > 0.8 and out[0, :, 20:].mean() < 0.2  # blue on the right


def test_training_split_uses_the_drafting_transform_and_eval_splits_do_not(large_jpegs, tmp_path):
    tree = tmp_path / "data"
    for split in ("train", "valid", "test"):  # all three: a missing test split is carved out of train
        for breed, path in zip(("001.A", "002.B"), large_jpegs[:2]):  # a classifier needs at least 2 classes
            (tree / split / breed).mkdir(parents=True)
            (tree / split / breed / path.name).write_bytes(path.read_bytes())
    # the same photos in every split on purpose (one transform each): not a leak to refuse here
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tree), preprocessing=PRE, allow_duplicates=True)
    dm.setup()
    train = dm.datasets["train"]
    assert isinstance(train.transform, TrainTransform) and train.decode is None
    assert dm.datasets["valid"].decode is not None
    torch.manual_seed(0)
    image, label = train[0]
    assert image.shape == (3, 224, 224) and label == 0


def test_crop_scale_out_of_range_is_refused():
    with pytest.raises(ValueError) as refused:
        build_train_transform(PRE, scale=(0.5, 0.2))
    assert str(refused.value) == "crop scale must satisfy 0 < min <= max <= 1, got (0.5, 0.2)"


# --- the options on top of the recipe: small-image crops, policies, random erasing --------------------------------

def test_small_images_get_gentler_crops_and_large_ones_keep_the_recipe():
    transform = TrainTransform(32, mean=(0.5,) * 3, std=(0.5,) * 3, scale=(0.08, 1.0), min_side=0.5)
    assert transform.crop_scale_for(32, 32) == (0.25, 1.0)  # a crop keeps >= 16 px of a 32 px scan's side
    assert transform.crop_scale_for(40, 64) == pytest.approx((0.16, 1.0))  # (16 / 40) ** 2
    assert transform.crop_scale_for(500, 375) == (0.08, 1.0)  # large: the ImageNet recipe
    assert TrainTransform(224, mean=(0.5,) * 3, std=(0.5,) * 3, min_side=0.5).crop_scale_for(32, 32) == (1.0, 1.0)
    assert TrainTransform(32, mean=(0.5,) * 3, std=(0.5,) * 3, min_side=0.0).crop_scale_for(32, 32) == (0.08, 1.0)
    torch.manual_seed(0)
    boxes = [transform.sample_box(32, 32) for _ in range(200)]
    assert min(h * w for _, _, h, w in boxes) >= 0.25 * 32 * 32 * 0.9  # rounding of the drawn sides
    assert min(min(h, w) for _, _, h, w in boxes) >= 14


@pytest.mark.parametrize("policy, kind", [("trivialaugment", v2.TrivialAugmentWide), ("randaugment", v2.RandAugment)])
def test_augment_policies_are_torchvisions_and_change_the_crop(policy, kind):
    pre = Preprocessing(image_size=32, augment=policy)
    transform = build_train_transform(pre)
    assert isinstance(transform.policy, kind)
    plain = build_train_transform(Preprocessing(image_size=32))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    changed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        ours = transform(image)
        torch.manual_seed(seed)
        base = plain(image)
        changed += not torch.equal(ours, base)
    assert changed >= 3  # identity is one of the policy's ops; most draws change the pixels


def test_random_erasing_blanks_a_patch_to_the_mean_and_none_is_the_eval_view():
    pre = Preprocessing(image_size=32, random_erasing=1.0)
    out = build_train_transform(pre)(Image.new("RGB", (40, 40), (250, 10, 10)))
    zero_pixels = int((out == 0).all(dim=0).sum())
    assert 0.02 * 32 * 32 <= zero_pixels <= 0.33 * 32 * 32 + 32  # RandomErasing's default area range, value 0
    none = build_train_transform(Preprocessing(image_size=32, augment="none"))
    assert not isinstance(none, TrainTransform)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    assert torch.equal(none(image), none(image))  # deterministic: resize and centre crop
    with pytest.raises(ValueError) as refused:
        Preprocessing(image_size=32, augment="autoaugment")
    assert str(refused.value) == ("augment must be one of none, default, trivialaugment, randaugment, got "
                                  "'autoaugment'")


def test_training_only_fields_stay_out_of_the_eval_record():
    pre = Preprocessing(image_size=32, crop_min_side=0.5, augment="randaugment", random_erasing=0.25)
    assert set(pre.to_dict()) - set(pre.eval_dict()) == {"crop_scale", "crop_min_side", "augment", "random_erasing"}
    assert Preprocessing.from_dict(pre.to_dict()) == pre
