"""image_logits with nothing to score: an empty split gives (0, classes) logits and no labels, so every metric
downstream sees zero images rather than a phantom row."""

from __future__ import annotations

from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.training.evaluation import image_logits


def test_an_empty_split_has_zero_rows_of_logits():
    split = image_logits(build_resnet50(5), [], pre=Preprocessing(image_size=32), tta="none", batch_size=4)
    assert tuple(split.logits.shape) == (0, 5) and tuple(split.labels.shape) == (0,)


def test_the_tta_report_times_the_first_16_test_images_and_scores_the_whole_split(tmp_path):
    from types import SimpleNamespace

    import torch

    from dogbreed.training.evaluation import _tta_report
    from dogbreed.training.serving_fit import SplitLogits
    from tests.helpers.builders import save_image

    torch.manual_seed(0)
    net = build_resnet50(3).eval()
    samples = [(save_image(tmp_path / f"{i}.png", size=(40, 36), color=(12 * i, 200 - 9 * i, 90)), i % 3)
               for i in range(20)]
    images = SimpleNamespace(datasets={"test": SimpleNamespace(samples=samples)},
                             preprocessing=Preprocessing(image_size=32), num_workers=0)
    with_tta = SplitLogits(torch.eye(3)[[i % 3 for i in range(20)]], torch.tensor([i % 3 for i in range(20)]))
    report = _tta_report("flip", images, SimpleNamespace(), net, with_tta, batch_size=8)
    plain = image_logits(net, [p for p, _ in samples], [label for _, label in samples],
                         pre=Preprocessing(image_size=32), tta="none", batch_size=8)
    assert (report["mode"], report["views"], report["cost_measured_on_images"]) == ("flip", 2, 16)
    assert report["test_acc"] == 1.0 and report["test_acc_without_tta"] == plain.accuracy
    assert report["forward_cost_ratio"] == report["forward_seconds_per_image"] / report[
        "forward_seconds_per_image_without_tta"]
    assert all(report[k] > 0 for k in ("end_to_end_seconds_per_image", "end_to_end_seconds_per_image_without_tta",
                                       "forward_seconds_per_image", "forward_seconds_per_image_without_tta"))


def test_the_non_dog_sets_are_sized_to_validation_between_the_check_minimum_and_the_generated_maximum():
    from dogbreed.training.evaluation import ood_set_size

    # below 20 validation images abstention cannot be checked at all: no non-dog images are made
    assert [ood_set_size(n) for n in (0, 19)] == [0, 0]
    # from 20 on, as many as validation images, at most the 32 generated per set
    assert [ood_set_size(n) for n in (20, 21, 31, 32, 33, 5000)] == [20, 21, 31, 32, 32, 32]
