"""Reports that still work at 133 breeds: a labelled confusion plot of the most-confused breeds,
most_confused.csv, the worst-predictions gallery, curves with top-5 and the learning rate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dogbreed.training.plots import confused_classes, worst_indices
from dogbreed.training.reports import TestOutcome, most_confused_pairs, write_reports

N_BREEDS = 133


def _names(n: int) -> list[str]:
    return [f"Breed number {i:03d} with a long name" for i in range(n)]


def _confusion_133() -> torch.Tensor:
    """10 test images per breed, all correct except: 4->7 six times, 7->4 twice, 100->3 once, 50->51 three."""
    confusion = torch.diag(torch.full((N_BREEDS,), 10, dtype=torch.long))
    for true, predicted, count in ((4, 7, 6), (7, 4, 2), (100, 3, 1), (50, 51, 3)):
        confusion[true, true] -= count
        confusion[true, predicted] += count
    return confusion


def _history() -> list[dict]:
    return [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 * e, "train_acc_top5": 0.5 + 0.1 * e,
             "val_loss": 2.2 / e, "val_acc": 0.28 * e, "val_acc_top5": 0.6 + 0.1 * e, "lr": 1e-3 / e}
            for e in (1, 2, 3)]


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _is_blank(path: Path) -> bool:
    return int(np.asarray(Image.open(path).convert("L")).std()) == 0


def test_most_confused_pairs_are_counted_and_shared_per_true_breed():
    assert most_confused_pairs(_confusion_133()) == [(4, 7, 6, 0.6), (50, 51, 3, 0.3), (7, 4, 2, 0.2),
                                                     (100, 3, 1, 0.1)]


def test_the_confusion_plot_keeps_the_most_confused_breeds():
    shown = confused_classes(_confusion_133(), limit=30)
    # mistakes as true + as predicted breed: 4 and 7: 8 each; 50 and 51: 3; 3 and 100: 1; then index order
    assert shown == [4, 7, 50, 51, 3, 100, 0, 1, 2, 5, 6, *range(8, 27)]
    assert confused_classes(torch.eye(5, dtype=torch.long), limit=30) == [0, 1, 2, 3, 4]


def test_worst_indices_sort_by_loss_then_index():
    assert worst_indices(torch.tensor([0.1, 2.0, 0.5, 2.0, 3.0]), limit=3) == [4, 1, 3]


def test_reports_at_133_breeds_are_readable(tmp_path):
    images = []
    for i in range(6):
        path = tmp_path / "imgs" / f"b{i:03d}" / f"{i}.png"
        path.parent.mkdir(parents=True)
        Image.new("RGB", (24, 18), (40 * i, 200 - 30 * i, 90)).save(path)
        images.append(path)
    samples = {"loss": torch.tensor([0.1, 3.2, 0.4, 2.5, 0.05, 1.0]),
               "target": torch.tensor([0, 4, 2, 7, 9, 50]), "predicted": torch.tensor([0, 7, 2, 4, 9, 51]),
               "predicted_probability": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, 0.4]),
               "target_probability": torch.tensor([0.9, 0.04, 0.7, 0.08, 0.95, 0.37])}
    test = {"loss": 0.3, "acc": 0.991, "acc_top5": 1.0, "f1_macro": 0.99}
    out = tmp_path / "reports"
    written = write_reports(out, _history(), test, TestOutcome(_confusion_133(), samples, images), _names(N_BREEDS),
                            timing={"fit_s": 1.5, "total_s": 2.0})
    assert [p.name for p in written] == ["metrics.json", "training_curves.png", "confusion_matrix.png",
                                         "per_class_accuracy.csv", "most_confused.csv", "worst_predictions.png"]
    width, height = _png_size(out / "confusion_matrix.png")
    assert 1000 <= width <= 1800 and 900 <= height <= 1600  # 30 labelled breeds, not a 4000 px wall
    rows = list(csv.reader((out / "most_confused.csv").open()))
    assert rows[0] == ["true", "predicted", "count", "share"]
    assert rows[1] == ["Breed number 004 with a long name", "Breed number 007 with a long name", "6", "0.6000"]
    assert len(rows) == 5
    per_class = list(csv.DictReader((out / "per_class_accuracy.csv").open()))
    assert len(per_class) == N_BREEDS and per_class[4]["accuracy"] == "0.4000"
    assert _png_size(out / "worst_predictions.png")[0] >= 1000  # a 4-column gallery
    assert _png_size(out / "training_curves.png") == (1500, 420)  # three panels: loss, accuracy, lr
    for name in ("confusion_matrix.png", "worst_predictions.png", "training_curves.png"):
        assert not _is_blank(out / name)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"] == test and metrics["timing"] == {"fit_s": 1.5, "total_s": 2.0}


def test_without_a_test_outcome_only_metrics_and_curves_are_written(tmp_path):
    written = write_reports(tmp_path / "r", _history(), {}, None, _names(3))
    assert [p.name for p in written] == ["metrics.json", "training_curves.png"]


@pytest.mark.slow
def test_a_real_run_on_133_generated_breeds_writes_every_report(tmp_path):
    """Head-only training (cached features) on 133 breeds of tiny images, with a seeded 'pretrained' file."""
    from dogbreed.core.network import build_resnet50
    from dogbreed.training.run import train
    from tests.helpers.builders import fast_config, write_tree

    breed_dirs = [f"{i:03d}.Breed_{i:03d}" for i in range(1, N_BREEDS + 1)]
    tree = write_tree(tmp_path / "data", {"train": 2, "valid": 1, "test": 1}, breed_dirs=breed_dirs)
    torch.manual_seed(0)
    weights = tmp_path / "backbone.pth"
    torch.save(build_resnet50(10).state_dict(), weights)
    config = fast_config(tmp_path, tree, finetune="head", weights=str(weights), epochs=2, batch_size=64,
                         image_size=32)
    result = train(config)
    reports = config.outputs.output_dir
    rows = list(csv.reader((reports / "most_confused.csv").open()))
    assert rows[0] == ["true", "predicted", "count", "share"] and len(rows) > 1
    assert all(r[0].startswith("Breed ") and r[1].startswith("Breed ") for r in rows[1:])
    total_mistakes = sum(int(r[2]) for r in rows[1:])
    assert total_mistakes == round((1 - result.test_metrics["acc"]) * N_BREEDS)
    assert _png_size(reports / "confusion_matrix.png")[0] <= 1800
    assert not _is_blank(reports / "worst_predictions.png")
    assert len(list(csv.DictReader((reports / "per_class_accuracy.csv").open()))) == N_BREEDS
