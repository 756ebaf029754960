"""Temperature scaling (Guo et al. 2017) and the calibration measures: ECE and NLL.

Torch only: training fits the temperature on validation logits, serving divides every logit by it, so a
served "Beagle 0.97" is right about 97% of the time on data like the validation split.
"""

from __future__ import annotations

import math
import sys

import torch
from torch.nn import functional as F

ECE_BINS = 15
TEMPERATURE_BOUNDS = (1e-2, 1e2)  # where the fit stops: a temperature there is a warning, not a calibration


def check_temperature(value: object, where: str = "temperature") -> float:
    """A temperature must be a finite positive number; returns it as a float, else raises ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:  # no float holds it
        raise ValueError(f"{where} must be a finite number > 0, got an integer of {len(str(abs(value)))} digits")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where} must be a finite number > 0, got {value!r}")
    return float(value)


def calibrated_probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(logits / T)`` in float32 (float64 stays float64)."""
    logits = logits.float() if logits.dtype != torch.float64 else logits
    return torch.softmax(logits / temperature, dim=-1)


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean NLL of ``labels`` under ``softmax(logits / T)``."""
    return float(F.cross_entropy(logits.double() / temperature, labels.long()))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> float:
    """The temperature minimising the NLL of ``labels`` (LBFGS on log T, so T stays positive).

    One scalar for all classes: it changes confidence, never the ranking (accuracy is unchanged).
    """
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError(f"need (N, C) logits and N labels, got {tuple(logits.shape)} and {tuple(labels.shape)}")
    with torch.inference_mode(False), torch.enable_grad():  # logits may come from an inference-mode pass
        logits = logits.detach().to(torch.float64, copy=True)
        labels = labels.detach().to(torch.long, copy=True)
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(logits / log_t.exp(), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        temperature = float(log_t.detach().exp())
    # A degenerate split (e.g. every logit equal) leaves LBFGS where it started or sends T to an extreme.
    low, high = TEMPERATURE_BOUNDS
    return min(max(temperature, low), high) if math.isfinite(temperature) else 1.0


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per confidence bin (equal width over [0, 1], right-closed): count, mean confidence and accuracy."""
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    # bucketize with right=False puts a value equal to an edge in the bin below it: (lo, hi] bins; 0 goes to bin 0.
    index = (torch.bucketize(confidence.double(), edges, right=False) - 1).clamp(0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        rows.append({
            "lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
            "confidence": float(confidence.double()[mask].mean()) if count else 0.0,
            "accuracy": float(correct[mask].mean()) if count else 0.0,
        })
    return rows


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over ``bins`` equal-width confidence bins."""
    total = probabilities.shape[0]
    if total == 0:
        return 0.0
    return sum(row["count"] / total * abs(row["accuracy"] - row["confidence"])
               for row in reliability_bins(probabilities, labels, bins))
