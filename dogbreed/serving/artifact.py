"""The self-describing model artifact: ``model.pth`` (state_dict) + ``model_config.json``."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torchvision.models import ResNet

from dogbreed import __version__
from dogbreed.core.abstention import AbstentionRule
from dogbreed.core.calibration import check_temperature
from dogbreed.core.constants import ARCHITECTURE, ARTIFACT_FORMAT_VERSION, CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError
from dogbreed.core.fileio import atomic_write
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.core.tta import check_tta_mode


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
    # Optional (older artifacts lack them): logits are divided by ``temperature``; an image whose confidence
    # score is below the ``abstention`` threshold is answered "not confident"; ``tta`` views are averaged.
    temperature: float = 1.0
    abstention: AbstentionRule | None = None
    tta: str = "none"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "preprocessing": self.preprocessing.to_dict(),
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "versions": self.versions,
            "temperature": self.temperature,
            "abstention": self.abstention.to_dict() if self.abstention else None,
            "tta": self.tta,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        try:
            config = cls(
                class_names=list(data["class_names"]),
                preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                architecture=data.get("architecture", ARCHITECTURE),
                hyperparameters=data.get("hyperparameters", {}),
                metrics=data.get("metrics", {}),
                versions=data.get("versions", {}),
                format_version=int(data.get("format_version", ARTIFACT_FORMAT_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{CONFIG_FILENAME} is incomplete or malformed ({exc!r})") from exc
        config.temperature, config.abstention, config.tta = _serving_fields(data)
        if config.architecture != ARCHITECTURE:
            raise ArtifactError(f"unsupported architecture {config.architecture!r}: "
                                f"this dogbreed serves {ARCHITECTURE}")
        if config.format_version > ARTIFACT_FORMAT_VERSION:
            raise ArtifactError(
                f"artifact format {config.format_version} is newer than this dogbreed understands "
                f"({ARTIFACT_FORMAT_VERSION}): upgrade dogbreed"
            )
        return config


def _serving_fields(data: dict[str, Any]) -> tuple[float, AbstentionRule | None, str]:
    """temperature, abstention and tta, each checked, with the defaults of an artifact that predates them."""
    field_name = "temperature"
    try:
        temperature = check_temperature(data.get("temperature", 1.0))
        field_name = "abstention"
        raw = data.get("abstention")
        abstention = AbstentionRule.from_dict(raw) if raw is not None else None
        field_name = "tta"
        tta = check_tta_mode(data.get("tta", "none"))
    except ValueError as exc:
        raise ArtifactError(f'{CONFIG_FILENAME}: field "{field_name}" is invalid ({exc}); fix it or re-export the '
                            "model with python -m entry_points.train") from exc
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


def save_artifact(model_dir: Path | str, net: ResNet, config: ModelConfig) -> Path:
    """Write weights then config (the config's presence means the artifact is complete)."""
    model_dir = Path(model_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(model_dir / WEIGHTS_FILENAME, lambda fh: torch.save(state, fh))
    payload = dict(config.to_dict(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    atomic_write(model_dir / CONFIG_FILENAME, lambda fh: fh.write(text.encode("utf-8")))
    return model_dir


def read_model_config(model_dir: Path | str) -> ModelConfig:
    path = Path(model_dir) / CONFIG_FILENAME
    if not path.is_file():
        raise ArtifactError(
            f"{path} not found: a model dir needs {WEIGHTS_FILENAME} and {CONFIG_FILENAME}, "
            "as written by python -m entry_points.train --model-dir"
        )
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}): re-export the model") from exc


def load_artifact(model_dir: Path | str, map_location: str | torch.device = "cpu") -> tuple[ResNet, ModelConfig]:
    """Rebuild the network from a model dir, weights loaded with ``weights_only=True``, in eval mode."""
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    weights = model_dir / WEIGHTS_FILENAME
    if not weights.is_file():
        raise ArtifactError(f"{weights} not found: the model dir is incomplete, re-export the model")
    state = torch.load(weights, map_location=map_location, weights_only=True)
    net = build_resnet50(config.num_classes)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ArtifactError(f"{weights} does not match {CONFIG_FILENAME} ({exc})") from exc
    return net.to(map_location).eval(), config
