"""How far a run's figures can be trusted: an exact binomial test of accuracy against chance, and 95% bootstrap
intervals for test accuracy, macro-F1, ECE and the abstention AUROC.

A 60-image test split that scores 0.983 is compatible with anything from about 0.91 to 1.0; a 24-image split at
0.33 on three breeds is a coin. These numbers go into ``metrics.json`` (``quality``, ``test.acc_ci95`` ...) and
into the run summary, so the reader sees the uncertainty next to the figure.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

ALPHA = 0.05  # one-sided significance level of the test against chance
CONFIDENCE = 0.95  # bootstrap interval coverage
RESAMPLES = 1000
BOOTSTRAP_SEED = 0


# --- better than chance? ------------------------------------------------------------------------------------------

def binomial_p_value(successes: int, trials: int, chance: float) -> float:
    """One-sided exact binomial test: P(X >= successes) for X ~ Binomial(trials, chance)."""
    if trials <= 0:
        return 1.0
    if not 0 < chance < 1:
        return 0.0 if chance <= 0 and successes > 0 else 1.0
    log_p, log_q = math.log(chance), math.log1p(-chance)
    terms = [math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p
             + (trials - k) * log_q for k in range(max(0, successes), trials + 1)]
    if not terms:
        return 0.0
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def chance_level(class_counts: list[int]) -> float:
    """The accuracy a model reaches without looking: the larger of 1 / classes and the majority class's share."""
    total = sum(class_counts)
    if not class_counts or total == 0:
        return 0.0
    return max(1.0 / len(class_counts), max(class_counts) / total)


def split_quality(correct: int, class_counts: list[int]) -> dict[str, float | int]:
    """Accuracy of one split against its chance level, with the binomial p-value."""
    images = sum(class_counts)
    chance = chance_level(class_counts)
    return {"acc": correct / images if images else float("nan"), "correct": correct, "images": images,
            "chance": chance, "p_value": binomial_p_value(correct, images, chance)}


def quality_report(splits: dict[str, tuple[int, list[int]]], alpha: float = ALPHA) -> dict:
    """``{"method": "...", "alpha", "<split>": {acc, correct, images, chance, p_value}, "better_than_chance": bool}``.

    ``splits`` maps a split name to (correct answers, images per class). Better than chance means every given
    split's accuracy is significantly above its chance level (one-sided exact binomial test at ``alpha``). The
    method is not under "test": that key is the test split's."""
    report: dict = {"method": f"one-sided exact binomial test against chance (max of 1/classes and the majority "
                              f"class's share), alpha {alpha}", "alpha": alpha}
    for name, (correct, counts) in splits.items():
        report[name] = split_quality(correct, counts)
    measured = [report[name] for name in splits if report[name]["images"]]
    report["better_than_chance"] = bool(measured) and all(row["p_value"] < alpha for row in measured)
    return report


def quality_line(report: dict) -> str:
    """The summary line: always contains the word "chance"."""
    parts = [f"{name} {row['correct']}/{row['images']} (chance {row['chance']:.2f}, p={row['p_value']:.2g})"
             for name, row in report.items() if isinstance(row, dict)]
    verdict = ("better than chance" if report["better_than_chance"] else
               "NOT better than chance: the model is written, but its answers are no better than guessing")
    return f"quality: {verdict}: " + ", ".join(parts)


# --- bootstrap intervals ------------------------------------------------------------------------------------------

def _indices(count: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def _percentiles(values: np.ndarray, confidence: float = CONFIDENCE) -> list[float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def bootstrap_interval(statistic: Callable[[np.ndarray], np.ndarray], count: int, *, resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """Percentile interval of ``statistic`` over resamples of ``count`` items; ``statistic`` takes the (resamples,
    count) index array and returns one value per resample. None without items."""
    if count == 0:
        return None
    return _percentiles(statistic(_indices(count, resamples, seed)))


def pairs_from_confusion(confusion: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) per test image, rebuilt from the confusion matrix (rows = true)."""
    matrix = confusion.long().cpu().numpy()
    true, predicted = np.nonzero(matrix)
    repeats = matrix[true, predicted]
    return np.repeat(true, repeats), np.repeat(predicted, repeats)


def macro_f1(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Macro-F1 per row of (R, N) label arrays, over the classes present in the labels or the predictions
    (as torchmetrics averages)."""
    rows = np.arange(true.shape[0])[:, None]
    tp = np.zeros((true.shape[0], classes))
    np.add.at(tp, (np.broadcast_to(rows, true.shape), true), (true == predicted).astype(float))
    support = np.zeros_like(tp)
    np.add.at(support, (np.broadcast_to(rows, true.shape), true), 1.0)
    guessed = np.zeros_like(tp)
    np.add.at(guessed, (np.broadcast_to(rows, true.shape), predicted), 1.0)
    denominator = support + guessed  # 2 tp + fp + fn
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=present)
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def classification_intervals(confusion: torch.Tensor, *, resamples: int = RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> dict[str, list[float]]:
    """``{"acc_ci95": [low, high], "f1_macro_ci95": [low, high]}`` by resampling the test images."""
    true, predicted = pairs_from_confusion(confusion)
    if true.size == 0:
        return {}
    classes = int(confusion.shape[0])
    acc = bootstrap_interval(lambda idx: (true[idx] == predicted[idx]).mean(axis=1), true.size,
                             resamples=resamples, seed=seed)
    f1 = bootstrap_interval(lambda idx: macro_f1(true[idx], predicted[idx], classes), true.size,
                            resamples=resamples, seed=seed)
    return {"acc_ci95": acc or [], "f1_macro_ci95": f1 or []}


def ece_interval(confidence: torch.Tensor, correct: torch.Tensor, bins: int, *, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """Interval of the expected calibration error (equal-width bins, right-closed) over resampled images."""
    conf = confidence.double().numpy()
    hit = correct.double().numpy()
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)

    def statistic(idx: np.ndarray) -> np.ndarray:
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
        gap = np.zeros((idx.shape[0], bins))
        np.add.at(gap, (rows, index[idx]), hit[idx] - conf[idx])
        return np.abs(gap).sum(axis=1) / idx.shape[1]

    return bootstrap_interval(statistic, conf.size, resamples=resamples, seed=seed)


def auroc_interval(in_scores: torch.Tensor, out_scores: torch.Tensor, *, resamples: int = RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """Interval of AUROC (in- vs out-of-distribution), resampling each set on its own."""
    inside, outside = in_scores.double().numpy(), out_scores.double().numpy()
    if inside.size == 0 or outside.size == 0:
        return None
    wins = (inside[:, None] > outside[None, :]) + 0.5 * (inside[:, None] == outside[None, :])
    rng = np.random.default_rng(seed)
    weight_in = np.stack([np.bincount(rng.integers(0, inside.size, inside.size), minlength=inside.size)
                          for _ in range(resamples)])
    weight_out = np.stack([np.bincount(rng.integers(0, outside.size, outside.size), minlength=outside.size)
                           for _ in range(resamples)])
    values = ((weight_in @ wins) * weight_out).sum(axis=1) / (inside.size * outside.size)
    return _percentiles(values)


def with_interval(value: float, interval: list[float] | None) -> str:
    """``0.983 [0.93, 1.00]``."""
    shown = f"{value:.3f}"
    return shown if not interval else f"{shown} [{interval[0]:.2f}, {interval[1]:.2f}]"
