"""The self-describing model artifact: ``model.pth`` (state_dict) + ``model_config.json``."""

from __future__ import annotations

import hashlib
import io
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from dogbreed import __version__
from dogbreed.core.abstention import AbstentionRule
from dogbreed.core.calibration import check_temperature
from dogbreed.core.constants import ARCHITECTURE, ARTIFACT_FORMAT_VERSION, CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError, state_dict_mismatch, torch_load_reason
from dogbreed.core.fileio import atomic_write, strict_json
from dogbreed.core.jsontext import JsonTextError, parse_json
from dogbreed.core.network import build_resnet50
from dogbreed.core.resnet import ResNet
from dogbreed.core.transforms import Preprocessing
from dogbreed.core.tta import check_tta_mode
from dogbreed.serving.model_schema import MAX_CONFIG_BYTES, REEXPORT, validate_model_config


@dataclass
class ModelConfig:
    """What a model dir says about itself: enough to rebuild, preprocess and name predictions."""

    class_names: list[str]
    preprocessing: Preprocessing
    architecture: str = ARCHITECTURE
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = ARTIFACT_FORMAT_VERSION
    # SHA-256 of model.pth's bytes: weights and config are two files, this ties them into one unit.
    weights_sha256: str | None = None
    # Optional (older artifacts lack them): logits are divided by ``temperature``; an image whose confidence
    # score is below the ``abstention`` threshold is answered "not confident"; ``tta`` views are averaged.
    temperature: float = 1.0
    abstention: AbstentionRule | None = None
    tta: str = "none"
    # What package --precision measured and chose (dogbreed.serving.precision); None: fp32, nothing measured.
    precision: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing.eval_dict(),  # serving inputs; the crop range is in hyperparameters
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "versions": self.versions,
            "temperature": self.temperature,
            "abstention": self.abstention.to_dict() if self.abstention else None,
            "tta": self.tta,
        }
        if self.weights_sha256:
            data["weights_sha256"] = self.weights_sha256
        if self.precision:
            data["precision"] = self.precision
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = CONFIG_FILENAME) -> "ModelConfig":
        """Validated against :mod:`dogbreed.serving.model_schema` first (one message naming the field)."""
        validate_model_config(data, source)
        config = cls(
            class_names=list(data["class_names"]),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            architecture=data.get("architecture", ARCHITECTURE),
            hyperparameters=data.get("hyperparameters", {}),
            metrics=data.get("metrics", {}),
            versions=data.get("versions", {}),
            format_version=int(data.get("format_version", ARTIFACT_FORMAT_VERSION)),
            weights_sha256=data.get("weights_sha256"),
            precision=data.get("precision"),
        )
        config.temperature, config.abstention, config.tta = _serving_fields(data, source)
        return config


def quality_warning(config: ModelConfig) -> str | None:
    """One line when training found this model no better than chance (``metrics.quality``), else None."""
    quality = config.metrics.get("quality")
    if not isinstance(quality, dict) or quality.get("better_than_chance") is not False:
        return None
    test = quality.get("test")
    test = test if isinstance(test, dict) else {}
    measured = (f" (test accuracy {test['acc']:.3f}, chance {test['chance']:.3f})"
                if isinstance(test.get("acc"), float) and isinstance(test.get("chance"), float) else "")
    return (f"warning: this model was no better than chance when trained{measured}: its answers are guesses; "
            "retrain it (more data, more epochs, pretrained weights) before relying on them")


def _serving_fields(data: dict[str, Any], source: str) -> tuple[float, AbstentionRule | None, str]:
    """temperature, abstention and tta, each checked, with the defaults of an artifact that predates them; a bad
    one is refused like the schema's fields: the file, the field's own message, what to do."""
    try:
        temperature = check_temperature(data.get("temperature", 1.0))
        raw = data.get("abstention")
        abstention = AbstentionRule.from_dict(raw) if raw is not None else None
        tta = check_tta_mode(data.get("tta", "none"))
    except (ValueError, TypeError) as exc:  # each message names its field
        raise ArtifactError(f"{source}: {exc}: {REEXPORT}") from exc
    return temperature, abstention, tta


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# Distributions whose versions are recorded in model_config.json (read from package metadata: recording
# them must not import the training stack into a serving process).
RECORDED_DISTRIBUTIONS = {"torch": "torch", "torchvision": "torchvision", "pytorch_lightning": "pytorch-lightning",
                          "torchmetrics": "torchmetrics", "pillow": "Pillow"}


def library_versions() -> dict[str, str]:
    """Versions that determine how the artifact behaves, recorded for reproducibility."""
    versions = {"dogbreed": __version__, "python": platform.python_version()}
    for key, distribution in RECORDED_DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    versions["torch"] = torch.__version__  # the running build (e.g. "2.6.0+cu124"), not only the wheel's name
    commit = _git_commit()
    if commit:
        versions["git_commit"] = commit
    return versions


def save_artifact(model_dir: Path | str, net: torch.nn.Module, config: ModelConfig) -> Path:
    """Write weights then config, as one unit: the config records the SHA-256 of the weights it belongs to.

    Each file is written atomically; an interruption between the two leaves new weights with the old config,
    which :func:`load_artifact` refuses (hash mismatch) instead of serving them under the wrong class names.
    """
    model_dir = Path(model_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights = buffer.getvalue()
    config.weights_sha256 = hashlib.sha256(weights).hexdigest()
    atomic_write(model_dir / WEIGHTS_FILENAME, lambda fh: fh.write(weights), needed_bytes=len(weights))
    payload = dict(config.to_dict(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    text = strict_json(payload, indent=2, sort_keys=False) + "\n"
    atomic_write(model_dir / CONFIG_FILENAME, lambda fh: fh.write(text.encode("utf-8")))
    return model_dir


def read_model_config(model_dir: Path | str) -> ModelConfig:
    path = Path(model_dir) / CONFIG_FILENAME
    if not path.is_file():
        raise ArtifactError(
            f"{path} not found: a model dir needs {WEIGHTS_FILENAME} and {CONFIG_FILENAME}, "
            "as written by python -m entry_points.train --model-dir"
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ArtifactError(f"{path} is {path.stat().st_size} bytes, over {MAX_CONFIG_BYTES}: not a model config")
    try:
        data = parse_json(path.read_bytes())
    except JsonTextError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}): {REEXPORT}") from exc
    return ModelConfig.from_dict(data, source=str(path))


def _read_state_dict(weights: Path, config: ModelConfig, map_location: str | torch.device) -> dict[str, Any]:
    data = weights.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, empty, zip or pickle errors: all mean "not loadable"
        raise ArtifactError(f"{weights} cannot be loaded as a state_dict ({torch_load_reason(exc)}): "
                            f"{REEXPORT}") from exc
    if config.weights_sha256 and hashlib.sha256(data).hexdigest() != config.weights_sha256:
        raise ArtifactError(f"{weights} does not belong to {CONFIG_FILENAME} (its SHA-256 differs from the one the "
                            "config records: an export was interrupted between the two files, or one was replaced): "
                            f"{REEXPORT}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{weights} is not a state_dict (a dict of tensors), got {type(state).__name__}: "
                            f"{REEXPORT}")
    return state


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """No NaN or inf in any floating tensor. CPU tensors are checked with NumPy: ~320 small torch ops each wake the
    intra-op thread pool, which cost seconds of the cold start on a busy 2-core machine (0.1 s with NumPy)."""
    for value in tensors:
        if not value.is_floating_point():
            continue
        if value.device.type == "cpu" and value.dtype in _NUMPY_FLOATS:
            if not np.isfinite(value.detach().numpy()).all():
                return False
        elif not bool(torch.isfinite(value).all()):
            return False
    return True


def load_artifact(model_dir: Path | str, map_location: str | torch.device = "cpu") -> tuple[ResNet, ModelConfig]:
    """Rebuild the network from a model dir, weights loaded with ``weights_only=True``, in eval mode.

    Every way a model dir can be broken is an :class:`ArtifactError` naming the file: a config that fails the
    schema, weights that are truncated, pickled objects, another model's (hash), the wrong shapes, or NaN/inf.
    """
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    weights = model_dir / WEIGHTS_FILENAME
    if not weights.is_file():
        raise ArtifactError(f"{weights} not found: the model dir is incomplete, re-export the model")
    state = _read_state_dict(weights, config, map_location)
    head = state.get("fc.weight")
    if head is not None and head.dim() == 2 and head.shape[0] != config.num_classes:
        raise ArtifactError(f"{weights} has a {head.shape[0]}-class head but {CONFIG_FILENAME} names "
                            f"{config.num_classes} classes: they come from different models, {REEXPORT}")
    with torch.device("meta"):  # no random initialisation: every tensor comes from the state_dict (assign)
        net = build_resnet50(config.num_classes)
    try:
        net.load_state_dict(state, assign=True)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights} does not match {CONFIG_FILENAME} ({state_dict_mismatch(exc)}): "
                            f"{REEXPORT}") from exc
    if not all_finite(state.values()):
        raise ArtifactError(f"{weights} contains NaN or infinite values (training diverged): retrain with a lower --lr")
    return net.to(map_location).eval(), config
