"""What the artifact will serve with: the temperature and the abstention rule, each applied only when it helps on
validation images it was not fitted on.

- **Calibration**: the validation split is cut in two halves (right answers alternately within each breed, wrong
  answers alternately over all breeds, so both halves hold wrong answers). A temperature fitted on one half is
  checked on the other, both ways (2-fold cross-fitting); the temperature fitted on the whole split is applied only
  when the pooled held-out NLL improves, the split has at least :data:`MIN_CALIBRATION_IMAGES` images and
  :data:`MIN_CALIBRATION_WRONG` wrong answers, the model beats chance on validation, and the fit did not stop at a
  search bound (that is a warning). Else T = 1.
- **Abstention**: the score and threshold are chosen on one half of validation against one half of the non-dog
  selection set, and checked on the other halves: the rule is applied only when the held-out AUROC is at least
  :data:`MIN_ABSTENTION_AUROC`, the rule turns away at least :data:`MIN_ABSTENTION_REJECT` of the held-out non-dog
  images, and each held-out part has enough images. The report set (test split vs the
  non-dog report set) measures the chosen score; it never chooses anything. Test is never fitted on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from dogbreed.core.abstention import SCORE_TYPES, AbstentionRule, accept_threshold, auroc, confidence_scores
from dogbreed.core.calibration import (
    ECE_BINS,
    TEMPERATURE_BOUNDS,
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from dogbreed.training.significance import ALPHA, auroc_interval, ece_interval, split_quality

logger = logging.getLogger(__name__)

MIN_CALIBRATION_IMAGES = 20  # validation images: at least 10 to fit on and 10 to check on
MIN_CALIBRATION_WRONG = 4  # wrong validation answers: at least 2 in the half fitted on and 2 in the half checked on
MIN_ABSTENTION_VALID = 20  # validation images: 10 to choose the rule on, 10 to check it on
MIN_ABSTENTION_OOD = 10  # non-dog images in each half of the selection set
MIN_ABSTENTION_AUROC = 0.70  # held-out AUROC below this: the score does not separate dogs from non-dogs
MIN_ABSTENTION_REJECT = 0.25  # held-out non-dog images the rule must turn away: fewer, and it only costs answers


@dataclass(frozen=True)
class SplitLogits:
    """``logits`` (N, C) float32 on the CPU, ``labels`` (N,) (-1 for images without a breed)."""

    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def accuracy(self) -> float:
        if self.labels.numel() == 0:
            return float("nan")
        return float((self.logits.argmax(dim=1) == self.labels).double().mean())

    def part(self, index: torch.Tensor) -> "SplitLogits":
        return SplitLogits(self.logits[index], self.labels[index])


@dataclass
class ServingFit:
    """What the artifact stores, what metrics.json reports, and the logits behind them (for the reports)."""

    temperature: float = 1.0
    abstention: AbstentionRule | None = None
    report: dict[str, Any] = field(default_factory=dict)
    test: SplitLogits | None = None
    valid: SplitLogits | None = None


def halves(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of two disjoint halves, alternating within each label (stratified, deterministic)."""
    first: list[int] = []
    second: list[int] = []
    for label in labels.unique(sorted=True).tolist():
        members = torch.nonzero(labels == label).flatten().tolist()
        first += members[0::2]
        second += members[1::2]
    return torch.tensor(sorted(first), dtype=torch.long), torch.tensor(sorted(second), dtype=torch.long)


def _valid_quality(valid: SplitLogits) -> dict[str, float | int]:
    counts = torch.bincount(valid.labels, minlength=int(valid.logits.shape[1])).tolist() if valid.labels.numel() \
        else []
    return split_quality(int((valid.logits.argmax(dim=1) == valid.labels).sum()), counts)


def _calibration_measures(split: SplitLogits, temperature: float) -> dict[str, Any]:
    """ECE (15 bins, with its 95% bootstrap interval after) and NLL of a labelled split before (T = 1) and after."""
    before = calibrated_probabilities(split.logits, 1.0)
    after = calibrated_probabilities(split.logits, temperature)
    confidence, predicted = after.max(dim=1)
    return {
        "ece_before": expected_calibration_error(before, split.labels, ECE_BINS),
        "ece_after": expected_calibration_error(after, split.labels, ECE_BINS),
        "ece_after_ci95": ece_interval(confidence, predicted == split.labels, ECE_BINS),
        "nll_before": negative_log_likelihood(split.logits, split.labels, 1.0),
        "nll_after": negative_log_likelihood(split.logits, split.labels, temperature),
        "images": int(split.labels.numel()),
    }


def at_search_bound(temperature: float) -> bool:
    low, high = TEMPERATURE_BOUNDS
    return temperature <= low * (1 + 1e-6) or temperature >= high * (1 - 1e-6)


def calibration_halves(valid: SplitLogits) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint halves that share the wrong answers as evenly as the right ones: right answers alternate within
    each breed, wrong answers alternate over all breeds (in index order, the first to the second half). Deterministic.

    Each half then holds wrong answers to fit on and to check on: a half of right answers only has no NLL minimum
    (T -> 0 keeps helping) and, as the check half, rewards any sharpening."""
    wrong = valid.logits.argmax(dim=1) != valid.labels
    first: list[int] = []
    second: list[int] = []
    for label in valid.labels.unique(sorted=True).tolist():
        members = torch.nonzero((valid.labels == label) & ~wrong).flatten().tolist()
        first += members[0::2]
        second += members[1::2]
    errors = torch.nonzero(wrong).flatten().tolist()
    second += errors[0::2]
    first += errors[1::2]
    return torch.tensor(sorted(first), dtype=torch.long), torch.tensor(sorted(second), dtype=torch.long)


def _wrong_answers(split: SplitLogits) -> int:
    return int((split.logits.argmax(dim=1) != split.labels).sum())


def _cross_fitted_nll(valid: SplitLogits) -> dict[str, Any]:
    """Each half's temperature checked on the other half (2-fold cross-fitting, both ways): held-out NLL at T = 1
    and at the other half's T, pooled over both halves (every validation image is held out once)."""
    first, second = calibration_halves(valid)
    rows = []
    for fit_on, check_on in ((first, second), (second, first)):
        temperature = fit_temperature(valid.part(fit_on).logits, valid.part(fit_on).labels)
        held_out = valid.part(check_on)
        rows.append((temperature, len(check_on), negative_log_likelihood(held_out.logits, held_out.labels, 1.0),
                     negative_log_likelihood(held_out.logits, held_out.labels, temperature)))
    total = sum(row[1] for row in rows)
    return {"temperatures": [row[0] for row in rows],
            "wrong_answers": [_wrong_answers(valid.part(first)), _wrong_answers(valid.part(second))],
            "held_out_nll_before": sum(row[1] * row[2] for row in rows) / total,
            "held_out_nll_after": sum(row[1] * row[3] for row in rows) / total}


def decide_temperature(valid: SplitLogits, *, calibrate: bool) -> tuple[float, dict[str, Any]]:
    """(temperature to serve, the ``calibration`` report): T = 1 with a ``reason`` unless it helps held out."""
    report: dict[str, Any] = {"fitted_on": "valid", "bins": ECE_BINS, "min_images": MIN_CALIBRATION_IMAGES}
    images = int(valid.labels.numel())
    if not calibrate:
        return 1.0, {**report, "applied": False, "temperature": 1.0, "reason": "turned off (--calibrate False)"}
    if images < MIN_CALIBRATION_IMAGES:
        return 1.0, {**report, "applied": False, "temperature": 1.0,
                     "reason": f"{images} validation images: at least {MIN_CALIBRATION_IMAGES} are needed to fit a "
                               "temperature on one half and check it on the other"}
    wrong = _wrong_answers(valid)
    quality = _valid_quality(valid)
    report["min_wrong_answers"] = MIN_CALIBRATION_WRONG
    if wrong < MIN_CALIBRATION_WRONG and quality["p_value"] < ALPHA:
        return 1.0, {**report, "applied": False, "temperature": 1.0, "wrong_answers": wrong,
                     "reason": f"{wrong} wrong answer{'s' if wrong != 1 else ''} in {images} validation images: at "
                               f"least {MIN_CALIBRATION_WRONG} are needed (half to fit a temperature on, half to check "
                               "it on); with fewer, every right answer rewards sharpening and nothing held out can "
                               "show that a temperature is too low"}
    fitted = fit_temperature(valid.logits, valid.labels)
    check = _cross_fitted_nll(valid)
    report.update(fitted_temperature=fitted, wrong_answers=wrong, check=check)
    if at_search_bound(fitted):
        logger.warning("the temperature fit stopped at its search bound (T = %.3g, bounds %s): the validation "
                       "logits carry no usable confidence signal; the temperature is not applied", fitted,
                       TEMPERATURE_BOUNDS)
        report["warning"] = f"temperature at a search bound ({fitted:.3g})"
    reason = ""
    if quality["p_value"] >= ALPHA:
        reason = (f"the model is no better than chance on validation ({quality['correct']}/{quality['images']}, "
                  f"chance {quality['chance']:.2f}, p={quality['p_value']:.2g}): a temperature would only flatten "
                  "its guesses")
    elif at_search_bound(fitted):
        reason = f"the fitted temperature {fitted:.3g} is at a search bound {TEMPERATURE_BOUNDS}"
    elif check["held_out_nll_after"] >= check["held_out_nll_before"]:
        reason = (f"it does not help on held-out validation images (NLL {check['held_out_nll_before']:.4f} -> "
                  f"{check['held_out_nll_after']:.4f} when fitted on the other half)")
    temperature = 1.0 if reason else fitted
    report.update(applied=not reason, temperature=temperature)
    if reason:
        report["reason"] = reason
    return temperature, report


def _choose_score(valid: torch.Tensor, ood: torch.Tensor, temperature: float, requested: str) -> tuple[str, dict]:
    """The requested score, or with ``auto`` the one whose validation-vs-OOD AUROC is higher (ties: max prob)."""
    selection = {s: auroc(confidence_scores(valid, temperature, s), confidence_scores(ood, temperature, s))
                 for s in SCORE_TYPES}
    if requested != "auto":
        return requested, selection
    return max(SCORE_TYPES, key=lambda s: (selection[s], s == "max_probability")), selection


def _alternate(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(0, count, 2), torch.arange(1, count, 2)


def _too_few(valid: SplitLogits, ood_selection: torch.Tensor) -> str:
    images, ood = int(valid.labels.numel()), int(ood_selection.shape[0])
    if images < MIN_ABSTENTION_VALID:
        return (f"{images} validation images: at least {MIN_ABSTENTION_VALID} are needed to choose the rule on "
                "one half and check it on the other")
    if ood // 2 < MIN_ABSTENTION_OOD:
        return (f"{ood} non-dog selection images: at least {2 * MIN_ABSTENTION_OOD} are needed (half to choose, "
                "half to check); give more with --ood-dir")
    return ""


def decide_abstention(valid: SplitLogits, ood_selection: torch.Tensor, *, temperature: float, score: str,
                      accept_rate: float) -> tuple[AbstentionRule | None, dict[str, Any]]:
    """(the rule to serve or None, the ``abstention`` report): chosen on halves, checked on the other halves."""
    report: dict[str, Any] = {"target_accept_rate": accept_rate, "min_auroc": MIN_ABSTENTION_AUROC,
                              "min_reject_ood": MIN_ABSTENTION_REJECT,
                              "min_images": {"valid": MIN_ABSTENTION_VALID, "ood_selection": 2 * MIN_ABSTENTION_OOD}}
    reason = _too_few(valid, ood_selection)
    if reason:
        return None, {**report, "applied": False, "reason": reason}
    choose, check = halves(valid.labels)
    ood_choose, ood_check = _alternate(int(ood_selection.shape[0]))
    chosen, selection = _choose_score(valid.logits[choose], ood_selection[ood_choose], temperature, score)
    threshold = accept_threshold(confidence_scores(valid.logits[choose], temperature, chosen), accept_rate)
    held_in = confidence_scores(valid.logits[check], temperature, chosen)
    held_out = confidence_scores(ood_selection[ood_check], temperature, chosen)
    checked = auroc(held_in, held_out)
    report.update(score=chosen, auroc_choose=selection, auroc_check=checked,
                  accept_rate_check={"valid": float((held_in >= threshold).double().mean()),
                                     "ood": float((held_out >= threshold).double().mean())})
    if not checked >= MIN_ABSTENTION_AUROC:
        report.update(applied=False, reason=f"the {chosen} score does not separate held-out validation images from "
                                            f"non-dog images (AUROC {checked:.3f} < {MIN_ABSTENTION_AUROC}): "
                                            "every image is answered, with no abstention rule")
        return None, report
    rejected = 1.0 - report["accept_rate_check"]["ood"]
    if rejected < MIN_ABSTENTION_REJECT:
        report.update(applied=False, reason=f"the {chosen} rule would turn away only {rejected:.0%} of the held-out "
                                            f"non-dog images (at least {MIN_ABSTENTION_REJECT:.0%} are needed for it "
                                            "to be worth the answers it refuses): every image is answered, with no "
                                            "abstention rule")
        return None, report
    report.update(applied=True, threshold=threshold)
    return AbstentionRule(chosen, threshold, accept_rate), report


def _test_measures(report: dict[str, Any], test: SplitLogits, ood_report: torch.Tensor, temperature: float,
                   rule: AbstentionRule | None) -> None:
    """On the report set (test vs the non-dog report set): AUROC of each score, the chosen one's interval, and
    the accept rates when a rule is applied."""
    in_scores = {s: confidence_scores(test.logits, temperature, s) for s in SCORE_TYPES}
    out_scores = {s: confidence_scores(ood_report, temperature, s) for s in SCORE_TYPES}
    report["auroc_test_vs_ood"] = {s: auroc(in_scores[s], out_scores[s]) for s in SCORE_TYPES}
    if "score" in report:
        report["auroc_test_vs_ood_ci95"] = auroc_interval(in_scores[report["score"]], out_scores[report["score"]])
    if rule is not None:
        report["accept_rate"] = {"test": float(rule.accepts(in_scores[rule.score_type]).double().mean()),
                                 "ood": float(rule.accepts(out_scores[rule.score_type]).double().mean())}


def fit_serving(
    valid: SplitLogits, test: SplitLogits, ood_selection: torch.Tensor, ood_report: torch.Tensor, *,
    calibrate: bool, score: str, accept_rate: float, ood_source: str = "",
) -> ServingFit:
    """The temperature, then the abstention rule (``score`` ``none``: never abstain), each with its report."""
    temperature, calibration = decide_temperature(valid, calibrate=calibrate)
    calibration.update(valid=_calibration_measures(valid, temperature), test=_calibration_measures(test, temperature))
    fit = ServingFit(temperature=temperature, test=test, valid=valid, report={"calibration": calibration})
    if score == "none":
        return fit
    rule, abstention = decide_abstention(valid, ood_selection, temperature=temperature, score=score,
                                         accept_rate=accept_rate)
    abstention["ood_source"] = ood_source
    if ood_selection.shape[0] and ood_report.shape[0]:
        _test_measures(abstention, test, ood_report, temperature, rule)
    fit.abstention = rule
    fit.report["abstention"] = abstention
    return fit


def summary_line(report: dict[str, Any]) -> str:
    """One plain line for the log: temperature (or why none), test ECE, the abstention rule (or why none), TTA."""
    parts = []
    if "calibration" in report:
        cal = report["calibration"]
        if cal.get("applied"):
            test = cal["test"]
            parts.append(f"temperature={cal['temperature']:.4f} test_ece={test['ece_before']:.4f}"
                         f"->{test['ece_after']:.4f} test_nll={test['nll_before']:.4f}->{test['nll_after']:.4f}")
        else:
            parts.append(f"temperature not applied ({cal.get('reason', '')})")
    if "abstention" in report:
        abst = report["abstention"]
        if abst.get("applied"):
            parts.append(f"abstention={abst['score']} threshold={abst['threshold']:.4f} "
                         f"auroc_test_vs_ood={abst['auroc_test_vs_ood'][abst['score']]:.4f} "
                         f"accept_test={abst['accept_rate']['test']:.3f} accept_ood={abst['accept_rate']['ood']:.3f}")
        else:
            parts.append(f"no abstention rule ({abst.get('reason', '')})")
    if "tta" in report:
        tta = report["tta"]
        parts.append(f"tta={tta['mode']} test_acc={tta['test_acc']:.4f} (without {tta['test_acc_without_tta']:.4f}) "
                     f"cost_ratio={tta['end_to_end_cost_ratio']:.2f} (forward {tta['forward_cost_ratio']:.2f})")
    return "calibration: " + "; ".join(parts) if parts else ""
