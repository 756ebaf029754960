"""Fast decoding stays within a stated tolerance of the plain torchvision path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from bench.benchlib import draw_photo_like
from dogbreed.core.images import open_image
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing, ToNormalizedTensor, build_eval_transform, decode_eval_image
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.serving.artifact import ModelConfig
from dogbreed.serving.predictor import Predictor

# Mean |difference| of normalised tensors (std units; 0.01 is ~0.6 grey levels of 255).
DRAFT_MEAN_ABS_BOUND = 0.01
PRE = Preprocessing(image_size=224)


def _plain_eval(pre: Preprocessing) -> T.Compose:
    return T.Compose([T.Resize(pre.resize_size, antialias=True), T.CenterCrop(pre.image_size),
                      T.ToTensor(), T.Normalize(pre.mean, pre.std)])


@pytest.fixture(scope="module")
def large_jpegs(tmp_path_factory) -> list[Path]:
    """Photo-like JPEGs much larger than the 232px eval resize (draft mode kicks in)."""
    root = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(3)
    paths = []
    for i, size in enumerate([(1600, 1200), (1200, 1600), (1024, 768), (800, 600), (640, 480), (1333, 1000)]):
        path = root / f"{i}.jpg"
        draw_photo_like(i % 5, 5, size, rng).save(path, quality=90)
        paths.append(path)
    return paths


def test_numpy_normalisation_equals_totensor_normalize():
    array = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image = Image.fromarray(array, "RGB")
    expected = T.Normalize(PRE.mean, PRE.std)(T.ToTensor()(image))
    ours = ToNormalizedTensor(PRE.mean, PRE.std)(image)
    assert ours.dtype == torch.float32 and ours.shape == (3, 37, 53) and ours.is_contiguous()
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_draft_decoding_reduces_large_jpegs_but_not_below_twice_the_resize(large_jpegs):
    for path in large_jpegs:
        full, drafted = open_image(path), decode_eval_image(path, PRE)
        assert min(drafted.size) >= 2 * PRE.resize_size
        if min(full.size) >= 4 * PRE.resize_size:
            assert drafted.size[0] < full.size[0]


def test_draft_decoding_stays_within_tolerance_of_the_plain_path(large_jpegs):
    plain, ours = _plain_eval(PRE), build_eval_transform(PRE)
    diffs = []
    for path in large_jpegs:
        reference = plain(Image.open(path).convert("RGB"))
        fast = ours(decode_eval_image(path, PRE))
        assert fast.shape == reference.shape
        diffs.append((fast - reference).abs().mean().item())
    assert max(diffs) < DRAFT_MEAN_ABS_BOUND, diffs
    assert any(d > 0 for d in diffs)  # draft mode really ran on the large ones


def test_training_eval_and_serving_tensors_are_equal_on_large_jpegs(large_jpegs, tmp_path):
    tree = tmp_path / "data"
    for split in ("train", "valid"):
        for index, path in enumerate(large_jpegs[:4]):  # two breeds: a classifier needs at least 2 classes
            breed = ("001.A", "002.B")[index % 2]
            (tree / split / breed).mkdir(parents=True, exist_ok=True)
            (tree / split / breed / path.name).write_bytes(path.read_bytes())
    # the same photos in train and valid on purpose (one transform each): not a leak to refuse here
    dm = DogBreedDataModule(SplitDirs.from_data_dir(tree), preprocessing=PRE, allow_duplicates=True)
    dm.setup()
    config = ModelConfig(class_names=["A", "B"], preprocessing=PRE)
    predictor = Predictor(build_resnet50(2), config, torch.device("cpu"))
    for index, (path, _) in enumerate(dm.datasets["valid"].samples):
        from_training = dm.datasets["valid"][index][0]
        assert torch.equal(from_training, predictor.preprocess([path])[0])
        assert torch.equal(from_training, predictor.preprocess([path.read_bytes()])[0])
