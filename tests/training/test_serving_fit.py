"""The temperature is applied only when it helps on validation images it was not fitted on; each way it can be
refused gives T = 1 and a reason."""

from __future__ import annotations

import logging

import pytest
import torch

from dogbreed.training.serving_fit import (
    MIN_CALIBRATION_IMAGES,
    SplitLogits,
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


def test_a_temperature_that_does_not_help_held_out_images_is_not_applied():
    """One half is always right (its temperature sharpens), the other mostly wrong: fitted on one half, the
    temperature makes the other half's NLL worse, both ways."""
    labels = torch.arange(120) % 3
    first, second = halves(labels)
    logits = torch.zeros(120, 3)
    logits[first, labels[first]] = 4.0
    wrong = (labels[second] + (torch.arange(len(second)) % 4 != 0).long()) % 3  # 1 in 4 right
    logits[second, wrong] = 4.0
    temperature, report = decide_temperature(SplitLogits(logits, labels), calibrate=True)
    assert temperature == 1.0 and report["applied"] is False and report["temperature"] == 1.0
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
    assert [r.levelname for r in caplog.records if "search bound" in r.getMessage()] == ["WARNING"]


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


def _one_error(all_right: bool = False) -> SplitLogits:
    """60 images, 3 breeds, underconfident right answers; one wrong answer in the first half (none with
    ``all_right``), so the second half is error-free."""
    labels = torch.arange(60) % 3
    generator = torch.Generator().manual_seed(0)
    logits = torch.eye(3)[labels] * (1.0 + 3.0 * torch.rand(60, 1, generator=generator))
    logits += 0.3 * torch.randn(60, 3, generator=generator)
    if not all_right:
        wrong = halves(labels)[0][0]
        logits[wrong] = torch.eye(3)[(labels[wrong] + 1) % 3] * 1.5
    return SplitLogits(logits, labels)


def test_a_half_with_no_wrong_answer_fits_no_temperature_and_its_check_is_skipped():
    """As in the demo: one validation error. The error-free half has no NLL minimum (T -> 0 keeps helping), so
    only the temperature fitted on the other half is checked, on the error-free half, where it helps."""
    temperature, report = decide_temperature(_one_error(), calibrate=True)
    assert report["check"]["skipped_error_free_halves"] == ["second"] and len(report["check"]["temperatures"]) == 1
    assert report["check"]["held_out_nll_after"] < report["check"]["held_out_nll_before"]
    assert report["applied"] is True and temperature == report["fitted_temperature"] < 1.0
    temperature, report = decide_temperature(_one_error(all_right=True), calibrate=True)
    assert report["check"]["skipped_error_free_halves"] == ["first", "second"]
    assert temperature == 1.0 and report["reason"].startswith("every answer in both validation halves is right")
