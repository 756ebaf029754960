"""assess_run on hand-built inputs: which counts the verdict against chance is computed from (the test split's true
classes, the validation answers of the served model or the last epoch's accuracy), without a training run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dogbreed.training.reports import TestOutcome
from dogbreed.training.serving_fit import ServingFit, SplitLogits
from dogbreed.training.trust import assess_run


def _images(valid_labels: list[int], num_classes: int) -> SimpleNamespace:
    """What assess_run reads of the data module: the validation samples and the class count."""
    samples = [(Path(f"valid/{i}.jpg"), label) for i, label in enumerate(valid_labels)]
    return SimpleNamespace(datasets={"valid": SimpleNamespace(samples=samples)}, num_classes=num_classes)


def _right(labels: list[int], wrong: int, classes: int) -> SplitLogits:
    """Logits answering every label right except the first ``wrong`` (answered as the next class)."""
    answers = [(label + 1) % classes if i < wrong else label for i, label in enumerate(labels)]
    return SplitLogits(torch.nn.functional.one_hot(torch.tensor(answers), classes).float(), torch.tensor(labels))


def test_the_test_split_is_judged_against_its_true_classes_not_the_predicted_ones():
    # rows = true: 6 images of breed 0, 4 of breed 1, everything predicted as breed 0. Chance is the majority
    # share of the TRUE classes, 6/10 (by the predictions, 10/10 would make chance 1.0)
    outcome = TestOutcome(confusion=torch.tensor([[6, 0], [4, 0]]))
    images = _images([0] * 5 + [1] * 5, 2)
    fit = ServingFit(valid=_right([0] * 5 + [1] * 5, 0, 2))
    test, lines = assess_run({"acc": 0.6}, outcome, fit, [], images)
    quality = fit.report["quality"]
    assert quality["test"]["images"] == 10 and quality["test"]["correct"] == 6
    assert quality["test"]["chance"] == pytest.approx(0.6) and quality["test"]["acc"] == pytest.approx(0.6)
    assert quality["valid"] == {"acc": 1.0, "correct": 10, "images": 10, "chance": 0.5,
                                "p_value": pytest.approx(1 / 1024)}
    assert test["acc"] == 0.6 and set(test) == {"acc", "acc_ci95", "f1_macro_ci95"}
    assert lines[0].startswith("test_acc 0.600 [") and "NOT better than chance" in lines[1]


def test_validation_answers_come_from_the_served_logits_when_they_cover_the_split():
    outcome = TestOutcome(confusion=torch.tensor([[5, 0], [0, 5]]))
    labels = [0] * 5 + [1] * 5
    fit = ServingFit(valid=_right(labels, 3, 2))  # 7 of 10 right
    assess_run({"acc": 1.0}, outcome, fit, [{"epoch": 1, "val_acc": 0.2}], _images(labels, 2))
    assert fit.report["quality"]["valid"]["correct"] == 7


def test_validation_answers_come_from_the_last_epoch_when_the_served_logits_do_not_cover_the_split():
    outcome = TestOutcome(confusion=torch.tensor([[5, 0], [0, 5]]))
    labels = [0] * 50 + [1] * 50
    # logits of 4 images only (all right) for a 100-image split: the last epoch's val_acc 0.29 counts,
    # 0.29 x 100 = 28.999999999999996 in floating point: 29 right answers, not 28
    fit = ServingFit(valid=_right([0, 0, 1, 1], 0, 2))
    history = [{"epoch": 1, "val_acc": 0.9}, {"epoch": 2, "val_acc": 0.29}]
    assess_run({"acc": 1.0}, outcome, fit, history, _images(labels, 2))
    assert fit.report["quality"]["valid"]["correct"] == 29
    bare = ServingFit()  # no served logits at all (calibration off)
    assess_run({"acc": 1.0}, outcome, bare, history, _images(labels, 2))
    assert bare.report["quality"]["valid"]["correct"] == 29
    empty = ServingFit()
    assess_run({"acc": 1.0}, outcome, empty, [], _images(labels, 2))
    assert empty.report["quality"]["valid"]["correct"] == 0


def test_a_run_without_a_test_outcome_comes_back_unchanged():
    fit = ServingFit()
    metrics = {"acc": 0.5}
    test, lines = assess_run(metrics, None, fit, [], _images([0, 1], 2))
    assert (test, lines, fit.report) == ({"acc": 0.5}, [], {}) and test is not metrics
