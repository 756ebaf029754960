"""What a prediction answers per image: the top-k breeds, whether the model is confident, and, when it is
not, a top-level rejection saying why. One shape for every output (CLI text and JSON, endpoint JSON).

A model without an abstention rule (training found that no score separated dogs from non-dog images on held-out
data, or abstention was turned off) cannot say whether it is confident: its answers carry ``"confident": null``
and ``"abstention"`` saying that no rule is set, never ``"confident": true``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

REJECTION_REASON = ("no breed clears the confidence threshold: the image may not show a dog, or shows a breed "
                    "or a kind of photo the model was not trained on")

NO_RULE = ("no abstention rule is set for this model: every image gets its best guesses, including images that "
           "are not dogs")


@dataclass(frozen=True)
class BreedPrediction:
    breed: str
    index: int
    probability: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Rejection:
    """Why an image was not answered with confidence: its score against the artifact's threshold."""

    score: float
    threshold: float
    score_type: str
    reason: str = REJECTION_REASON

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "score": self.score, "threshold": self.threshold, "score_type": self.score_type}


@dataclass(frozen=True)
class Answer:
    """The answer for one image. ``confident`` is None when the artifact has no abstention rule."""

    predictions: list[BreedPrediction]
    confident: bool | None = None
    rejection: Rejection | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"confident": true, "predictions": [...]}``, plus ``"rejection": {...}`` when not confident, or
        ``{"confident": null, "abstention": NO_RULE, "predictions": [...]}`` without a rule."""
        payload: dict[str, Any] = {"confident": self.confident}
        if self.confident is None:
            payload["abstention"] = NO_RULE
        payload["predictions"] = [p.to_dict() for p in self.predictions]
        if self.rejection is not None:
            payload["rejection"] = self.rejection.to_dict()
        return payload

    def to_text(self) -> str:
        """One line: the breeds, prefixed by the rejection when there is one."""
        breeds = ", ".join(f"{p.breed} ({p.index}) {p.probability:.3f}" for p in self.predictions)
        if self.rejection is None:
            return breeds
        r = self.rejection
        return (f"NOT CONFIDENT ({r.score_type} {r.score:.3f} < threshold {r.threshold:.3f}: no breed clears "
                f"the confidence threshold); best guesses: {breeds}")
