"""The statistics behind "how far can this figure be trusted": the binomial test against chance and the bootstrap
intervals, exact on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dogbreed.training.significance import (
    auroc_interval,
    binomial_p_value,
    chance_level,
    classification_intervals,
    ece_interval,
    macro_f1,
    pairs_from_confusion,
    quality_line,
    quality_report,
    with_interval,
)


def test_binomial_p_value_is_the_exact_upper_tail():
    # P(X >= 8) for X ~ Binomial(10, 0.5) = (45 + 10 + 1) / 1024
    assert binomial_p_value(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert binomial_p_value(0, 10, 0.5) == pytest.approx(1.0)
    assert binomial_p_value(10, 10, 1 / 3) == pytest.approx(3.0 ** -10, rel=1e-9)
    # 8 of 24 at chance 1/3: the upper tail from the mean is a little over half.
    expected = sum(math.comb(24, k) * (1 / 3) ** k * (2 / 3) ** (24 - k) for k in range(8, 25))
    assert binomial_p_value(8, 24, 1 / 3) == pytest.approx(expected, rel=1e-9)
    assert binomial_p_value(3, 0, 0.5) == 1.0
    # one image: right with probability chance, so P(X >= 1) = chance
    assert binomial_p_value(1, 1, 0.25) == pytest.approx(0.25) and binomial_p_value(0, 1, 0.25) == 1.0


def test_chance_is_the_larger_of_one_over_classes_and_the_majority_share():
    assert chance_level([8, 8, 8]) == pytest.approx(1 / 3)
    assert chance_level([30, 5, 5]) == pytest.approx(0.75)
    assert chance_level([]) == 0.0


def test_quality_report_needs_every_split_above_chance():
    good = quality_report({"valid": (20, [8, 8, 8]), "test": (22, [8, 8, 8])})
    assert good["better_than_chance"] is True and good["alpha"] == 0.05
    assert good["valid"] == {"acc": 20 / 24, "correct": 20, "images": 24, "chance": pytest.approx(1 / 3),
                             "p_value": pytest.approx(binomial_p_value(20, 24, 1 / 3))}
    # 13 of 24 at chance 1/3 is significant (p ~ 0.028); 12 is not (p ~ 0.068).
    assert quality_report({"valid": (13, [8, 8, 8])})["better_than_chance"] is True
    assert quality_report({"valid": (12, [8, 8, 8])})["better_than_chance"] is False
    # A majority class of 75%: 30 of 40 right is what always answering it scores, not skill.
    assert quality_report({"test": (30, [30, 5, 5])})["better_than_chance"] is False
    at_chance = quality_report({"valid": (20, [8, 8, 8]), "test": (8, [8, 8, 8])})
    assert at_chance["better_than_chance"] is False
    line = quality_line(at_chance)
    assert "NOT better than chance" in line and "test 8/24 (chance 0.33, p=0.58)" in line


def test_an_empty_split_is_reported_but_does_not_decide_the_verdict():
    # 22 of 24 at chance 1/3 is far above chance; a split without images has nothing to test (p = 1 by definition)
    report = quality_report({"valid": (0, [0, 0, 0]), "test": (22, [8, 8, 8])})
    assert report["valid"]["images"] == 0 and report["valid"]["p_value"] == 1.0
    assert report["better_than_chance"] is True
    line = quality_line(report)
    assert line.startswith("quality: better than chance: ") and "valid 0/0 (chance 0.00, p=1)" in line
    # nothing measured at all is no evidence of skill
    assert quality_report({"valid": (0, [0, 0]), "test": (0, [0, 0])})["better_than_chance"] is False
    assert quality_report({})["better_than_chance"] is False


def test_confusion_pairs_and_macro_f1_match_a_hand_count():
    confusion = torch.tensor([[3, 1, 0], [0, 2, 2], [1, 0, 0]])
    true, predicted = pairs_from_confusion(confusion)
    assert true.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2] and predicted.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 0]
    # F1 per class: 2*3/(4+4) = 0.75, 2*2/(4+3) = 4/7, 0/(1+2) = 0 -> mean over the 3 classes.
    assert macro_f1(true[None], predicted[None], 3)[0] == pytest.approx((0.75 + 4 / 7 + 0) / 3)
    # A class neither true nor predicted does not count (as torchmetrics averages).
    assert macro_f1(np.array([[0, 1]]), np.array([[0, 1]]), 5)[0] == pytest.approx(1.0)


def test_accuracy_interval_brackets_the_accuracy_and_narrows_with_more_images():
    small = classification_intervals(torch.tensor([[50, 10], [0, 0]]))  # 60 images, 50 right
    big = classification_intervals(torch.tensor([[500, 100], [0, 0]]))
    assert small["acc_ci95"][0] < 50 / 60 < small["acc_ci95"][1]
    assert big["acc_ci95"][0] < 5 / 6 < big["acc_ci95"][1]
    assert big["acc_ci95"][1] - big["acc_ci95"][0] < 0.5 * (small["acc_ci95"][1] - small["acc_ci95"][0])
    # The binomial standard error for 60 images at 0.833 is 0.048: the 95% interval is about +-0.094.
    assert small["acc_ci95"][1] - small["acc_ci95"][0] == pytest.approx(2 * 1.96 * 0.0481, abs=0.03)
    perfect = classification_intervals(torch.tensor([[30, 0], [0, 30]]))
    assert perfect == {"acc_ci95": [1.0, 1.0], "f1_macro_ci95": [1.0, 1.0]}
    assert classification_intervals(torch.zeros(2, 2, dtype=torch.long)) == {}


def test_ece_and_auroc_intervals_bracket_their_values():
    confidence = torch.full((100,), 0.9, dtype=torch.float64)
    correct = torch.arange(100) < 70  # 70% right at 90% confidence: ECE 0.2
    low, high = ece_interval(confidence, correct, 15)
    assert low < 0.2 < high and high - low < 0.25
    separated = auroc_interval(torch.arange(10, 20.0), torch.arange(0, 10.0))
    assert separated == [1.0, 1.0]
    mixed = auroc_interval(torch.arange(0, 20.0), torch.arange(5, 25.0))  # AUROC 0.3125
    assert mixed[0] < 0.3125 < mixed[1]
    assert auroc_interval(torch.tensor([]), torch.tensor([1.0])) is None


def test_a_figure_with_its_interval_reads_like_the_summary():
    assert with_interval(0.98333, [0.93, 1.0]) == "0.983 [0.93, 1.00]"
    assert with_interval(0.5, None) == "0.500"


def test_the_bootstrap_interval_cuts_two_and_a_half_percent_off_each_tail():
    from dogbreed.training.significance import bootstrap_interval

    # a statistic whose 1000 resampled values are 0, 1, ..., 999 whatever the indices: numpy's linear percentiles
    # at 2.5% and 97.5% are 0.025 x 999 and 0.975 x 999 (a 90% interval would be 49.95 and 949.05)
    low, high = bootstrap_interval(lambda idx: np.arange(idx.shape[0], dtype=float), 7)
    assert (low, high) == (pytest.approx(24.975), pytest.approx(974.025))
    # resamples whose statistic is undefined (NaN) are left out: 500 values 0..499 remain
    low, high = bootstrap_interval(lambda idx: np.where(np.arange(idx.shape[0]) < 500, np.arange(idx.shape[0]), np.nan),
                                   7)
    assert (low, high) == (pytest.approx(0.025 * 499), pytest.approx(0.975 * 499))
    assert bootstrap_interval(lambda idx: np.zeros(idx.shape[0]), 0) is None


def test_the_ece_interval_puts_a_confidence_on_a_bin_edge_into_the_bin_it_closes():
    # 4 bins: (0, .25], (.25, .5], (.5, .75], (.75, 1]. 10 right answers at confidence 0.5 (bin 2: gap +0.5 each)
    # and 10 wrong ones at 0.6 (bin 3: gap -0.6 each): in every resample ECE = (0.5 a + 0.6 b) / (a + b), in [0.5, 0.6].
    # Were 0.5 counted in bin 3 with the 0.6s, the gaps would cancel: |0.5 a - 0.6 b| / (a + b), about 0.05.
    confidence = torch.tensor([0.5] * 10 + [0.6] * 10, dtype=torch.float64)
    correct = torch.tensor([True] * 10 + [False] * 10)
    low, high = ece_interval(confidence, correct, 4)
    assert 0.5 <= low < 0.55 < high <= 0.6


def test_the_report_keeps_the_method_beside_a_split_named_test():
    # The method's description used to sit under "test", which the test split's record then overwrote: a run's
    # metrics.json never said which test decided the verdict, and the summary listed test before valid.
    # valid: P(X >= 20), X ~ Bin(24, 1/3) = (C(24,20) 2^4 + C(24,21) 2^3 + C(24,22) 2^2 + 48 + 1) / 3^24 = 187361 / 3^24
    report = quality_report({"valid": (20, [8, 8, 8]), "test": (8, [8, 8, 8])})
    assert report["method"] == ("one-sided exact binomial test against chance (max of 1/classes and the majority "
                                "class's share), alpha 0.05")
    assert report["test"] == {"acc": 8 / 24, "correct": 8, "images": 24, "chance": pytest.approx(1 / 3),
                              "p_value": pytest.approx(binomial_p_value(8, 24, 1 / 3))}
    assert list(report) == ["method", "alpha", "valid", "test", "better_than_chance"]
    assert quality_line(report) == ("quality: NOT better than chance: the model is written, but its answers are no "
                                    "better than guessing: valid 20/24 (chance 0.33, p=6.6e-07), "
                                    "test 8/24 (chance 0.33, p=0.58)")
