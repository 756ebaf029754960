"""The figures a run reports, with how far they can be trusted: test accuracy and macro-F1 with their 95% bootstrap
intervals, and whether the model is better than chance on validation and test (``metrics.json["quality"]``).

A model no better than chance is still written (the user may want it), but the run says so in a summary line
containing "chance", and ``predict`` / ``serve`` warn when they load it
(:func:`dogbreed.serving.artifact.quality_warning`).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.training.reports import TestOutcome
from dogbreed.training.serving_fit import ServingFit
from dogbreed.training.significance import classification_intervals, quality_line, quality_report, with_interval

logger = logging.getLogger(__name__)


def _valid_correct(fit: ServingFit, history: Sequence[dict[str, Any]], images: int) -> int:
    """Correct validation answers of the served model, else from the last epoch's accuracy."""
    if fit.valid is not None and fit.valid.labels.numel() == images:
        return int((fit.valid.logits.argmax(dim=1) == fit.valid.labels).sum())
    accuracy = history[-1].get("val_acc", 0.0) if history else 0.0
    return round(float(accuracy) * images)


def assess_run(test_metrics: dict[str, float], outcome: TestOutcome | None, fit: ServingFit,
               history: Sequence[dict[str, Any]], images: DogBreedDataModule) -> tuple[dict[str, Any], list[str]]:
    """(test metrics with ``acc_ci95`` and ``f1_macro_ci95``, the summary lines); ``fit.report["quality"]`` is set.
    Without a test outcome (a run that skipped the test split) the metrics come back unchanged."""
    if outcome is None:
        return dict(test_metrics), []
    confusion = outcome.confusion
    valid = class_counts([label for _, label in images.datasets["valid"].samples], images.num_classes)
    test = {**test_metrics, **classification_intervals(confusion)}
    quality = fit.report["quality"] = quality_report({
        "valid": (_valid_correct(fit, history, sum(valid)), valid),
        "test": (int(confusion.diagonal().sum()), confusion.sum(dim=1).long().tolist()),
    })
    if not quality["better_than_chance"]:
        logger.warning(quality_line(quality))
    return test, trust_lines(test, fit.report)


def trust_lines(test: dict[str, Any], report: dict[str, Any]) -> list[str]:
    """Summary lines: the headline figures with their intervals, then the verdict against chance."""
    figures = [f"test_acc {with_interval(test['acc'], test.get('acc_ci95'))}"]
    if "f1_macro" in test:
        figures.append(f"f1_macro {with_interval(test['f1_macro'], test.get('f1_macro_ci95'))}")
    calibration = report.get("calibration", {}).get("test")
    if calibration:
        figures.append(f"ece {with_interval(calibration['ece_after'], calibration.get('ece_after_ci95'))}")
    abstention = report.get("abstention", {})
    if "auroc_test_vs_ood_ci95" in abstention:
        value = abstention["auroc_test_vs_ood"][abstention["score"]]
        figures.append(f"abstention auroc {with_interval(value, abstention['auroc_test_vs_ood_ci95'])}")
    lines = ["  ".join(figures) + "  (95% bootstrap intervals)"]
    if "quality" in report:
        lines.append(quality_line(report["quality"]))
    return lines


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    """Images per class of a split."""
    counts = [0] * num_classes
    for label in labels:
        counts[label] += 1
    return counts
