"""The schema of ``model_config.json``: types, lengths and ranges, checked in one place before anything is built.

A config that loads but would serve garbage (``std: 0`` -> NaN, ``image_size: 100000`` -> out of memory,
``class_names: "abc"`` -> three one-letter breeds) is refused with one message naming the field. Fields this
version does not know are tolerated (a newer dogbreed may add optional ones); the known ones are strict.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from dogbreed.core.constants import (
    ARCHITECTURE,
    ARTIFACT_FORMAT_VERSION,
    CONFIG_FILENAME,
    MAX_IMAGE_SIZE,
    PRECISIONS,
)
from dogbreed.core.errors import ArtifactError

MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a 133-class config is ~10 KB; this only stops absurd files
MAX_CLASSES = 100_000
MAX_CLASS_NAME_LENGTH = 500
MIN_STD = 1e-3
# torchvision InterpolationMode values usable on PIL images.
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REEXPORT = ("re-export the model (python -m entry_points.train --model-dir ...), or for weights from elsewhere make "
            "the model dir with python -m entry_points.import_model")


class _Invalid(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(field, f"must be an integer, got {_shown(value)}")
    if not low <= value <= high:
        raise _Invalid(field, f"must be between {low} and {high}, got {_shown(value)}")
    return value


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise _Invalid(field, f"must be a finite number, got {_shown(value)}")
    if not low <= value <= high:
        raise _Invalid(field, f"must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _finite(value: int | float) -> bool:
    """A finite number that is also a float: an integer of 400 digits is too large for one (OverflowError)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shown(value: Any, limit: int = 60) -> str:
    if isinstance(value, int) and value.bit_length() > 200:  # repr of a huge integer is slow, or a ValueError
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _triple(value: Any, field: str, check: Callable[[Any, str], float]) -> None:
    if not isinstance(value, list) or len(value) != 3:
        raise _Invalid(field, f"must be a list of 3 numbers (R, G, B), got {_shown(value)}")
    for index, item in enumerate(value):
        check(item, f"{field}[{index}]")


def _class_names(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid("class_names", f"must be a list of breed names, got {type(value).__name__} {_shown(value)}")
    if not 2 <= len(value) <= MAX_CLASSES:
        raise _Invalid("class_names", f"must hold 2 to {MAX_CLASSES} names, got {len(value)}")
    for index, name in enumerate(value):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_CLASS_NAME_LENGTH:
            raise _Invalid(f"class_names[{index}]", f"must be a non-empty string of at most "
                                                    f"{MAX_CLASS_NAME_LENGTH} characters, got {_shown(name)}")
    return value


def _preprocessing(value: Any) -> None:
    if not isinstance(value, dict):
        raise _Invalid("preprocessing", f"must be an object, got {_shown(value)}")
    image_size = _int(value.get("image_size"), "preprocessing.image_size", 8, MAX_IMAGE_SIZE)
    if value.get("resize_size") not in (None, 0):
        _int(value["resize_size"], "preprocessing.resize_size", image_size, 4 * image_size)
    if "mean" in value:
        _triple(value["mean"], "preprocessing.mean", lambda v, f: _number(v, f, 0.0, 1.0))
    if "std" in value:
        _triple(value["std"], "preprocessing.std", lambda v, f: _number(v, f, MIN_STD, 10.0))
    if "interpolation" in value and value["interpolation"] not in INTERPOLATIONS:
        raise _Invalid("preprocessing.interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, "
                                                      f"got {_shown(value['interpolation'])}")


def _precision(value: Any) -> None:
    """``{"mode", "agreement", "max_abs_delta_p", "images", ...}``; int8 adds the hashes of its weights file."""
    if not isinstance(value, dict):
        raise _Invalid("precision", f"must be an object, got {_shown(value)}")
    mode = value.get("mode")
    if mode not in PRECISIONS:
        raise _Invalid("precision.mode", f"must be one of {', '.join(PRECISIONS)}, got {_shown(mode)}")
    if mode == "fp32":
        return
    _number(value.get("agreement"), "precision.agreement", 0.0, 1.0)
    _number(value.get("max_abs_delta_p"), "precision.max_abs_delta_p", 0.0, 1.0)
    _int(value.get("images"), "precision.images", 1, 10**9)
    if mode == "int8":
        for key in ("weights_sha256", "source_weights_sha256"):
            if not (isinstance(value.get(key), str) and SHA256.match(value[key])):
                raise _Invalid(f"precision.{key}", f"must be 64 lower-case hex digits, got {_shown(value.get(key))}")


def _check(data: Any) -> None:
    if not isinstance(data, dict):
        raise _Invalid("the top level", f"must be a JSON object, got {type(data).__name__}")
    if "format_version" in data:
        version = _int(data["format_version"], "format_version", 1, 10**6)
        if version > ARTIFACT_FORMAT_VERSION:
            raise ArtifactError(f"artifact format {version} is newer than this dogbreed understands "
                                f"({ARTIFACT_FORMAT_VERSION}): upgrade dogbreed")
    architecture = data.get("architecture", ARCHITECTURE)
    if architecture != ARCHITECTURE:
        raise ArtifactError(f"unsupported architecture {_shown(architecture)}: this dogbreed serves {ARCHITECTURE}")
    if "class_names" not in data:
        raise _Invalid("class_names", "is missing")
    names = _class_names(data["class_names"])
    if "num_classes" in data and _int(data["num_classes"], "num_classes", 2, MAX_CLASSES) != len(names):
        raise _Invalid("num_classes", f"is {data['num_classes']} but class_names holds {len(names)} names")
    if "preprocessing" not in data:
        raise _Invalid("preprocessing", "is missing")
    _preprocessing(data["preprocessing"])
    for key in ("hyperparameters", "metrics", "versions"):
        if key in data and not isinstance(data[key], dict):
            raise _Invalid(key, f"must be an object, got {_shown(data[key])}")
    if data.get("precision") is not None:
        _precision(data["precision"])
    digest = data.get("weights_sha256")
    if "weights_sha256" in data and not (isinstance(digest, str) and SHA256.match(digest)):
        raise _Invalid("weights_sha256", f"must be 64 lower-case hex digits, got {_shown(digest)}")


def validate_model_config(data: Any, source: str = CONFIG_FILENAME) -> dict[str, Any]:
    """Return ``data`` if it is a valid model config, else raise :class:`ArtifactError` naming the field."""
    try:
        _check(data)
    except _Invalid as exc:
        raise ArtifactError(f"{source}: {exc}: {REEXPORT}") from None
    return data
