"""Reports of a training run: metrics.json, per-class accuracy, the most confused breed pairs and the plots
(:mod:`dogbreed.training.report_plots`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from dogbreed.core.constants import METRICS_FILENAME, MOST_CONFUSED_FILENAME, PER_CLASS_FILENAME
from dogbreed.core.fileio import strict_json
from dogbreed.training.report_plots import plot_confusion_matrix, plot_training_curves, plot_worst_predictions


@dataclass
class TestOutcome:
    """What testing produced: the confusion matrix (rows = true) and, when known in dataset order, per-image
    results (``loss``, ``target``, ``predicted``, ``predicted_probability``) with the image paths."""

    __test__ = False  # not a pytest class

    confusion: torch.Tensor
    samples: dict[str, torch.Tensor] = field(default_factory=dict)
    paths: Sequence[Path] = ()


def write_metrics_json(output_dir: Path, history: list[dict[str, Any]], test: dict[str, float],
                       timing: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """``{"history": [...], "test": {...}, "timing": {...}}`` plus ``extra`` sections (calibration, abstention,
    tta)."""
    path = output_dir / METRICS_FILENAME
    payload: dict[str, Any] = {"history": history, "test": test}
    if timing is not None:
        payload["timing"] = timing
    payload.update(extra or {})
    path.write_text(strict_json(payload, indent=2) + "\n", encoding="utf-8")  # no NaN
    return path


def per_class_accuracy(confusion: torch.Tensor) -> list[tuple[int, int, float]]:
    """(correct, total, accuracy) per true class from a confusion matrix (rows = true)."""
    rows = []
    for i in range(confusion.shape[0]):
        total = int(confusion[i].sum())
        correct = int(confusion[i, i])
        rows.append((correct, total, correct / total if total else float("nan")))
    return rows


def write_per_class_csv(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    path = output_dir / PER_CLASS_FILENAME
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "breed", "correct", "total", "accuracy"])
        for i, (correct, total, acc) in enumerate(per_class_accuracy(confusion)):
            writer.writerow([i, class_names[i], correct, total, f"{acc:.4f}"])
    return path


def most_confused_pairs(confusion: torch.Tensor) -> list[tuple[int, int, int, float]]:
    """(true, predicted, count, share of the true class) for every mistake made at least once, most frequent
    first (ties: larger share, then index order)."""
    totals = confusion.sum(dim=1)
    pairs = []
    for true, predicted in torch.nonzero(confusion, as_tuple=False).tolist():
        if true != predicted:
            count = int(confusion[true, predicted])
            pairs.append((true, predicted, count, count / int(totals[true])))
    return sorted(pairs, key=lambda p: (-p[2], -p[3], p[0], p[1]))


def write_most_confused_csv(output_dir: Path, confusion: torch.Tensor, class_names: Sequence[str]) -> Path:
    path = output_dir / MOST_CONFUSED_FILENAME
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true", "predicted", "count", "share"])
        for true, predicted, count, share in most_confused_pairs(confusion):
            writer.writerow([class_names[true], class_names[predicted], count, f"{share:.4f}"])
    return path


def write_reports(
    output_dir: Path, history: list[dict[str, Any]], test: dict[str, float], outcome: TestOutcome | None,
    class_names: Sequence[str], *, timing: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Every report of a run; without a test outcome (e.g. a tuning trial) only metrics.json and the curves."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = [write_metrics_json(output_dir, history, test, timing, extra),
               plot_training_curves(output_dir, history, test)]
    if outcome is None:
        return written
    written += [
        plot_confusion_matrix(output_dir, outcome.confusion, class_names, test),
        write_per_class_csv(output_dir, outcome.confusion, class_names),
        write_most_confused_csv(output_dir, outcome.confusion, class_names),
    ]
    if outcome.samples and len(outcome.paths) == len(outcome.samples["loss"]):
        written.append(plot_worst_predictions(output_dir, outcome.samples, outcome.paths, class_names))
    return written
