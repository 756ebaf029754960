"""Models out of a checkpoint: ``epoch=N.ckpt`` of a dogbreed run (an interrupted run, or an earlier epoch than its
last) becomes a model dir.

The checkpoint is loaded with ``weights_only=True`` and must carry a dogbreed run fingerprint
(:mod:`dogbreed.training.checkpoints`): its class folders name the classes, its training options give the
preprocessing (image size, crop range, TTA mode), and its head must have one output per class folder. The weights
are the network's as the checkpoint holds them: with ``--ema-decay`` the average, as the run would have exported.
Calibration (temperature, abstention threshold) ran after training, so an imported checkpoint has none: the model
dir answers with temperature 1 and never abstains, and says so in its record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from dogbreed.core.errors import CheckpointError, torch_load_reason
from dogbreed.core.transforms import Preprocessing
from dogbreed.data.splits import display_name
from dogbreed.serving.model_import import build_imported_net, file_sha256, save_imported_model
from dogbreed.training.checkpoints import STATE_KEY

_NET_PREFIX = "net."  # DogBreedClassifier keeps the ResNet50 as self.net


@dataclass(frozen=True)
class CheckpointModel:
    """What a checkpoint holds for an artifact: the network's weights, the run's class folders and options, the
    epoch it ends and the epochs recorded up to it."""

    state: dict[str, torch.Tensor]
    class_dirs: list[str]
    options: dict[str, Any]
    epoch: int
    history: list[dict[str, Any]]

    @property
    def preprocessing(self) -> Preprocessing:
        image_size = int(self.options.get("image_size", Preprocessing().image_size))
        crop = float(self.options.get("crop_scale", Preprocessing().crop_scale[0]))
        return Preprocessing(image_size=image_size, crop_scale=(crop, 1.0))


def _history(checkpoint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-epoch records EpochHistory saved with its callback state (empty when absent)."""
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, Mapping) and isinstance(state.get("history"), list):
            return [dict(entry) for entry in state["history"] if isinstance(entry, Mapping)]
    return []


def read_checkpoint_model(path: Path) -> CheckpointModel:
    """The checkpoint's network and run, checked; every problem is a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--checkpoint {path}: no such file (dogbreed writes epoch=N.ckpt into --checkpoint-dir)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, empty, foreign pickles: all "not loadable"
        raise CheckpointError(f"--checkpoint {path} cannot be loaded ({torch_load_reason(exc)}): take another "
                              "epoch=N.ckpt") from exc
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"--checkpoint {path} is not a Lightning checkpoint (no state_dict): for a plain "
                              "torchvision state_dict use --state-dict FILE --classes FILE")
    saved = checkpoint.get(STATE_KEY) or {}
    fingerprint = saved.get("fingerprint") if isinstance(saved, Mapping) else None
    if not isinstance(fingerprint, Mapping) or not fingerprint.get("class_dirs"):
        raise CheckpointError(f"--checkpoint {path} records no dogbreed run fingerprint (class folders, options): "
                              "it was not written by python -m entry_points.train --checkpoint-dir")
    state = {k[len(_NET_PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(_NET_PREFIX)}
    class_dirs = [str(name) for name in fingerprint["class_dirs"]]
    head = state.get("fc.weight")
    if isinstance(head, torch.Tensor) and head.dim() == 2 and head.shape[0] != len(class_dirs):
        raise CheckpointError(f"--checkpoint {path}: its fingerprint names {len(class_dirs)} class folders but its "
                              f"head has {head.shape[0]} outputs: the checkpoint is damaged")
    return CheckpointModel(state=state, class_dirs=class_dirs, options=dict(fingerprint.get("options") or {}),
                           epoch=int(saved.get("epoch", 0)), history=_history(checkpoint))


def import_checkpoint(path: Path, model_dir: Path) -> tuple[Path, CheckpointModel]:
    """Write ``model_dir`` from a dogbreed checkpoint; its record says which checkpoint and epoch it holds."""
    model = read_checkpoint_model(path)
    class_names = [display_name(d) for d in model.class_dirs]
    net = build_imported_net(model.state, class_names, f"--checkpoint {path}")
    epochs = model.options.get("epochs")
    record = {"checkpoint": Path(path).name, "sha256": file_sha256(Path(path)), "epoch": model.epoch,
              "of_epochs": epochs, "calibrated": False}
    epoch_metrics = next((e for e in model.history if e.get("epoch") == model.epoch), None)
    metrics = {"final_epoch": epoch_metrics or (model.history[-1] if model.history else {})}
    save_imported_model(model_dir, net, class_names, model.preprocessing, imported_from=record,
                        hyperparameters=model.options, metrics=metrics, tta=str(model.options.get("tta", "none")))
    return Path(model_dir), model
