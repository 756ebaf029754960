"""Test-time augmentation: exact views, logit averaging, and the artifact's mode at serving."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import functional as TF

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing, build_eval_transform
from dogbreed.core.tta import average_views, build_tta_transform, canvas_size, tta_logits, tta_views
from dogbreed.serving.artifact import ModelConfig, save_artifact
from dogbreed.serving.predictor import Predictor
from tests.helpers.builders import save_image


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_resnet50(4).eval()


def test_flip_tta_equals_the_mean_of_the_flipped_and_unflipped_forward(net):
    torch.manual_seed(1)
    batch = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = (net(batch) + net(batch.flip(-1))) / 2
        got = tta_logits(net, batch, "flip", 32)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, net(batch), atol=1e-4)  # the mirror really changed something


@pytest.mark.parametrize("height, width", [(40, 40), (37, 37), (40, 45), (33, 32)])
def test_all_twenty_tencrop_views_equal_torchvisions_ten_crop_image_by_image(height, width):
    """Every view, in torchvision's order (4 corners, centre, then the same of the mirror), odd offsets included."""
    torch.manual_seed(height * width)
    batch = torch.randn(2, 3, height, width)
    views = tta_views(batch, "tencrop", 32)
    expected = torch.cat([torch.stack(TF.ten_crop(image, [32, 32])) for image in batch])
    assert views.shape == expected.shape == (20, 3, 32, 32)
    assert torch.equal(views, expected)


def test_a_canvas_smaller_than_the_crop_is_refused():
    with pytest.raises(ValueError) as refused:
        tta_views(torch.zeros(1, 3, 31, 40), "tencrop", 32)
    assert str(refused.value) == "crop size 32 is bigger than the canvas (31x40)"


def test_tencrop_views_are_torchvision_ten_crops_of_each_canvas(net):
    batch = torch.randn(2, 3, 40, 40)
    views = tta_views(batch, "tencrop", 32)
    assert views.shape == (20, 3, 32, 32)
    assert torch.equal(views[10 + 4], TF.center_crop(batch[1], [32, 32]))  # image 1, view 4 = centre
    assert torch.equal(views[5], TF.crop(TF.hflip(batch[0]), 0, 0, 32, 32))  # image 0, view 5: top-left of the mirror
    logits = torch.arange(20 * 2, dtype=torch.float32).reshape(20, 2)
    assert torch.equal(average_views(logits, 10), torch.stack([logits[:10].mean(0), logits[10:].mean(0)]))


def test_none_and_flip_preprocess_exactly_like_evaluation(tmp_path):
    pre = Preprocessing(image_size=32)
    image = save_image(tmp_path / "a.png", size=(70, 45), color=(10, 200, 90))
    from PIL import Image

    with Image.open(image) as opened:
        rgb = opened.convert("RGB")
        for mode in ("none", "flip"):
            assert torch.equal(build_tta_transform(pre, mode)(rgb), build_eval_transform(pre)(rgb))
        assert build_tta_transform(pre, "tencrop")(rgb).shape == (3, canvas_size(pre, "tencrop"),
                                                                   canvas_size(pre, "tencrop"))
    assert canvas_size(pre, "tencrop") == round(32 * 256 / 224) == 37


def test_the_artifact_tta_mode_is_applied_when_serving(net, tmp_path):
    config = ModelConfig(class_names=["a", "b", "c", "d"], preprocessing=Preprocessing(image_size=32), tta="flip",
                         temperature=2.0)
    model_dir = save_artifact(tmp_path / "model", net, config)
    predictor = Predictor.from_model_dir(model_dir, device="cpu")
    assert predictor.tta == "flip"
    image = save_image(tmp_path / "b.jpg", size=(48, 36), color=(120, 30, 220), fmt="JPEG")
    batch = predictor.preprocess([image])
    with torch.no_grad():
        expected = torch.softmax((net(batch) + net(batch.flip(-1))) / 2 / 2.0, dim=1)
    assert torch.allclose(predictor.predict_proba(batch), expected, atol=1e-6)
    plain = Predictor.from_model_dir(model_dir, device="cpu", tta="none")  # an explicit override wins
    with torch.no_grad():
        assert torch.allclose(plain.predict_proba(batch), torch.softmax(net(batch) / 2.0, dim=1), atol=1e-6)
