"""dogbreed.core.abstention at its edges: refusals with their messages, ties, empty sets, the rule's record and
its boundaries, each written out (issue 24: mutants that tests/core/test_abstention.py let through)."""

from __future__ import annotations

import math

import pytest
import torch

from dogbreed.core.abstention import AbstentionRule, accept_threshold, auroc, confidence_scores
from dogbreed.core.constants import ABSTENTION_SCORES


def test_the_score_types_are_pinned():
    assert tuple(ABSTENTION_SCORES) == ("max_probability", "energy")


def test_an_unknown_score_type_is_refused_naming_the_choices():
    with pytest.raises(ValueError) as refused:
        confidence_scores(torch.zeros(1, 2), 1.0, "entropy")
    assert str(refused.value) == "unknown score type 'entropy': use one of max_probability, energy"


def test_scores_are_per_row_over_the_classes():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0], [0.0, 0.0]])
    assert confidence_scores(logits, 1.0, "max_probability").tolist() == pytest.approx([0.75, 0.8, 0.5])
    # energy: T * logsumexp(logits / T): log(1 + 3), log(4 + 1), log 2
    assert confidence_scores(logits, 1.0, "energy").tolist() == pytest.approx([math.log(4), math.log(5), math.log(2)])
    assert confidence_scores(logits, 1.0, "energy").dtype == torch.float64


def test_auroc_of_an_empty_side_is_nan_and_all_ties_are_one_half():
    assert math.isnan(auroc(torch.zeros(0), torch.ones(3)))
    assert math.isnan(auroc(torch.ones(3), torch.zeros(0)))
    assert auroc(torch.ones(2), torch.ones(3)) == 0.5
    # in [1, 3] vs out [2]: (1,2) loss, (3,2) win -> 1 / 2; the order of the arguments matters
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5
    assert auroc(torch.tensor([3.0, 3.0, 1.0]), torch.tensor([2.0])) == pytest.approx(2 / 3)
    assert auroc(torch.tensor([2.0]), torch.tensor([3.0, 3.0, 1.0])) == pytest.approx(1 / 3)


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.0000001, 2.0])
def test_accept_rates_outside_0_1_are_refused(rate):
    with pytest.raises(ValueError) as refused:
        accept_threshold(torch.ones(4), rate)
    assert str(refused.value) == f"accept rate must be in (0, 1], got {rate}"


def test_the_threshold_keeps_at_least_the_rate_and_at_least_one_image():
    scores = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])  # unsorted on purpose
    assert accept_threshold(scores, 1.0) == 1.0
    assert accept_threshold(scores, 0.6) == 3.0  # 0.6 x 5 = 3 exactly (not 4: the 1e-9 guard)
    assert accept_threshold(scores, 0.61) == 2.0  # 3.05 -> 4 images
    assert accept_threshold(scores, 0.2) == 5.0  # 1 image
    assert accept_threshold(scores, 0.01) == 5.0  # 0.05 -> still 1 image
    assert accept_threshold(torch.tensor([0.75, 0.25, 0.875]), 2 / 3) == 0.75  # 2/3 x 3 = 2 up to rounding


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"score_type": "entropy"}, "abstention score must be one of max_probability, energy, got 'entropy'"),
    ({"threshold": float("inf")}, "abstention threshold must be a finite number, got inf"),
    ({"threshold": float("nan")}, "abstention threshold must be a finite number, got nan"),
    ({"threshold": True}, "abstention threshold must be a finite number, got True"),
    ({"threshold": "0.5"}, "abstention threshold must be a finite number, got '0.5'"),
    ({"target_accept_rate": 0.0}, "abstention target_accept_rate must be in (0, 1], got 0.0"),
    ({"target_accept_rate": 1.5}, "abstention target_accept_rate must be in (0, 1], got 1.5"),
    ({"target_accept_rate": True}, "abstention target_accept_rate must be in (0, 1], got True"),
    ({"target_accept_rate": "0.9"}, "abstention target_accept_rate must be in (0, 1], got '0.9'"),
])
def test_a_bad_rule_is_refused_naming_the_field(kwargs, message):
    fields = {"score_type": "energy", "threshold": 1.5, "target_accept_rate": 0.9, **kwargs}
    with pytest.raises(ValueError) as refused:
        AbstentionRule(**fields)
    assert str(refused.value) == message


@pytest.mark.parametrize(("threshold", "rate"), [(-3.0, 1.0), (0, 1e-6), (2, 0.5)])
def test_edge_rules_are_accepted(threshold, rate):
    rule = AbstentionRule("max_probability", threshold, rate)
    assert rule.threshold == threshold and rule.target_accept_rate == rate


def test_the_rule_round_trips_through_its_record_with_a_default_rate():
    rule = AbstentionRule("energy", 2.5, 0.9)
    assert rule.to_dict() == {"score": "energy", "threshold": 2.5, "target_accept_rate": 0.9}
    assert AbstentionRule.from_dict(rule.to_dict()) == rule
    assert AbstentionRule.from_dict({"score": "energy", "threshold": 2.5}).target_accept_rate == 0.95


@pytest.mark.parametrize("data", [None, [], {"score": "energy"}, {"threshold": 1.0}, "energy"])
def test_a_record_without_score_and_threshold_is_refused(data):
    with pytest.raises(ValueError) as refused:
        AbstentionRule.from_dict(data)
    assert str(refused.value) == f'abstention must be an object with "score" and "threshold", got {data!r}'


def test_a_score_equal_to_the_threshold_is_accepted():
    rule = AbstentionRule("max_probability", 0.5, 0.95)
    assert rule.accepts(torch.tensor([0.49, 0.5, 0.51])).tolist() == [False, True, True]


def test_the_rounding_guard_is_only_for_float_rounding():
    # 0.5 x 2 = 1 up to 1e-9: keeps 1 image; 1.5e-9 over 1 is a real excess: keeps 2
    assert accept_threshold(torch.tensor([2.0, 1.0]), 0.5 + 4e-10) == 2.0
    assert accept_threshold(torch.tensor([2.0, 1.0]), 0.5 + 7.5e-10) == 1.0


def test_the_rule_is_immutable():
    import dataclasses

    rule = AbstentionRule("energy", 2.5, 0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.threshold = 0.0  # type: ignore[misc]
