"""What a user sees in a terminal: training on a 100-column pseudo-terminal, rendered as a screen."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.helpers.builders import write_tree
from tests.helpers.terminal import render, run_on_pty

REPO = Path(__file__).resolve().parents[2]
WIDTH = 100


def test_render_follows_carriage_returns_cursor_up_and_wrapping():
    assert render("abc\rX", 10) == ["Xbc"]
    assert render("bar 1\r\nnext\x1b[A\rbar 2", 10) == ["bar 2", "next"]
    assert render("0123456789ab\r\ncd", 10) == ["0123456789ab", "cd"]  # a wrapped line is one line
    assert render("0123456789ab\r\x1b[Kxy", 10) == ["0123456789xy"]
    assert render("0123456789\rZ", 10) == ["Z123456789"]  # a full line: \r stays on it
    assert render("keep\x1b[Kme\rk\x1b[K", 10) == ["k"]


def _train_command(tmp_path: Path, tree: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "entry_points.train", "--data-dir", str(tree), "--model-dir",
            str(tmp_path / "model"), "--output-dir", str(tmp_path / "reports"), "--weights", "none",
            "--image-size", "32", "--batch-size", "4", "--num-workers", "0", "--finetune", "full",
            "--accelerator", "cpu", *extra]


@pytest.mark.slow  # a training subprocess
def test_training_screen_has_metric_lines_at_column_0_and_one_final_bar(tmp_path):
    tree = write_tree(tmp_path / "data", {"train": 4, "valid": 2, "test": 2})
    status, output = run_on_pty(_train_command(tmp_path, tree, "--epochs", "3"), width=WIDTH, cwd=REPO)
    screen = render(output, WIDTH)
    assert status == 0, "\n".join(screen)
    assert "v_num" not in output
    epoch_rows = [line for line in screen if "epoch=" in line]
    assert [line.split()[0] for line in epoch_rows] == ["epoch=1", "epoch=2", "epoch=3"]  # column 0, once each
    bars = [line for line in screen if line.startswith("Epoch ")]
    assert len(bars) == 1 and bars[0].startswith("Epoch 3/3: 100%|"), "\n".join(screen)
    assert screen.index(bars[0]) == screen.index(epoch_rows[-1]) + 1  # the bar is under the last epoch line
    assert not [line for line in screen if line.startswith(("Testing", "Validation", "Sanity"))]
    test_row = next(i for i, line in enumerate(screen) if line.startswith("test: test_loss="))
    assert test_row > screen.index(bars[0])


@pytest.mark.slow  # a training subprocess
def test_ctrl_c_leaves_no_bar_after_the_interrupted_line(tmp_path):
    tree = write_tree(tmp_path / "data", {"train": 8, "valid": 2, "test": 2})
    sent: list[bool] = []

    def interrupt_in_epoch_2(text: str, process) -> None:
        if not sent and "Epoch 2/50:" in text:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
            sent.append(True)

    status, output = run_on_pty(_train_command(tmp_path, tree, "--epochs", "50"), width=WIDTH, cwd=REPO,
                                on_output=interrupt_in_epoch_2)
    screen = render(output, WIDTH)
    assert status == 130, "\n".join(screen)
    assert screen[-1].startswith("interrupted: "), "\n".join(screen)
    assert [line for line in screen if line.startswith("Epoch ")][-1].startswith("Epoch 2/50:")
