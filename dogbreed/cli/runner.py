"""The shared command runner: logging, one-line errors with exit status 2, the rank-0 summary."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Union

from dogbreed.core.errors import DogBreedError, RunInterrupted
from dogbreed.core.fileio import output_error

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Outcome:
    """What a command reports when it ends normally: a summary for rank 0 and its exit status."""

    summary: str = ""
    status: int = 0


CommandBody = Callable[[], Union[Outcome, str, None]]


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Lightning's banners (accelerator lines, tips) and hints about worker counts are noise here.
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    for pattern in (r".*does not have many workers.*", r".*The number of training batches.*", r".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=pattern)


def is_rank_zero() -> bool:
    """False on every process but the first under torchrun (each rank runs the same command)."""
    return int(os.environ.get("RANK", "0")) == 0


def one_line(message: str) -> str:
    """A multi-line message (e.g. a list of bad files) folded into one line."""
    parts = [line.strip() for line in message.splitlines() if line.strip()]
    text = ""
    for part in parts:
        text += part if not text else (" " if text.endswith(":") else "; ") + part
    return text


def user_message(exc: BaseException) -> str:
    """The message of a user error, also when it was raised in a DataLoader worker: torch re-raises it in the
    main process with "Caught X in DataLoader worker process N. Original Traceback ..." as its text, so the
    original message is the traceback's last line, after the exception's qualified name."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return text


def run_command(body: CommandBody) -> int:
    """Run a command body: a :class:`DogBreedError` (a user's mistake) is one ``error:`` line and exit 2, never
    a traceback, and so is a write the file system refused (full, read-only, no permission) wherever it happened;
    a run stopped by a signal is one ``interrupted:`` line and exit 128 + signum (130 for Ctrl-C,
    143 for SIGTERM); the summary is printed once, by rank 0. Returns the exit status."""
    configure_logging()
    try:
        outcome = body()
    except DogBreedError as exc:
        print(f"error: {one_line(user_message(exc))}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except OSError as exc:
        refused = output_error(exc)  # the write sites name their dir and size; this catches any other write
        if refused is None:
            raise
        print(f"error: {refused}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except RunInterrupted as exc:
        if is_rank_zero():
            print(f"interrupted: {exc.message}", file=sys.stderr, flush=True)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    outcome = outcome if isinstance(outcome, Outcome) else Outcome(outcome or "")
    if outcome.summary and is_rank_zero():
        print(outcome.summary, flush=True)
    return outcome.status
