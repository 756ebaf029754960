"""File writes that never leave half a file behind, output dirs checked before any work starts, strict JSON."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from dogbreed.core.errors import ConfigError, OutputError

# The errors of a write that the user, not the code, must fix; each with its cause as the message says it.
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def output_error(exc: OSError, directory: Path | str | None = None,
                 needed_bytes: int | None = None) -> OutputError | None:
    """``exc`` as one line naming the cause and the dir (``directory``, else the folder of the exception's
    file), with the size the write needs when known; None when ``exc`` is not a write refused by the file system."""
    cause = WRITE_ERRNOS.get(exc.errno or 0)
    if cause is None:
        return None
    if directory is None:
        target = Path(exc.filename) if exc.filename else None
        directory = target if target is None or target.is_dir() else target.parent
    where = f" writing {directory}" if directory is not None else ""
    needs = f" (needs about {max(1, round(needed_bytes / 1e6))} MB)" if needed_bytes else ""
    fix = ("free some space there or write elsewhere" if exc.errno in (errno.ENOSPC, errno.EDQUOT)
           else "choose a folder you can write to")
    return OutputError(f"{cause}{where}{needs}: {fix}")


@contextlib.contextmanager
def disk_errors(directory: Path | str, needed_bytes: int | None = None) -> Iterator[None]:
    """Writes into ``directory``: a full, read-only or forbidden file system becomes an :class:`OutputError`
    naming the dir and about how much the write needs; every other error passes through unchanged. The writes
    inside clean up after themselves (:func:`atomic_write`), so nothing partial is left."""
    try:
        yield
    except OSError as exc:
        mapped = output_error(exc, directory, needed_bytes)
        if mapped is None:
            raise
        raise mapped from exc


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], needed_bytes: int | None = None) -> None:
    """Write via a temp file in the same dir, fsync, then rename over ``path``.

    ``write`` receives the open binary handle. If it raises (or the process is interrupted), the temp file
    is removed and ``path`` keeps its previous content. A full or read-only disk is an :class:`OutputError`
    naming the dir (with ``needed_bytes``, else the bytes written when it failed, as the size).
    """
    written = 0
    with disk_errors(path.parent, needed_bytes):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                try:
                    write(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                finally:
                    with contextlib.suppress(OSError, ValueError):
                        written = handle.tell()
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            mapped = output_error(exc, path.parent, needed_bytes or written)
            if mapped is None:
                raise
            raise mapped from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_under_final_name(path: Path, data: bytes) -> None:
    """Write ``data`` straight to ``path`` (no temp name, no rename), then fsync.

    For files a directory syncer copies as they appear (SageMaker's checkpoint uploader): the file only
    ever exists under its final name. If the write fails, the partial file is removed; a process killed
    mid-write can leave a truncated file, which readers must detect (a torch zip without its directory).
    """
    with disk_errors(path.parent, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise


def check_writable_dir(path: Path | str, option: str) -> Path:
    """Prove that ``path`` is (or can be created as) a writable directory, or raise :class:`ConfigError` naming
    ``option``. Nothing is created: a temp file is made and removed in ``path`` or its nearest existing parent.

    Called before any data is read, so a typo in an output option costs seconds, not a training run.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a directory: pass a directory path")
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {path} cannot be created: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{option} {path} cannot be written ({existing}: {reason}): pass a directory you can "
                          "write to") from None
    return path


def finite_json(value: Any) -> Any:
    """``value`` with every NaN/inf float replaced by None, so it serialises as strict JSON (RFC 8259)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def strict_json(value: Any, **dumps_options: Any) -> str:
    """``json.dumps`` that never writes ``NaN``/``Infinity`` (strict parsers reject them): they become null."""
    return json.dumps(finite_json(value), allow_nan=False, **dumps_options)
