"""Prediction from a model dir: decode -> the artifact's own preprocessing -> model (with the artifact's
test-time augmentation) -> logits / temperature -> top-k, and the abstention decision."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, cast, overload

import torch
from PIL import Image

from dogbreed.core.abstention import confidence_scores
from dogbreed.core.calibration import calibrated_probabilities
from dogbreed.core.errors import ConfigError
from dogbreed.core.image_policy import ImagePolicy
from dogbreed.core.images import ImageSource
from dogbreed.core.transforms import decode_eval_image
from dogbreed.core.tta import build_tta_transform, tta_logits
from dogbreed.serving.answers import Answer, BreedPrediction, Rejection
from dogbreed.serving.artifact import ModelConfig, load_artifact, read_model_config
from dogbreed.serving.precision import autocast, check_precision, load_int8, recorded_precision, runnable_precision
from dogbreed.serving.requests import ServingLimits

__all__ = ["Answer", "BreedPrediction", "Predictor", "default_device"]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: torch.device | str | None) -> torch.device:
    """A device this machine has: None means cuda when available, else cpu. Raises ConfigError otherwise."""
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"device {str(device)!r} is not a device name: use cpu or cuda (cuda:N)") from exc
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {str(device)!r}: this machine has no CUDA GPU visible to torch: use cpu")
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s), "
                              f"cuda:0..cuda:{count - 1}")
    elif resolved.type != "cpu":
        raise ConfigError(f"device {str(device)!r} is not supported here: use cpu or cuda")
    return resolved


class Predictor:
    """Loads a model dir once; predicts breeds for image files, bytes or PIL images.

    The artifact decides the temperature, the abstention threshold, the TTA mode and the precision; ``tta``
    overrides the mode (e.g. ``"none"`` for the fastest answer), ``precision`` the precision (fp32, bf16 or int8:
    :mod:`dogbreed.serving.precision`; ``net`` is already the int8 network when it is int8). ``policy``: which
    images are accepted (default: the served input policy with the ``DOGBREED_*`` limits, as the endpoint applies
    it).
    """

    def __init__(self, net: torch.nn.Module, config: ModelConfig, device: torch.device | None = None,
                 tta: str | None = None, policy: ImagePolicy | None = None, precision: str = "fp32") -> None:
        self.policy = policy if policy is not None else ServingLimits.from_env().image_policy
        self.device = device or default_device()
        self.net = net.to(self.device).to(memory_format=torch.channels_last).eval()
        self.config = config
        self.tta = tta if tta is not None else config.tta
        self.transform = build_tta_transform(config.preprocessing, self.tta)
        self.precision = check_precision(precision)

    @classmethod
    def from_model_dir(cls, model_dir: Path | str, device: torch.device | str | None = None,
                       tta: str | None = None, precision: str | None = None) -> "Predictor":
        """``precision`` None: what the artifact records, else fp32; bf16 or int8 where this device cannot run
        them well serves fp32 (one log line says why)."""
        device = resolve_device(device)
        config = read_model_config(model_dir)
        wanted = check_precision(precision) if precision is not None else recorded_precision(config.precision)
        chosen = runnable_precision(wanted, device)
        if chosen == "int8":
            if recorded_precision(config.precision) != "int8":
                raise ConfigError(f"precision int8: {model_dir} has no int8 weights; make them with python -m "
                                  "entry_points.package --precision int8 --data-dir DATA --model-dir MODEL_DIR")
            assert config.precision is not None
            net = load_int8(model_dir, config.precision, config.weights_sha256, config.num_classes)
            return cls(net, config, device, tta=tta, precision=chosen)
        net, config = load_artifact(model_dir, map_location=device)
        return cls(net, config, device, tta=tta, precision=chosen)

    @property
    def class_names(self) -> list[str]:
        return self.config.class_names

    @property
    def temperature(self) -> float:
        return self.config.temperature

    def decode(self, image: ImageSource) -> Image.Image:
        """The shared eval decode under this predictor's input policy (strict: a truncated file is refused)."""
        return decode_eval_image(image, self.config.preprocessing, policy=self.policy)

    def preprocess(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """Decode (the shared eval decode, the input policy) and transform into a batch (N, 3, H, W)."""
        return self.transform_batch([self.decode(image) for image in images])

    def transform_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Already decoded RGB images -> the model's input batch."""
        return torch.stack([self.transform(image) for image in images])

    @torch.inference_mode()
    def predict_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) for a preprocessed batch, averaged over the TTA views; not yet divided by T."""
        batch = batch.to(self.device, non_blocking=True)
        with autocast(self.precision, self.device):
            logits = tta_logits(self.net, batch, self.tta, self.config.preprocessing.image_size)
        return logits.float().cpu()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``softmax(logits / T)`` with the artifact's temperature."""
        return calibrated_probabilities(logits, self.temperature)

    def predict_proba(self, batch: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities for an already preprocessed batch (N, 3, H, W)."""
        return self.probabilities(self.predict_logits(batch))

    def top_k(self, probabilities: torch.Tensor, k: int = 5) -> list[list[BreedPrediction]]:
        k = max(1, min(k, probabilities.shape[1]))
        values, indices = probabilities.topk(k, dim=1)
        return [
            [BreedPrediction(self.class_names[i], int(i), float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
            for row_p, row_i in zip(values, indices)
        ]

    def answers(self, logits: torch.Tensor, k: int = 5) -> list[Answer]:
        """Top-k breeds plus the abstention decision, per row of ``logits``."""
        predictions = self.top_k(self.probabilities(logits), k)
        rule = self.config.abstention
        if rule is None:
            return [Answer(row, confident=None) for row in predictions]
        scores = confidence_scores(logits, self.temperature, rule.score_type)
        return [
            Answer(row, confident=True) if score >= rule.threshold
            else Answer(row, confident=False, rejection=Rejection(float(score), rule.threshold, rule.score_type))
            for row, score in zip(predictions, scores.tolist())
        ]

    @overload
    def predict(self, images: ImageSource, k: int = 5) -> list[BreedPrediction]: ...  # type: ignore[overload-overlap]

    @overload
    def predict(self, images: Sequence[ImageSource], k: int = 5) -> list[list[BreedPrediction]]: ...

    def predict(
        self, images: ImageSource | Sequence[ImageSource], k: int = 5
    ) -> list[BreedPrediction] | list[list[BreedPrediction]]:
        """Top-k breeds, best first: for one image (a path, bytes or a PIL image) a list of predictions, for a
        list of images one such list per image. A bad image raises :class:`ImageDecodeError` naming it."""
        if is_single_image(images):
            return self.predict_answers([cast(ImageSource, images)], k)[0].predictions
        return [answer.predictions for answer in self.predict_answers(cast(Sequence[ImageSource], images), k)]

    def predict_answers(self, images: Sequence[ImageSource], k: int = 5) -> list[Answer]:
        """Per image: top-k breeds, ``confident`` and, when not confident, the rejection."""
        batch = list(images)
        if not batch:
            return []
        return self.answers(self.predict_logits(self.preprocess(batch)), k)


def is_single_image(images: object) -> bool:
    """One image rather than a sequence of them (a str is a path, not a sequence of characters)."""
    return isinstance(images, (str, Path, bytes, bytearray, Image.Image))
