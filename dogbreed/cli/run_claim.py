"""One run per output dir: a training command refuses a ``--model-dir`` holding another run's model (unless
``--overwrite``) and locks its ``--model-dir`` and ``--output-dir`` while it runs, so that two runs, one after the
other or at once, never overwrite each other's files without a word.

The same run is not another run: resuming from the ``--checkpoint-dir`` that wrote the model, or ``--demo`` after
an earlier demo, replaces it. Only the first process of a distributed run (rank 0) claims the dirs.
Standard library only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any, Iterator

from dogbreed.config.options import TrainConfig
from dogbreed.core.constants import CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ConfigError
from dogbreed.core.fileio import check_writable_dir

LOCK_FILENAME = ".dogbreed-run.lock"


def _written_at(path: Path) -> str:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _hyperparameters(model_dir: Path) -> dict[str, Any]:
    try:
        payload = json.loads((model_dir / CONFIG_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    values = payload.get("hyperparameters") if isinstance(payload, dict) else None
    return values if isinstance(values, dict) else {}


def _same_run(config: TrainConfig, previous: dict[str, Any]) -> bool:
    checkpoint_dir = config.checkpoints.checkpoint_dir
    if checkpoint_dir is not None and previous.get("checkpoint_dir") == str(checkpoint_dir):
        return True  # resuming the run that wrote the model
    return bool(config.data.demo and previous.get("demo"))


def check_model_dir_free(config: TrainConfig) -> None:
    """Raise :class:`ConfigError` (one line: the other run's date and the flag) when ``--model-dir`` holds a
    model another run wrote and ``--overwrite`` is off."""
    model_dir = Path(config.outputs.model_dir)
    written = [model_dir / name for name in (WEIGHTS_FILENAME, CONFIG_FILENAME) if (model_dir / name).is_file()]
    if config.outputs.overwrite or not written or _same_run(config, _hyperparameters(model_dir)):
        return
    raise ConfigError(f"--model-dir {model_dir} holds the model of another run (written {_written_at(written[0])}): "
                      "pass --overwrite to replace it, or choose another --model-dir")


def _missing(directory: Path) -> list[Path]:
    """``directory`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for path in [directory, *directory.absolute().parents]:
        if path.exists():
            break
        missing.append(path)
    return missing


def _lock(directory: Path, option: str) -> IO[str]:
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILENAME, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(f"{option} {directory} is in use by another run ({holder}): wait for it to finish, "
                          f"or choose another {option}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, started {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}")
    handle.flush()
    return handle


def _rank_zero() -> bool:
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in ("RANK", "LOCAL_RANK"))


@contextlib.contextmanager
def claimed_outputs(config: TrainConfig) -> Iterator[None]:
    """Around a training command: check ``--model-dir``, then hold a lock in it and in ``--output-dir`` (lock
    files removed at the end: nothing extra lands in the artifact; dirs made for the locks and left empty removed)."""
    if not _rank_zero():
        yield
        return
    locations = {"--model-dir": Path(config.outputs.model_dir), "--output-dir": Path(config.outputs.output_dir)}
    for option, directory in locations.items():
        check_writable_dir(directory, option)  # its one-line error first; creates nothing
    check_model_dir_free(config)
    created = [path for directory in locations.values() for path in _missing(directory)]
    handles: list[tuple[Path, IO[str]]] = []
    try:
        for option, directory in locations.items():
            if any(directory.resolve() == held.resolve() for held, _ in handles):
                continue  # the same dir given twice: one lock
            handles.append((directory, _lock(directory, option)))
        yield
    finally:
        for directory, handle in reversed(handles):
            with contextlib.suppress(OSError):
                (directory / LOCK_FILENAME).unlink()
            handle.close()
        for path in created:  # a run that wrote nothing leaves no empty dirs behind (deepest first)
            with contextlib.suppress(OSError):
                path.rmdir()
