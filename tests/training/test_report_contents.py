"""Every report file of a training run parsed and checked: metrics.json, the per-class CSV and the plots, exact on
hand-made inputs and consistent with each other (and with model_config.json) after a real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dogbreed.training.reports import TestOutcome, write_reports
from tests.helpers.builders import BREED_DIRS
from tests.helpers.report_checks import check_plot, json_layout

HISTORY = [
    {"epoch": 1, "train_loss": 1.1, "train_acc": 0.4, "val_loss": 1.0, "val_acc": 0.5, "lr": 0.002},
    {"epoch": 2, "train_loss": 0.7, "train_acc": 0.7, "val_loss": 0.8, "val_acc": 0.625, "lr": 0.001},
]
TEST = {"loss": 0.75, "acc": 0.5, "acc_top5": 1.0, "f1_macro": 0.4}
CONFUSION = torch.tensor([[3, 1, 0, 0], [0, 2, 2, 0], [1, 0, 0, 0], [0, 0, 0, 0]])  # rows: true class
NAMES = ["Affenpinscher", "Afghan hound", "Airedale terrier", "Akita"]


def test_reports_from_hand_made_inputs_are_exact(tmp_path):
    paths = write_reports(tmp_path / "reports", HISTORY, TEST, TestOutcome(confusion=CONFUSION), NAMES)
    assert [p.name for p in paths] == ["metrics.json", "training_curves.png", "confusion_matrix.png",
                                       "per_class_accuracy.csv", "most_confused.csv"]
    assert json.loads((tmp_path / "reports" / "metrics.json").read_text()) == {"history": HISTORY, "test": TEST}
    assert json_layout((tmp_path / "reports" / "metrics.json").read_text()) == (2, True)  # for people to read
    assert (tmp_path / "reports" / "per_class_accuracy.csv").read_text().splitlines() == [
        "index,breed,correct,total,accuracy",
        "0,Affenpinscher,3,4,0.7500",
        "1,Afghan hound,2,4,0.5000",
        "2,Airedale terrier,0,1,0.0000",
        "3,Akita,0,0,nan",  # a class without test images
    ]
    # Off-diagonal cells, most frequent first; ties by the share of the true breed's test images.
    assert (tmp_path / "reports" / "most_confused.csv").read_text().splitlines() == [
        "true,predicted,count,share",
        "Afghan hound,Airedale terrier,2,0.5000",
        "Airedale terrier,Affenpinscher,1,1.0000",
        "Affenpinscher,Afghan hound,1,0.2500",
    ]
    check_plot(tmp_path / "reports" / "training_curves.png", (1500, 420))  # loss, accuracy, lr: 15 x 4.2 in
    check_plot(tmp_path / "reports" / "confusion_matrix.png", (650, 500))  # 5 in + 1.5 in for the colour bar


def test_confusion_plot_shows_the_row_normalised_matrix(tmp_path):
    write_reports(tmp_path, HISTORY, TEST, TestOutcome(confusion=torch.eye(3, dtype=torch.long) * 5), NAMES[:3])
    rgb = check_plot(tmp_path / "confusion_matrix.png", (650, 500))
    # A perfect diagonal: the darkest blue (1.0 on the Blues map, about (8, 48, 107)) is drawn.
    dark_blue = (rgb[..., 2] > 90) & (rgb[..., 0] < 30) & (rgb[..., 1] < 70)
    assert dark_blue.sum() > 1000


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_run_reports_agree_with_each_other_and_the_artifact(trained):
    config, result = trained
    reports = config.outputs.output_dir
    metrics = json.loads((reports / "metrics.json").read_text())
    assert set(metrics) == {"history", "test", "timing", "calibration", "abstention", "quality", "best"}
    assert metrics["timing"]["total_s"] >= metrics["timing"]["fit_s"] > 0
    assert [row["epoch"] for row in metrics["history"]] == list(range(1, config.optimisation.epochs + 1))
    per_stage = {"loss", "acc", "acc_top5", "f1_macro"}
    expected_keys = {"epoch", "lr"} | {f"{stage}_{name}" for stage in ("train", "val") for name in per_stage}
    assert all(set(row) == expected_keys for row in metrics["history"])
    assert metrics["history"] == result.history
    # The test figures, plus the 95% bootstrap intervals of accuracy and macro-F1 that bracket them.
    assert {k: v for k, v in metrics["test"].items() if not k.endswith("_ci95")} == result.test_metrics
    assert set(metrics["test"]) == per_stage | {"acc_ci95", "f1_macro_ci95"}
    for name in ("acc", "f1_macro"):
        low, high = metrics["test"][f"{name}_ci95"]
        assert 0 <= low <= metrics["test"][name] <= high <= 1
    assert metrics["quality"]["test"]["images"] == 24 and metrics["quality"]["valid"]["images"] == 24
    assert metrics["quality"]["test"]["correct"] == round(metrics["test"]["acc"] * 24)
    for row in [*metrics["history"], metrics["test"]]:
        assert all(0 <= row[k] <= 1 for k in row if k.endswith(("acc", "acc_top5", "f1_macro")))
    assert metrics["test"]["acc_top5"] == 1.0  # top-3 of 3 breeds

    model_config = json.loads((config.outputs.model_dir / "model_config.json").read_text())
    assert model_config["metrics"] == {"test": metrics["test"], "final_epoch": metrics["history"][-1],
                                       "timing": metrics["timing"], "calibration": metrics["calibration"],
                                       "abstention": metrics["abstention"], "quality": metrics["quality"],
                                       "best": metrics["best"]}

    with (reports / "per_class_accuracy.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["index"], r["breed"]) for r in rows] == [("0", "Affenpinscher"), ("1", "Afghan hound"),
                                                        ("2", "Airedale terrier")]
    assert [int(r["total"]) for r in rows] == [8] * len(BREED_DIRS)  # 8 test images per breed (learnable_tree)
    for r in rows:
        assert 0 <= int(r["correct"]) <= 8 and r["accuracy"] == f"{int(r['correct']) / 8:.4f}"
    assert sum(int(r["correct"]) for r in rows) / 24 == pytest.approx(metrics["test"]["acc"], abs=1e-6)

    check_plot(reports / "training_curves.png", (1500, 420))
    check_plot(reports / "confusion_matrix.png", (650, 500))


@pytest.mark.slow  # the shared trained run: make test, not make test-quick
def test_every_json_a_run_writes_is_indented_for_people_and_ends_in_a_newline(trained):
    """The run's JSON files are read by people (and diffed between runs): each one is indented as written here,
    ends in one newline, and holds no NaN (strict JSON). The list of files is pinned too."""
    config, _ = trained
    roots = {"model": config.outputs.model_dir, "reports": config.outputs.output_dir}
    found = {f"{name}/{path.relative_to(root)}": path for name, root in roots.items() for path in root.rglob("*.json")}
    indents = {"model/model_config.json": 2, "reports/metrics.json": 2}
    assert sorted(found) == sorted(indents)
    for name, path in found.items():
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n"), name
        second = text.splitlines()[1]
        assert len(second) - len(second.lstrip(" ")) == indents[name], name
        json.loads(text, parse_constant=lambda constant: pytest.fail(f"{name} holds {constant}"))


def test_the_worst_predictions_are_drawn_only_when_every_result_has_its_image(monkeypatch, tmp_path):
    import torch

    from dogbreed.training import reports

    drawn: list = []
    for name in ("plot_training_curves", "plot_confusion_matrix"):
        monkeypatch.setattr(reports, name, lambda output_dir, *args, name=name: output_dir / f"{name}.png")
    monkeypatch.setattr(reports, "plot_worst_predictions", lambda output_dir, samples, paths, names: drawn.append(
        list(paths)) or output_dir / "worst.png")
    confusion = torch.tensor([[2, 0], [1, 0]])
    samples = {"loss": torch.tensor([0.1, 0.2, 2.0])}
    whole = reports.TestOutcome(confusion, samples, paths=[Path("a.jpg"), Path("b.jpg"), Path("c.jpg")])
    written = reports.write_reports(tmp_path, [], {"acc": 2 / 3}, whole, ["a", "b"])
    assert [p.name for p in written] == ["metrics.json", "plot_training_curves.png", "plot_confusion_matrix.png",
                                         "per_class_accuracy.csv", "most_confused.csv", "worst.png"]
    assert drawn == [[Path("a.jpg"), Path("b.jpg"), Path("c.jpg")]]
    # results of a shard (DDP) or without paths: no gallery rather than images under the wrong results
    for outcome in (reports.TestOutcome(confusion, samples, paths=[Path("a.jpg"), Path("b.jpg")]),
                    reports.TestOutcome(confusion, {}, paths=[Path("a.jpg"), Path("b.jpg"), Path("c.jpg")])):
        assert "worst.png" not in [p.name for p in reports.write_reports(tmp_path, [], {}, outcome, ["a", "b"])]
    assert len(drawn) == 1
