"""image_logits with nothing to score: an empty split gives (0, classes) logits and no labels, so every metric
downstream sees zero images rather than a phantom row."""

from __future__ import annotations

import pytest

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


def test_cached_features_stand_in_for_images_only_without_tta(monkeypatch):
    from types import SimpleNamespace

    from dogbreed.training import evaluation

    calls: list = []
    monkeypatch.setattr(evaluation, "_feature_logits", lambda net, cached: calls.append(("features", cached)) or "F")
    monkeypatch.setattr(evaluation, "image_logits", lambda net, paths, labels, **kw: calls.append(
        ("images", paths, labels, kw["tta"])) or "I")
    images = SimpleNamespace(datasets={"valid": SimpleNamespace(samples=[("v0.jpg", 1), ("v1.jpg", 0)]),
                                       "test": SimpleNamespace(samples=[("t0.jpg", 2)])},
                             preprocessing=Preprocessing(image_size=32), num_workers=0)
    datamodule = SimpleNamespace(features={"valid": "cached valid"})
    assert evaluation._split_logits(images, datamodule, None, "valid", "none", 4) == "F"
    # TTA views need the images; a split the cache lacks (gradual: test) and an image-only run too
    assert evaluation._split_logits(images, datamodule, None, "valid", "flip", 4) == "I"
    assert evaluation._split_logits(images, datamodule, None, "test", "none", 4) == "I"
    assert evaluation._split_logits(images, SimpleNamespace(), None, "valid", "none", 4) == "I"
    assert calls == [("features", "cached valid"), ("images", ["v0.jpg", "v1.jpg"], [1, 0], "flip"),
                     ("images", ["t0.jpg"], [2], "none"), ("images", ["v0.jpg", "v1.jpg"], [1, 0], "none")]


def test_per_image_test_results_are_kept_only_in_a_single_process():
    from types import SimpleNamespace

    import pytest
    import torch

    from dogbreed.training.evaluation import collect_test_outcome

    confusion = torch.tensor([[1, 0], [1, 1]])
    model = SimpleNamespace(test_confusion=confusion, test_samples={"loss": torch.tensor([0.1, 0.2, 0.3])})
    images = SimpleNamespace(datasets={"test": SimpleNamespace(samples=[("a.jpg", 0), ("b.jpg", 1), ("c.jpg", 1)])})
    single = collect_test_outcome(SimpleNamespace(world_size=1), model, images)  # type: ignore[arg-type]
    assert single.confusion is confusion and single.samples is model.test_samples
    assert single.paths == ["a.jpg", "b.jpg", "c.jpg"]
    # DDP: each rank tested a shard, whose rows no longer line up with the split's paths
    sharded = collect_test_outcome(SimpleNamespace(world_size=2), model, images)  # type: ignore[arg-type]
    assert sharded.samples == {} and sharded.confusion is confusion
    with pytest.raises(RuntimeError, match=r"^trainer.test\(\) ran but produced no confusion matrix$"):
        collect_test_outcome(SimpleNamespace(world_size=1), SimpleNamespace(test_confusion=None), images)  # type: ignore[arg-type]


@pytest.mark.parametrize("argv, fitted, tta", [
    (["--calibrate", "False", "--abstention-score", "none"], False, False),  # nothing to do: no backbone pass
    (["--calibrate", "False", "--abstention-score", "none", "--tta", "flip"], True, True),  # TTA alone is measured
    (["--abstention-score", "none"], True, False),
    (["--calibrate", "False"], True, False),
])
def test_the_serving_fit_runs_when_any_of_calibration_abstention_or_tta_asks_for_it(monkeypatch, argv, fitted, tta):
    from types import SimpleNamespace

    import torch

    from dogbreed.config.parser import parse_config
    from dogbreed.training import evaluation
    from dogbreed.training.serving_fit import ServingFit, SplitLogits

    split = SplitLogits(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))  # 4 validation images: no non-dog set
    calls: list[str] = []
    monkeypatch.setattr(evaluation, "_split_logits", lambda images, dm, net, name, mode, batch: calls.append(
        f"{name} {mode}") or split)
    monkeypatch.setattr(evaluation, "image_logits", lambda net, sources, **kwargs: calls.append(
        f"non-dogs {len(sources)}") or SplitLogits(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
    monkeypatch.setattr(evaluation, "fit_serving", lambda *args, **kwargs: calls.append("fit") or ServingFit(report={}))
    monkeypatch.setattr(evaluation, "_tta_report", lambda mode, *args: calls.append(f"tta {mode}") or {"mode": mode})
    options = parse_config(argv).calibration
    images = SimpleNamespace(preprocessing=Preprocessing(image_size=32), num_workers=0)
    fit = evaluation.calibrate_run(options, images, SimpleNamespace(), None, batch_size=4, seed=0)  # type: ignore[arg-type]
    mode = options.tta
    served = [f"valid {mode}", f"test {mode}", "non-dogs 0", "non-dogs 0", "fit"]
    expected = (served if fitted else []) + ([f"tta {mode}"] if tta else [])
    assert calls == expected
    assert fit.report == ({"tta": {"mode": "flip"}} if tta else {})
