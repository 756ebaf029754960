"""Exception types for errors a user can cause. Each message names the culprit and the fix."""

from __future__ import annotations

import errno
import re
import struct

_PICKLED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class DogBreedError(Exception):
    """Base class: an error caused by input (data, flags, files, requests), not by a bug."""


class ConfigError(DogBreedError):
    """A bad command-line option or hyperparameter."""


class DataError(DogBreedError):
    """The dataset on disk is missing, malformed or has unreadable images."""


class ImageDecodeError(DogBreedError):
    """Bytes or a file that cannot be decoded as an image."""


class ArtifactError(DogBreedError):
    """A model dir that is missing files or is inconsistent."""


class WeightsError(DogBreedError):
    """Backbone weights that cannot be downloaded or loaded."""


class DownloadError(DogBreedError):
    """A dataset download or unpack that failed."""


class CheckpointError(DogBreedError):
    """A checkpoint dir that belongs to another run, or to a run that already finished."""


class TrainingDiverged(DogBreedError):
    """The loss or the weights became NaN or infinite: nothing is exported."""


class OutputError(DogBreedError):
    """A write refused by the file system: no space left, quota exceeded, read-only, permission denied."""


class RunInterrupted(Exception):
    """A run stopped by a signal (SIGTERM, SIGINT, SIGHUP). Not a user error: the exit status is 128 + signum.

    ``message`` says what was saved and what was not.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.message = message


def pickled_global(exc: BaseException) -> str | None:
    """The first Python object (``torchvision.models.resnet.ResNet``) a refused weights-only load asked for."""
    found = _PICKLED_GLOBAL.search(str(exc))
    return found.group(1) if found else None


def torch_load_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in our own words and one line: a file of pickled Python
    objects is named as such (with the first object it asks for), never with torch's advice to retry with
    ``weights_only=False``, which would run the file's code. Other failures: their first line."""
    text = str(exc)
    if isinstance(exc, EOFError):  # torch.load of an empty file
        return "the file is empty"
    # torch.save's zip archive, cut short or damaged: the reader's own error, or (an archive cut within its first
    # few kB) a seek before the start, raised as ValueError from memory and as OSError EINVAL from a file
    if ("PytorchStreamReader failed" in text or "negative seek value" in text
            or (isinstance(exc, OSError) and exc.errno == errno.EINVAL)):
        return "its zip archive is incomplete or damaged: a cut-short or corrupted copy"
    # The weights-only unpickler met a byte no pickle starts with; torch's legacy reader looked a junk "magic
    # number" up (KeyError '543911541'), found the wrong one, or ran out of bytes mid-header (struct.error).
    if ("Unsupported operand" in text or "Invalid magic number" in text
            or isinstance(exc, (KeyError, struct.error))):
        return "it is not a PyTorch file: neither torch.save's zip archive nor a pickle"
    if "Weights only load failed" in text or "WeightsUnpickler" in text:
        found = pickled_global(exc)
        named = f", starting with {found}" if found else ""
        return (f"it holds pickled Python objects{named}, not only tensors; dogbreed loads weights only and never "
                "runs code from a weights file")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


MAX_MISMATCH_CHARS = 300  # weights of another architecture miss hundreds of keys: the start says enough


def state_dict_mismatch(exc: BaseException) -> str:
    """torch's load_state_dict reasons (missing keys, unexpected keys, size mismatches) on one line, without its
    "Error(s) in loading state_dict for ResNet:" header."""
    lines = [line.strip().rstrip(". ") for line in str(exc).splitlines()[1:] if line.strip()]
    text = "; ".join(lines) or str(exc).strip() or type(exc).__name__
    return text if len(text) <= MAX_MISMATCH_CHARS else text[:MAX_MISMATCH_CHARS - 3] + "..."
