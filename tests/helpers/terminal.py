"""A command run on a pseudo-terminal of a fixed size, and the screen a terminal would show for its output.

The screen model is what progress bars rely on: carriage return, line feed, cursor up/down (``ESC[nA``/``ESC[nB``),
erase to the end of the line (``ESC[K``), automatic wrap at the right margin; colours and other escapes are ignored.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Callable, Sequence

ESCAPE = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def render(output: str, width: int) -> list[str]:
    """The screen's lines after ``output``, a line the right margin wrapped joined again (as a terminal's copy
    mode does); trailing spaces stripped, trailing empty lines dropped."""
    lines: list[list[str]] = [[]]
    wrapped: set[int] = set()  # rows continuing the row above
    row = col = 0
    pending_wrap = False
    i = 0
    while i < len(output):
        char = output[i]
        match = ESCAPE.match(output, i) if char == "\x1b" else None
        if match:
            count = int(match.group(1) or 1)
            code = match.group(2)
            if code == "A":
                row = max(0, row - count)
            elif code == "B":
                row += count
            elif code == "K":
                del lines[row][col:]
            pending_wrap = False
            i = match.end()
            while len(lines) <= row:
                lines.append([])
            continue
        if char == "\r":
            col, pending_wrap = 0, False
        elif char == "\n":
            row, pending_wrap = row + 1, False
            wrapped.discard(row)
        elif char >= " ":
            if pending_wrap:
                row, col, pending_wrap = row + 1, 0, False
                wrapped.add(row)
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
            if col >= width:
                col, pending_wrap = width - 1, True
        while len(lines) <= row:
            lines.append([])
        i += 1
    screen: list[str] = []
    for index, line in enumerate(lines):
        text = "".join(line).ljust(width) if index + 1 in wrapped else "".join(line).rstrip()
        if index in wrapped and screen:
            screen[-1] += text
        else:
            screen.append(text)
    screen = [line.rstrip() for line in screen]
    while screen and not screen[-1]:
        screen.pop()
    return screen


def run_on_pty(command: Sequence[str], *, width: int, cwd: Path, timeout: float = 600,
               on_output: Callable[[str, subprocess.Popen], None] | None = None) -> tuple[int, str]:
    """Run ``command`` with stdin, stdout and stderr on one pseudo-terminal of ``width`` x 40; return its exit
    status and everything it wrote. ``on_output(text_so_far, process)`` is called as output arrives (e.g. to
    send a signal once a bar shows)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, width, 0, 0))
    env = dict(os.environ, COLUMNS=str(width), LINES="40", TERM="xterm")
    process = subprocess.Popen(list(command), stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                               close_fds=True, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
                if on_output is not None:
                    on_output(b"".join(chunks).decode("utf-8", "replace"), process)
            elif process.poll() is not None:
                break
        else:
            os.killpg(process.pid, signal.SIGKILL)
    finally:
        os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")
