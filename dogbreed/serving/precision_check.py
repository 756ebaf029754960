"""Reduce a model dir's precision only where it keeps the answers: ``package --precision bf16|int8``.

The fp32 and the reduced model both run over held-out images (the validation split); below
:data:`MIN_AGREEMENT` top-1 agreement the reduced model is refused with one line that gives the numbers, and
nothing is written. Accepted, the agreement and the largest probability change are recorded in
``model_config.json`` (``"precision"``), with ``model_int8.pth`` next to ``model.pth`` for int8. int8's activation
ranges are calibrated on training images, so the agreement is measured on images the calibration never saw.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from dogbreed.core.constants import CONFIG_FILENAME, INT8_WEIGHTS_FILENAME
from dogbreed.core.errors import ConfigError, ImageDecodeError
from dogbreed.core.fileio import atomic_write, strict_json
from dogbreed.serving.artifact import ModelConfig, read_model_config
from dogbreed.serving.precision import INT8_ENGINE, check_precision, quantize_int8, save_int8
from dogbreed.serving.predictor import Predictor

logger = logging.getLogger(__name__)

MIN_AGREEMENT = 0.995
BATCH_SIZE = 16
CALIBRATION_IMAGES = 256  # activation ranges settle after a few hundred images (ResNet50, per-tensor)


class PrecisionRefused(ConfigError):
    """The reduced model disagrees with fp32 too often to serve."""


@dataclass(frozen=True)
class Agreement:
    """fp32 vs a reduced precision on the same images."""

    precision: str
    images: int
    agreeing: int
    max_abs_delta_p: float

    @property
    def agreement(self) -> float:
        return self.agreeing / self.images if self.images else 0.0

    def line(self) -> str:
        return (f"{self.precision} vs fp32 on {self.images} held-out image(s): top-1 agreement {self.agreement:.2%} "
                f"({self.agreeing}/{self.images}), max |delta p| {self.max_abs_delta_p:.4f}")

    def require(self, minimum: float = MIN_AGREEMENT) -> "Agreement":
        if self.images == 0 or self.agreement < minimum:
            raise PrecisionRefused(f"refused: {self.line()}, below the {minimum:.1%} required; serve fp32 "
                                   "(package --precision fp32) or check the model")
        return self


def image_batches(predictor: Predictor, paths: Sequence[Path], batch_size: int = BATCH_SIZE,
                  ) -> Iterator[torch.Tensor]:
    """Preprocessed batches of the images in ``paths`` (the artifact's eval transform); unreadable files skipped."""
    pending: list[torch.Tensor] = []
    for path in paths:
        try:
            pending.append(predictor.preprocess([path]))
        except ImageDecodeError as exc:
            logger.warning("skipped %s: %s", path, str(exc).splitlines()[0])
            continue
        if len(pending) == batch_size:
            yield torch.cat(pending)
            pending = []
    if pending:
        yield torch.cat(pending)


def measure_agreement(reference: Predictor, reduced: Predictor, batches: Iterator[torch.Tensor],
                      progress: Callable[[int], None] | None = None) -> Agreement:
    """Top-1 agreement and the largest |calibrated probability difference| of ``reduced`` against ``reference``."""
    images = agreeing = 0
    worst = 0.0
    for batch in batches:
        expected = reference.predict_proba(batch)
        got = reduced.predict_proba(batch)
        agreeing += int((expected.argmax(1) == got.argmax(1)).sum())
        worst = max(worst, float((expected - got).abs().max()))
        images += batch.shape[0]
        if progress is not None:
            progress(images)
    return Agreement(reduced.precision, images, agreeing, worst)


def write_precision_record(model_dir: Path, record: dict[str, Any]) -> ModelConfig:
    """Set ``"precision"`` in ``model_config.json``, every other field kept as written (atomic rewrite)."""
    path = model_dir / CONFIG_FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data["precision"] = record
    ModelConfig.from_dict(data, source=str(path))  # the record passes the schema before it is written
    text = strict_json(data, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return read_model_config(model_dir)


def reduce_model_dir(model_dir: Path | str, precision: str, evaluation: Sequence[Path],
                     calibration: Sequence[Path] = (), minimum: float = MIN_AGREEMENT) -> Agreement:
    """Measure ``precision`` against fp32 on ``evaluation`` images and record it in the model dir when it agrees
    on at least ``minimum`` of them (int8: quantized with ``calibration`` images first). Raises
    :class:`PrecisionRefused` (nothing written) otherwise."""
    model_dir = Path(model_dir)
    precision = check_precision(precision)
    reference = Predictor.from_model_dir(model_dir, device="cpu", tta="none", precision="fp32")
    if precision == "fp32":
        write_precision_record(model_dir, {"mode": "fp32"})
        return Agreement("fp32", 0, 0, 0.0)
    net = reference.net
    if precision == "int8":
        if not calibration:
            raise ConfigError("int8 needs calibration images: pass a --data-dir with a train split")
        if not reference.config.weights_sha256:
            raise ConfigError(f"{model_dir}/{CONFIG_FILENAME} records no weights_sha256 to tie int8 weights to: "
                              "re-export the model with python -m entry_points.train --model-dir")
        print(f"int8: calibrating activation ranges on {len(calibration)} training image(s)", flush=True)
        net = quantize_int8(reference.net, image_batches(reference, calibration))
    reduced = Predictor(net, reference.config, torch.device("cpu"), tta="none", precision=precision)
    print(f"{precision}: comparing with fp32 on {len(evaluation)} validation image(s)", flush=True)
    agreement = measure_agreement(reference, reduced, image_batches(reference, evaluation)).require(minimum)
    record: dict[str, Any] = {"mode": precision, "agreement": round(agreement.agreement, 6),
                              "max_abs_delta_p": round(agreement.max_abs_delta_p, 6), "images": agreement.images,
                              "measured_on": "validation split", "tta": "none"}
    if precision == "int8":
        record.update(calibration_images=len(calibration), engine=INT8_ENGINE, weights=INT8_WEIGHTS_FILENAME,
                      weights_sha256=save_int8(model_dir, net),
                      source_weights_sha256=reference.config.weights_sha256)
    write_precision_record(model_dir, record)
    return agreement


def spread(paths: Sequence[Path], count: int = CALIBRATION_IMAGES) -> list[Path]:
    """At most ``count`` of ``paths``, evenly spaced (a class-sorted split gives every class its share)."""
    if len(paths) <= count:
        return list(paths)
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]
