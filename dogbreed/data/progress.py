"""Progress of long steps (feature extraction, data checks, downloads, tuning trials), rank 0 only.

On a terminal: a tqdm bar that appears only if the step lasts over a second. Anywhere else (a SageMaker
job's log, a pipe, a file): one plain line every ``interval_s`` seconds with the count, rate and ETA, e.g.

    extracting train features: 1200/8350 img (14%), 8.1 img/s, ETA 14m43s

and a closing line when at least one such line was printed (or ``leave=True``), so short steps stay silent.
``DOGBREED_PROGRESS=bar|lines|off`` forces a style, ``DOGBREED_PROGRESS_INTERVAL=SECONDS`` the line interval.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any, Callable, TextIO

PROGRESS_ENV = "DOGBREED_PROGRESS"
INTERVAL_ENV = "DOGBREED_PROGRESS_INTERVAL"  # seconds between plain lines (default 30)
STYLES = ("bar", "lines", "off")
DEFAULT_INTERVAL_S = 30.0
BAR_DELAY_S = 1.0


def is_rank_zero() -> bool:
    """False on every process but the first under torchrun / SageMaker distributed training."""
    for name in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value) == 0
    return True


def progress_style(stream: TextIO) -> str:
    """``off`` on ranks other than 0; else ``DOGBREED_PROGRESS`` if set; else ``bar`` on a TTY, ``lines``."""
    if not is_rank_zero():
        return "off"
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in STYLES:
        return forced
    isatty = getattr(stream, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "lines"


def default_interval() -> float:
    """``DOGBREED_PROGRESS_INTERVAL`` seconds if set to a number >= 0, else 30."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL_S
    return value if value >= 0 else DEFAULT_INTERVAL_S


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``; sub-10-second values keep one decimal (``2.4s``)."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def format_bytes(count: float) -> str:
    """``512 B``, ``3.4 KB``, ``1.1 GB`` (powers of 1024)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - loop always returns


class Progress:
    """Counts work done out of ``total`` (None if unknown) and shows it in the style of the stream.

    ``unit="B"`` formats byte counts and rates. ``clock`` is for tests (a fake monotonic clock).
    """

    def __init__(
        self, total: int | None, desc: str, *, unit: str = "img", stream: TextIO | None = None,
        style: str | None = None, interval_s: float | None = None, leave: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.style = style or progress_style(self.stream)
        if self.style not in STYLES:
            raise ValueError(f"progress style must be one of {STYLES}, got {self.style!r}")
        self.interval_s = default_interval() if interval_s is None else interval_s
        self.leave = leave
        self.clock = clock
        self.done = 0
        self.closed = False
        self.lines_printed = 0
        self.postfix = ""
        self.start = self.last_line = clock()
        self._bar: Any = None
        if self.style == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", unit_divisor=1024,
                             file=self.stream, delay=BAR_DELAY_S, leave=leave, dynamic_ncols=True)

    # -- counting ---------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.done += n
        if self.closed:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif self.style == "lines":
            now = self.clock()
            if now - self.last_line >= self.interval_s:
                self.last_line = now
                self._print(self.status_line(now))

    def set_postfix(self, text: str) -> None:
        """A short status shown after the count (e.g. ``best val_acc 0.85``)."""
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, line: str) -> None:
        """A message that does not break the bar (printed in every style but ``off``)."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        elif self.style != "off":
            print(line, file=self.stream, flush=True)

    # -- text ---------------------------------------------------------------------------------
    def _amount(self, value: float) -> str:
        return format_bytes(value) if self.unit == "B" else f"{int(value)}"

    def _rate(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return f"{format_bytes(rate)}/s" if self.unit == "B" else f"{rate:.1f} {self.unit}/s"

    def status_line(self, now: float) -> str:
        """``desc: done/total unit (pct%), rate, ETA t`` (no total: ``desc: done unit, rate``)."""
        elapsed = now - self.start
        unit = "" if self.unit == "B" else f" {self.unit}"
        if self.total:
            percent = 100.0 * self.done / self.total
            text = f"{self.desc}: {self._amount(self.done)}/{self._amount(self.total)}{unit} ({percent:.0f}%), "
            text += self._rate(elapsed)
            if 0 < self.done < self.total and elapsed > 0:
                text += f", ETA {format_duration((self.total - self.done) * elapsed / self.done)}"
        else:
            text = f"{self.desc}: {self._amount(self.done)}{unit}, {self._rate(elapsed)}"
        return f"{text} [{self.postfix}]" if self.postfix else text

    def final_line(self, now: float) -> str:
        elapsed = now - self.start
        unit = "" if self.unit == "B" else f" {self.unit}"
        text = f"{self.desc}: {self._amount(self.done)}{unit} in {format_duration(elapsed)} ({self._rate(elapsed)})"
        return f"{text} [{self.postfix}]" if self.postfix else text

    def _print(self, line: str) -> None:
        self.lines_printed += 1
        print(line, file=self.stream, flush=True)

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.style == "lines" and (self.lines_printed or self.leave):
            self._print(self.final_line(self.clock()))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
