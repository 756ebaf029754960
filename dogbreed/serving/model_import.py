"""Models in: a torchvision ResNet50 from elsewhere becomes a model dir that predicts, serves, packages and exports
like a trained one.

- A ``state_dict`` file (``torch.save(model.state_dict(), f)``) is loaded with ``weights_only=True``.
- A pickled model (``torch.save(model, f)``) can only be loaded by running the pickle, which may execute code
  from the file: it is refused unless the caller says it trusts the file (``--trust-pickle``).
- The network must be a torchvision ``resnet50`` with any number of classes (its ``fc`` decides); the class
  names come from a file, one per line (or a JSON list), as many as the head has outputs.
- The preprocessing is given or ImageNet's (resize 232, centre crop 224, ImageNet mean/std).

Torch only, like the rest of the serving core: a serving container can import a model too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from dogbreed.core.constants import CONFIG_FILENAME
from dogbreed.core.errors import ArtifactError, pickled_global, state_dict_mismatch, torch_load_reason
from dogbreed.core.jsontext import JsonTextError, parse_json
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving.artifact import ModelConfig, library_versions, load_artifact, save_artifact

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # {"state_dict": {...}} as many training scripts save
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # torch.load(weights_only=True) met a pickled object
_PREFIXES = ("module.", "_orig_mod.", "model.")  # DataParallel/DDP, torch.compile, a wrapping module's attribute


def read_class_names(path: Path) -> list[str]:
    """Class names from a text file (one per line, blank lines ignored) or a JSON list of strings."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"--classes {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"--classes {path}: not UTF-8 text ({exc.reason} at byte {exc.start}): save it as "
                            "UTF-8") from exc
    except OSError as exc:
        raise ArtifactError(f"--classes {path}: cannot read it ({exc.strerror or exc})") from exc
    if text.lstrip().startswith("["):
        try:
            names = parse_json(text)
        except JsonTextError as exc:
            raise ArtifactError(f"--classes {path}: starts like a JSON list but is not valid JSON ({exc})") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ArtifactError(f"--classes {path}: a JSON classes file must be a list of strings")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if len(names) < 2 or duplicates:
        raise ArtifactError(f"--classes {path}: expected at least 2 distinct class names, one per line, got "
                            f"{len(names)}" + (f" (repeated: {', '.join(duplicates)})" if duplicates else ""))
    return [str(n) for n in names]


def _unpickled(path: Path, trust_pickle: bool, refusal: Exception) -> Any:
    if not trust_pickle:
        found = pickled_global(refusal)  # torch's own text advises weights_only=False: never quoted
        named = f" ({found} first)" if found else ""
        raise ArtifactError(
            f"{path} is not a plain state_dict: it holds pickled Python objects{named}, such as a whole model "
            "saved with torch.save(model, file). Loading it runs code from the file. If you trust where it comes "
            "from, pass --trust-pickle; otherwise save model.state_dict() where it was made and import that file")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 - the user said --trust-pickle
    except Exception as exc:  # a pickle of a class this process cannot import, a damaged file...
        raise ArtifactError(f"{path} cannot be unpickled ({type(exc).__name__}: {exc})") from exc


def load_foreign_weights(path: Path, *, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], bool]:
    """``(state_dict, was_pickled)`` of a torchvision ResNet50 saved as a state_dict or (trusted) a whole model."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"--state-dict {path}: no such file")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
        pickled = False
    except Exception as exc:  # pickled objects (refused by weights_only) and damaged files alike
        if _WEIGHTS_ONLY_REFUSAL not in str(exc):
            raise ArtifactError(f"--state-dict {path} cannot be loaded ({torch_load_reason(exc)}): is it a complete "
                                "torch.save file?") from exc
        loaded, pickled = _unpickled(path, trust_pickle, exc), True
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    for key in _WRAPPER_KEYS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping) and "fc.weight" not in loaded:
            loaded = loaded[key]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ArtifactError(f"--state-dict {path}: expected a ResNet50 state_dict (a dict of tensors) or a pickled "
                            f"ResNet50, got {type(loaded).__name__}")
    return _strip_prefixes(dict(loaded)), pickled


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


def build_imported_net(state: Mapping[str, torch.Tensor], class_names: list[str], source: str) -> nn.Module:
    """The dogbreed network with ``state`` loaded strictly: same architecture, head size = number of classes."""
    head = state.get("fc.weight")
    if not isinstance(head, torch.Tensor) or head.dim() != 2:
        raise ArtifactError(f"{source}: no classifier weight fc.weight: not a torchvision ResNet50 state_dict")
    if head.shape[0] != len(class_names):
        raise ArtifactError(f"{source} has a {head.shape[0]}-class head but the classes file names "
                            f"{len(class_names)} classes: give one name per output, in output order")
    net = build_resnet50(len(class_names))
    try:
        net.load_state_dict(dict(state))
    except RuntimeError as exc:
        raise ArtifactError(f"{source} is not a torchvision ResNet50 ({state_dict_mismatch(exc)}): dogbreed imports "
                            "resnet50 weights only") from exc
    if not all(bool(torch.isfinite(v).all()) for v in net.state_dict().values() if v.is_floating_point()):
        raise ArtifactError(f"{source} contains NaN or infinite weights: nothing was imported")
    return net.eval()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_imported_model(model_dir: Path, net: nn.Module, class_names: list[str], preprocessing: Preprocessing, *,
                        imported_from: dict[str, Any], hyperparameters: Mapping[str, Any] | None = None,
                        metrics: Mapping[str, Any] | None = None, tta: str = "none") -> Path:
    """Write the model dir (``imported_from`` recorded in its hyperparameters), then load it back as serving
    would: a model dir that does not load is never left behind silently."""
    config = ModelConfig(class_names=list(class_names), preprocessing=preprocessing,
                         hyperparameters={**(hyperparameters or {}), "imported_from": imported_from},
                         metrics=dict(metrics or {}), versions=library_versions(), tta=tta)
    save_artifact(model_dir, net, config)
    loaded, _ = load_artifact(model_dir)
    before = {k: v for k, v in net.state_dict().items()}
    if any(not torch.equal(before[k], v) for k, v in loaded.state_dict().items()):
        raise ArtifactError(f"{model_dir}/{CONFIG_FILENAME}: the written weights differ from the imported ones")
    return Path(model_dir)

