"""Abstention: a confidence score per image, the threshold that keeps a target share of in-distribution
images, and AUROC of in- vs out-of-distribution scores.

Two scores, both computed from the temperature-scaled logits, both "higher = more like the training data":
``max_probability`` (the calibrated top-1 probability) and ``energy`` (``T * logsumexp(logits / T)``, the
negative free energy of Liu et al. 2020). Training measures both and stores the better one in the artifact.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from dogbreed.core.constants import ABSTENTION_SCORES as SCORE_TYPES


def confidence_scores(logits: torch.Tensor, temperature: float, score_type: str) -> torch.Tensor:
    """One score per row of ``logits`` (N, C); higher means more confident."""
    scaled = logits.double() / temperature
    if score_type == "max_probability":
        return torch.softmax(scaled, dim=1).max(dim=1).values
    if score_type == "energy":
        return temperature * torch.logsumexp(scaled, dim=1)
    raise ValueError(f"unknown score type {score_type!r}: use one of {', '.join(SCORE_TYPES)}")


def auroc(in_scores: torch.Tensor, out_scores: torch.Tensor) -> float:
    """Probability that an in-distribution image scores above an out-of-distribution one (ties count half):
    the area under the ROC curve, as the Mann-Whitney statistic."""
    if in_scores.numel() == 0 or out_scores.numel() == 0:
        return float("nan")
    inside, outside = in_scores.double().reshape(-1, 1), out_scores.double().reshape(1, -1)
    wins = (inside > outside).double().sum() + 0.5 * (inside == outside).double().sum()
    return float(wins / (inside.numel() * outside.numel()))


def accept_threshold(scores: torch.Tensor, accept_rate: float) -> float:
    """The largest threshold that accepts (score >= threshold) at least ``accept_rate`` of ``scores``."""
    if not 0 < accept_rate <= 1:
        raise ValueError(f"accept rate must be in (0, 1], got {accept_rate}")
    ordered = scores.double().sort(descending=True).values
    keep = max(1, math.ceil(accept_rate * ordered.numel() - 1e-9))
    return float(ordered[keep - 1])


@dataclass(frozen=True)
class AbstentionRule:
    """Reject an image when its ``score_type`` score is below ``threshold`` (stored in the artifact)."""

    score_type: str
    threshold: float
    target_accept_rate: float

    def __post_init__(self) -> None:
        if self.score_type not in SCORE_TYPES:
            raise ValueError(f"abstention score must be one of {', '.join(SCORE_TYPES)}, got {self.score_type!r}")
        if type(self.threshold) is int and abs(self.threshold) > sys.float_info.max:  # no float holds it
            raise ValueError(f"abstention threshold must be a finite number, got an integer of "
                             f"{len(str(abs(self.threshold)))} digits")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise ValueError(f"abstention threshold must be a finite number, got {self.threshold!r}")
        if isinstance(self.target_accept_rate, bool) or not isinstance(self.target_accept_rate, (int, float)) \
                or not 0 < self.target_accept_rate <= 1:
            raise ValueError(f"abstention target_accept_rate must be in (0, 1], got {self.target_accept_rate!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score_type, "threshold": self.threshold, "target_accept_rate": self.target_accept_rate}

    @classmethod
    def from_dict(cls, data: Any) -> "AbstentionRule":
        if not isinstance(data, dict) or not {"score", "threshold"} <= set(data):
            raise ValueError(f'abstention must be an object with "score" and "threshold", got {data!r}')
        return cls(score_type=data["score"], threshold=data["threshold"],
                   target_accept_rate=data.get("target_accept_rate", 0.95))

    def accepts(self, scores: torch.Tensor) -> torch.Tensor:
        return scores >= self.threshold
