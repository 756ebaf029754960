"""Exception types for errors a user can cause. Each message names the culprit and the fix."""

from __future__ import annotations


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


class RunInterrupted(Exception):
    """A run stopped by a signal (SIGTERM, SIGINT, SIGHUP). Not a user error: the exit status is 128 + signum.

    ``message`` says what was saved and what was not.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.message = message
