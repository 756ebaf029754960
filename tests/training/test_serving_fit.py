"""The temperature is applied only when it helps on validation images it was not fitted on; each way it can be
refused gives T = 1 and a reason."""

from __future__ import annotations

import logging

import pytest
import torch

from dogbreed.training.serving_fit import (
    MIN_CALIBRATION_IMAGES,
    SplitLogits,
    calibration_halves,
    decide_temperature,
    fit_serving,
    halves,
    summary_line,
)


def _overconfident(count: int, seed: int = 0) -> SplitLogits:
    """Labels drawn from softmax(z) for calibrated logits z, served as 3 z: a model 3x overconfident."""
    generator = torch.Generator().manual_seed(seed)
    calibrated = torch.randn(count, 4, generator=generator) * 1.5
    labels = torch.multinomial(torch.softmax(calibrated, dim=1), 1, generator=generator).flatten()
    return SplitLogits(calibrated * 3.0, labels)


def test_halves_alternate_within_each_label_and_are_disjoint():
    first, second = halves(torch.tensor([0, 1, 0, 0, 1, 2, 1, 0]))
    # label 0 at 0, 2, 3, 7 -> 0, 3 | 2, 7; label 1 at 1, 4, 6 -> 1, 6 | 4; label 2 at 5 -> 5 | -
    assert first.tolist() == [0, 1, 3, 5, 6] and second.tolist() == [2, 4, 7]


def test_a_temperature_that_helps_held_out_images_is_applied():
    valid = _overconfident(400)
    temperature, report = decide_temperature(valid, calibrate=True)
    assert report["applied"] is True and "reason" not in report and "warning" not in report
    assert temperature == report["temperature"] == report["fitted_temperature"]
    assert temperature == pytest.approx(3.0, rel=0.2)  # it recovers the overconfidence
    assert report["check"]["held_out_nll_after"] < report["check"]["held_out_nll_before"]
    assert all(t == pytest.approx(3.0, rel=0.3) for t in report["check"]["temperatures"])


def _with_errors(tight: list[int], confident: list[int], count: int = 120) -> SplitLogits:
    """``count`` images of 3 breeds, right answers with margin 4; wrong answers at ``tight`` indices by a margin
    of 0.1, at ``confident`` indices by a margin of 4."""
    labels = torch.arange(count) % 3
    logits = torch.eye(3)[labels] * 4.0
    for index, margin in [(i, 0.1) for i in tight] + [(i, 4.0) for i in confident]:
        logits[index] = torch.eye(3)[(labels[index] + 1) % 3] * margin
    return SplitLogits(logits, labels)


def test_calibration_halves_share_the_wrong_answers():
    """Right answers alternate within each breed, wrong answers alternate over all breeds, first to the second half."""
    valid = _with_errors(tight=[1, 4], confident=[6], count=9)
    first, second = calibration_halves(valid)
    # right: label 0 at 0, 3 -> 0 | 3; label 1 at 7 -> 7 | -; label 2 at 2, 5, 8 -> 2, 8 | 5; wrong 1, 4, 6 -> 4 | 1, 6
    assert first.tolist() == [0, 2, 4, 7, 8] and second.tolist() == [1, 3, 5, 6]


def test_a_temperature_that_does_not_help_held_out_images_is_not_applied():
    """The wrong answers of one half are near ties (its temperature sharpens), those of the other are confidently
    wrong (its temperature flattens): each half's temperature makes the other half's NLL worse."""
    valid = _with_errors(tight=[11, 31, 51, 71], confident=[10, 30, 50, 70])
    first, second = calibration_halves(valid)
    assert set(second.tolist()) >= {10, 30, 50, 70} and set(first.tolist()) >= {11, 31, 51, 71}
    temperature, report = decide_temperature(valid, calibrate=True)
    assert temperature == 1.0 and report["applied"] is False and report["temperature"] == 1.0
    assert report["check"]["wrong_answers"] == [4, 4] and report["wrong_answers"] == 8
    first_t, second_t = report["check"]["temperatures"]
    assert first_t < 1.0 < second_t
    assert report["check"]["held_out_nll_after"] > report["check"]["held_out_nll_before"]
    assert report["reason"].startswith("it does not help on held-out validation images (NLL ")


def test_a_model_at_chance_keeps_temperature_one_even_when_flattening_lowers_nll():
    generator = torch.Generator().manual_seed(3)
    valid = SplitLogits(torch.randn(60, 3, generator=generator) * 2, torch.arange(60) % 3)
    temperature, report = decide_temperature(valid, calibrate=True)
    assert temperature == 1.0 and report["applied"] is False
    assert report["reason"].startswith("the model is no better than chance on validation (")


def test_too_few_validation_images_and_turned_off_are_reasons():
    small = _overconfident(MIN_CALIBRATION_IMAGES - 1)
    temperature, report = decide_temperature(small, calibrate=True)
    assert (temperature, report["applied"]) == (1.0, False)
    assert report["reason"] == ("19 validation images: at least 20 are needed to fit a temperature on one half "
                                "and check it on the other")
    # 20 images pass the count gate (the other gates decide).
    assert "at least 20" not in decide_temperature(_overconfident(20, seed=1), calibrate=True)[1].get("reason", "")
    assert decide_temperature(_overconfident(400), calibrate=False)[1]["reason"] == "turned off (--calibrate False)"


def test_a_temperature_at_its_search_bound_warns(caplog):
    """Always wrong with a margin: the NLL keeps falling as T grows, the fit stops at the upper bound (100)."""
    labels = torch.arange(60) % 3
    logits = torch.eye(3)[(labels + 1) % 3] * 5.0
    with caplog.at_level(logging.WARNING, logger="dogbreed.training.serving_fit"):
        temperature, report = decide_temperature(SplitLogits(logits, labels), calibrate=True)
    assert report["fitted_temperature"] == pytest.approx(100.0)
    assert temperature == 1.0 and report["applied"] is False
    assert report["warning"] == "temperature at a search bound (100)"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if "search bound" in r.getMessage()] == [
        ("WARNING", "the temperature fit stopped at its search bound (T = 100, bounds (0.01, 100.0)): the validation "
                    "logits carry no usable confidence signal; the temperature is not applied")]


def test_a_good_model_whose_temperature_stops_at_a_bound_keeps_temperature_one(monkeypatch):
    from dogbreed.training import serving_fit

    real = serving_fit.fit_temperature
    monkeypatch.setattr(serving_fit, "fit_temperature",
                        lambda logits, labels: 0.01 if len(labels) == 400 else real(logits, labels))
    temperature, report = decide_temperature(_overconfident(400), calibrate=True)
    assert temperature == 1.0 and report["applied"] is False
    assert report["reason"] == "the fitted temperature 0.01 is at a search bound (0.01, 100.0)"


def test_the_calibration_report_and_summary_line_say_why_nothing_was_applied():
    generator = torch.Generator().manual_seed(3)
    at_chance = SplitLogits(torch.randn(60, 3, generator=generator) * 2, torch.arange(60) % 3)
    fit = fit_serving(at_chance, at_chance, torch.randn(40, 3, generator=generator),
                      torch.randn(40, 3, generator=generator), calibrate=True, score="auto", accept_rate=0.95)
    assert fit.temperature == 1.0 and fit.abstention is None
    calibration = fit.report["calibration"]
    assert calibration["test"]["ece_after"] == calibration["test"]["ece_before"]  # T = 1 served, T = 1 measured
    low, high = calibration["test"]["ece_after_ci95"]
    assert low <= calibration["test"]["ece_after"] <= high
    line = summary_line(fit.report)
    assert line.startswith("calibration: temperature not applied (the model is no better than chance")
    assert "; no abstention rule (the " in line and "does not separate" in line


def test_too_few_wrong_answers_keep_temperature_one():
    """As in the demo: a good model with one validation error. Fitted on it, T shrinks towards 0 (every right answer
    rewards sharpening) and a check on a half without wrong answers would pass any sharpening: not applied."""
    temperature, report = decide_temperature(_with_errors(tight=[5], confident=[]), calibrate=True)
    assert (temperature, report["applied"], report["wrong_answers"]) == (1.0, False, 1)
    assert "fitted_temperature" not in report and "check" not in report
    assert report["reason"] == ("1 wrong answer in 120 validation images: at least 4 are needed (half to fit a "
                                "temperature on, half to check it on); with fewer, every right answer rewards "
                                "sharpening and nothing held out can show that a temperature is too low")
    assert decide_temperature(_with_errors(tight=[5, 9, 40], confident=[]), calibrate=True)[1]["reason"].startswith(
        "3 wrong answers in 120 validation images: at least 4 are needed")
    # 4 wrong answers pass this gate (2 in each half); the check decides.
    report = decide_temperature(_with_errors(tight=[5, 9, 40, 41], confident=[]), calibrate=True)[1]
    assert report["check"]["wrong_answers"] == [2, 2] and "at least 4" not in report.get("reason", "")


@pytest.mark.parametrize("valid_images, ood_images, reason", [
    (19, 40, "19 validation images: at least 20 are needed to choose the rule on one half and check it on the other"),
    (20, 19, "19 non-dog selection images: at least 20 are needed (half to choose, half to check); give more with "
             "--ood-dir"),
])
def test_abstention_with_too_few_images_is_off_and_says_why_whole(valid_images, ood_images, reason):
    from dogbreed.training.serving_fit import SplitLogits, decide_abstention

    valid = SplitLogits(logits=torch.randn(valid_images, 3), labels=torch.arange(valid_images) % 3)
    rule, report = decide_abstention(valid, torch.randn(ood_images, 3), temperature=1.0, score="max_probability",
                                     accept_rate=0.9)
    assert rule is None
    assert report == {"target_accept_rate": 0.9, "min_auroc": 0.7, "min_reject_ood": 0.25,
                      "min_images": {"valid": 20, "ood_selection": 20}, "applied": False, "reason": reason}


def test_auto_picks_max_probability_when_both_scores_separate_equally_and_energy_when_it_separates_better():
    from dogbreed.training.serving_fit import decide_abstention

    # 20 dogs answered with one sure logit (10, 0, 0) and 20 non-dogs with flat logits: max probability and
    # energy (logsumexp) both rank every dog above every non-dog, AUROC 1.0 each: the tie goes to max probability
    valid = SplitLogits(torch.nn.functional.one_hot(torch.arange(20) % 3, 3).float() * 10, torch.arange(20) % 3)
    rule, report = decide_abstention(valid, torch.zeros(20, 3), temperature=1.0, score="auto", accept_rate=0.95)
    assert report["auroc_choose"] == {"max_probability": 1.0, "energy": 1.0}
    assert report["score"] == "max_probability" and rule is not None and rule.score_type == "max_probability"
    # non-dogs with two equal large logits (20, 20, 0): max probability ~0.5 is below the dogs' ~1.0 (AUROC 1),
    # but energy log(2 e^20) ~ 20.7 is above the dogs' ~10 (AUROC 0): max probability wins outright
    ood = torch.tensor([[20.0, 20.0, 0.0]]).repeat(20, 1)
    _, report = decide_abstention(valid, ood, temperature=1.0, score="auto", accept_rate=0.95)
    assert report["auroc_choose"] == {"max_probability": 1.0, "energy": 0.0} and report["score"] == "max_probability"
    # dogs torn between two breeds (10, 9, 0): max probability ~0.73, energy ~10.3; non-dogs (5, 0, 0): max
    # probability ~0.99 (above the dogs: AUROC 0), energy ~5.0 (below: AUROC 1): energy wins outright
    torn = SplitLogits(torch.tensor([[10.0, 9.0, 0.0]]).repeat(20, 1), torch.arange(20) % 3)
    ood = torch.tensor([[5.0, 0.0, 0.0]]).repeat(20, 1)
    _, report = decide_abstention(torn, ood, temperature=1.0, score="auto", accept_rate=0.95)
    assert report["auroc_choose"] == {"max_probability": 0.0, "energy": 1.0} and report["score"] == "energy"
    # a requested score is kept, even where the other separates better
    _, report = decide_abstention(torn, ood, temperature=1.0, score="max_probability", accept_rate=0.95)
    assert report["score"] == "max_probability" and report["applied"] is False


def test_a_rule_that_turns_away_exactly_a_quarter_of_the_held_out_non_dogs_is_applied():
    import math

    from dogbreed.training.serving_fit import decide_abstention

    # energy scores: dogs (20 + i, 0, 0) score about 20 + i; the rule is chosen on the even dogs (20, 22, ... 38):
    # accepting 95% of 10 keeps all 10, threshold ~20. Held-out non-dogs (odd rows of 40): 15 score 20.5 (accepted),
    # 5 score log 3 (turned away): exactly 25% rejected, the minimum. AUROC 1 (every held-out dog scores 21 or more).
    valid = SplitLogits(torch.tensor([[20.0 + i, 0.0, 0.0] for i in range(20)]), torch.zeros(20, dtype=torch.long))
    ood = torch.zeros(40, 3)
    ood[1:31:2, 0] = 20.5
    rule, report = decide_abstention(valid, ood, temperature=1.0, score="energy", accept_rate=0.95)
    assert report["accept_rate_check"] == {"valid": 1.0, "ood": 0.75} and report["auroc_check"] == 1.0
    assert report["applied"] is True and "reason" not in report
    assert rule is not None and rule.score_type == "energy"
    assert rule.threshold == pytest.approx(20 + math.log1p(2 * math.exp(-20)), abs=1e-9)
    ood[31, 0] = 20.5  # one more accepted: 4 of 20 (20%) turned away is too few
    rule, report = decide_abstention(valid, ood, temperature=1.0, score="energy", accept_rate=0.95)
    assert rule is None and report["reason"].startswith("the energy rule would turn away only 20% of the held-out")


def test_the_score_is_chosen_on_the_temperature_scaled_logits():
    from dogbreed.training.serving_fit import decide_abstention

    # dogs torn (3, 2.9, 0), non-dogs (1, 0, 0). At T = 1 the non-dogs have the higher max probability (0.576 vs
    # 0.512: AUROC 0); at the served T = 10 the dogs do (softmax of (.3, .29, 0): 0.366 vs (.1, 0, 0): 0.356, AUROC 1),
    # and energy ranks the dogs first at either temperature: at T = 10 a tie, so max probability is chosen
    valid = SplitLogits(torch.tensor([[3.0, 2.9, 0.0]]).repeat(20, 1), torch.arange(20) % 3)
    ood = torch.tensor([[1.0, 0.0, 0.0]]).repeat(20, 1)
    _, report = decide_abstention(valid, ood, temperature=10.0, score="auto", accept_rate=0.95)
    assert report["auroc_choose"] == {"max_probability": 1.0, "energy": 1.0} and report["score"] == "max_probability"
    _, report = decide_abstention(valid, ood, temperature=1.0, score="auto", accept_rate=0.95)
    assert report["auroc_choose"] == {"max_probability": 0.0, "energy": 1.0} and report["score"] == "energy"
