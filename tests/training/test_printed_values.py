"""Printed figures read back against hand-computed values (issue 24): the run summary's headline line (test_acc,
f1_macro, ece and the abstention AUROC, each with its interval) and the intervals behind it."""

from __future__ import annotations

import torch

from dogbreed.training.significance import classification_intervals
from dogbreed.training.trust import trust_lines


def test_summary_headline_prints_each_figure_with_its_own_interval():
    test = {"acc": 0.98333, "acc_ci95": [0.93, 1.0], "f1_macro": 0.5, "f1_macro_ci95": [0.25, 0.75]}
    report = {"calibration": {"test": {"ece_after": 0.0412, "ece_after_ci95": [0.01, 0.09]}},
              "abstention": {"score": "energy", "auroc_test_vs_ood": {"energy": 0.9, "max_probability": 0.8},
                             "auroc_test_vs_ood_ci95": [0.85, 0.95]}}
    assert trust_lines(test, report) == [
        "test_acc 0.983 [0.93, 1.00]  f1_macro 0.500 [0.25, 0.75]  ece 0.041 [0.01, 0.09]  "
        "abstention auroc 0.900 [0.85, 0.95]  (95% bootstrap intervals)"]


def test_summary_headline_without_intervals_prints_the_bare_figures():
    assert trust_lines({"acc": 0.5}, {}) == ["test_acc 0.500  (95% bootstrap intervals)"]


def test_intervals_of_a_perfect_and_of_a_hopeless_model():
    # every resample of an all-correct test set has accuracy and macro-F1 1; of an all-wrong one, 0
    assert classification_intervals(torch.diag(torch.tensor([5, 5, 5]))) == {"acc_ci95": [1.0, 1.0],
                                                                             "f1_macro_ci95": [1.0, 1.0]}
    wrong = torch.tensor([[0, 5, 0], [0, 0, 5], [5, 0, 0]])
    assert classification_intervals(wrong) == {"acc_ci95": [0.0, 0.0], "f1_macro_ci95": [0.0, 0.0]}
