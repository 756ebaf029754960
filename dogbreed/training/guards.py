"""Signals, in one place: what SIGTERM, SIGINT and SIGHUP do to a run.

A signal stops training at once, except inside a *critical section* (a checkpoint or the model being written):
that finishes first, then the run stops (a second signal during the write stops it at once: a checkpoint is
written under a partial name and renamed, so no half-written one is left). Either way
:func:`dogbreed.training.run.train` turns the stop into :class:`RunInterrupted` (exit status 128 + signum, one
line saying what was and was not saved: :func:`dogbreed.training.checkpoints.interrupted`) and never exports a
model from an unfinished run; the CLI (:mod:`dogbreed.cli.runner`) prints that line and exits with the status.
Lightning's own SIGTERM handling (which exits with status 0) is chained behind ours. NaN/inf losses and weights
stop a run too: :class:`dogbreed.training.callbacks.NonFiniteGuard`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any, Iterator

logger = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalStop(BaseException):
    """Raised inside the run when a signal arrives (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Installs the handlers for the duration of a run (main thread only; elsewhere it does nothing)."""

    _active: "SignalGuard | None" = None

    def __init__(self) -> None:
        self.signum: int | None = None
        self._depth = 0  # critical sections entered
        self._previous: dict[int, Any] = {}

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if self._depth and first:
            logger.warning("received %s: stopping once the file being written is complete", self.signal_name)
            return
        raise SignalStop(signum)

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in HANDLED_SIGNALS}
        SignalGuard._active = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        SignalGuard._active = None

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self.signum is not None:
            raise SignalStop(self.signum)


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """A signal received inside waits until the block ends (then the run stops). No-op without a guard."""
    guard = SignalGuard._active
    if guard is None:
        yield
        return
    with guard.critical():
        yield

