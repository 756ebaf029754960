"""Progress output: plain lines with rate and ETA off a terminal, a tqdm bar on one (a real pseudo-terminal),
silence on other ranks; and the long steps that use it (feature extraction, data checks, downloads)."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import termios

import pytest
import torch

from dogbreed.core.transforms import Preprocessing
from dogbreed.data.progress import Progress, format_bytes, format_duration, progress_style
from dogbreed.data.splits import index_split, list_class_dirs
from dogbreed.training.head_training import build_split_features
from tests.helpers.builders import write_tree


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def no_forced_style(monkeypatch):
    for name in ("DOGBREED_PROGRESS", "DOGBREED_PROGRESS_INTERVAL", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_plain_lines_carry_count_rate_and_eta_every_interval():
    clock, out = FakeClock(), io.StringIO()
    with Progress(100, "extracting train features", stream=out, interval_s=30, clock=clock) as progress:
        assert progress.style == "lines"  # a StringIO is not a terminal
        clock.now += 10
        progress.update(20)  # 10 s in: no line yet
        clock.now += 20
        progress.update(20)  # 30 s in: 40 done at 4/8 per s... 40 img / 30 s
        clock.now += 30
        progress.update(40)  # 60 s in: 80 done
        clock.now += 15
        progress.update(20)  # 75 s: done, but under 30 s since the last line
    assert out.getvalue().splitlines() == [
        "extracting train features: 40/100 img (40%), 1.3 img/s, ETA 45s",
        "extracting train features: 80/100 img (80%), 1.3 img/s, ETA 15s",
        "extracting train features: 100 img in 1m15s (1.3 img/s)",
    ]


def test_a_short_step_prints_nothing():
    clock, out = FakeClock(), io.StringIO()
    with Progress(8, "checking train images", stream=out, interval_s=30, clock=clock) as progress:
        clock.now += 2
        progress.update(8)
    assert out.getvalue() == ""


def test_bytes_and_unknown_totals_are_readable():
    clock, out = FakeClock(), io.StringIO()
    with Progress(None, "downloading dogImages.zip", unit="B", stream=out, interval_s=0, clock=clock,
                  leave=True) as progress:
        clock.now += 4
        progress.update(3 * 1024 * 1024)
    assert out.getvalue().splitlines() == [
        "downloading dogImages.zip: 3.0 MB, 768.0 KB/s",
        "downloading dogImages.zip: 3.0 MB in 4.0s (768.0 KB/s)",
    ]
    assert format_bytes(512) == "512 B" and format_bytes(1.1 * 1024**3) == "1.1 GB"
    assert [format_duration(s) for s in (2.44, 42, 187, 3725)] == ["2.4s", "42s", "3m07s", "1h02m"]


def test_write_and_postfix_show_in_lines():
    clock, out = FakeClock(), io.StringIO()
    with Progress(4, "tuning", unit="trial", stream=out, interval_s=0, clock=clock) as progress:
        progress.set_postfix("best val_acc 0.81")
        progress.write("trial 1/4 COMPLETE")
        clock.now += 10
        progress.update()
    assert out.getvalue().splitlines() == [
        "trial 1/4 COMPLETE",
        "tuning: 1/4 trial (25%), 0.1 trial/s, ETA 30s [best val_acc 0.81]",
        "tuning: 1 trial in 10s (0.1 trial/s) [best val_acc 0.81]",
    ]


def test_other_ranks_are_silent_and_the_style_can_be_forced(monkeypatch):
    out = io.StringIO()
    assert progress_style(out) == "lines"
    monkeypatch.setenv("DOGBREED_PROGRESS", "off")
    assert progress_style(out) == "off"
    monkeypatch.setenv("DOGBREED_PROGRESS", "bar")
    assert progress_style(out) == "bar"
    monkeypatch.setenv("RANK", "1")
    assert progress_style(out) == "off"
    with Progress(3, "x", stream=out, interval_s=0) as progress:
        progress.update(3)
        progress.write("not shown")
    assert out.getvalue() == ""


def _read_available(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def test_on_a_terminal_the_progress_is_a_tqdm_bar(monkeypatch):
    monkeypatch.setattr("dogbreed.data.progress.BAR_DELAY_S", 0)  # draw at once (normally after a second)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            assert progress_style(terminal) == "bar"
            with Progress(3, "extracting valid features", stream=terminal) as progress:
                for _ in range(3):
                    progress.update()
                    progress._bar.refresh()
            terminal.flush()
            text = _read_available(master).decode(errors="replace")
    finally:
        os.close(slave)
        os.close(master)
    assert "extracting valid features" in text and "3/3" in text and "100%" in text
    assert "\r" in text  # redrawn in place, not one line per update


def test_feature_extraction_reports_progress_with_rate_and_eta(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOGBREED_PROGRESS_INTERVAL", "0")
    tree = write_tree(tmp_path / "data", {"train": 2})
    samples = [(p, i) for i, d in enumerate(sorted((tree / "train").iterdir())) for p in sorted(d.iterdir())]
    torch.manual_seed(0)
    from dogbreed.core.network import build_resnet50

    build_split_features(build_resnet50(3), samples, pre=Preprocessing(image_size=32), views=1, seed=0,
                         batch_size=2, num_workers=0, device=torch.device("cpu"), split="train")
    lines = capsys.readouterr().err.splitlines()
    progress = [line for line in lines if line.startswith("extracting train features:")]
    numbers = r"[0-9.]+(s|m[0-9]+s)?"
    assert [re.sub(numbers + r" img/s", "R img/s", re.sub(r"(ETA|in) " + numbers, r"\1 T", line))
            for line in progress] == [
        "extracting train features: 2/6 img (33%), R img/s, ETA T",
        "extracting train features: 4/6 img (67%), R img/s, ETA T",
        "extracting train features: 6/6 img (100%), R img/s",
        "extracting train features: 6 img in T (R img/s)",
    ]


def test_the_data_check_reports_progress_over_a_large_tree(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DOGBREED_PROGRESS_INTERVAL", "0")
    tree = write_tree(tmp_path / "data", {"train": 3})
    index = index_split(tree / "train", list_class_dirs(tree / "train"))
    assert len(index.samples) == 9
    err = capsys.readouterr().err
    assert "checking train images: 9/9 img (100%)" in err and "checking train images: 9 img in " in err


def test_closing_twice_says_the_total_once_and_a_closed_counter_prints_nothing_more():
    out, now = io.StringIO(), [0.0]
    progress = Progress(4, "checking valid images", stream=out, style="lines", interval_s=0, leave=True,
                        clock=lambda: now[0])
    now[0] = 2.0
    progress.close()
    progress.close()  # a with-block exit after an explicit close, for example
    now[0] = 3.0
    progress.update(4)  # counted, not printed
    assert out.getvalue().splitlines() == ["checking valid images: 0 img in 2.0s (0.0 img/s)"]
    assert progress.done == 4
