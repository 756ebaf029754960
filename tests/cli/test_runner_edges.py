"""The command runner's edges: an OSError that is not a refused write stays a traceback, the summary and the
interrupted line come from rank 0 only; and where profile_report says the profile lies."""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import pytest

from dogbreed.cli.profile_report import _where
from dogbreed.cli.runner import Outcome, run_command
from dogbreed.core.errors import RunInterrupted


@pytest.mark.parametrize("code", [errno.ENOENT, errno.EIO, errno.EISDIR])
def test_an_os_error_other_than_a_refused_write_is_not_hidden_as_a_user_error(code, capsys):
    def body() -> None:
        raise OSError(code, "boom", "/data/x.jpg")

    with pytest.raises(OSError) as raised:  # a bug or a broken disk: the traceback, not "error: ..." and exit 2
        run_command(body)
    assert raised.value.errno == code
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("rank, printed", [("0", "trained: val_acc 0.91\n"), ("1", ""), ("3", "")])
def test_the_summary_is_printed_by_rank_0_alone_and_every_rank_returns_the_status(monkeypatch, capsys, rank,
                                                                                    printed):
    monkeypatch.setenv("RANK", rank)
    assert run_command(lambda: Outcome("trained: val_acc 0.91", status=1)) == 1
    assert capsys.readouterr().out == printed


@pytest.mark.parametrize("rank, printed", [("0", "interrupted: checkpoint saved\n"), ("2", "")])
def test_the_interrupted_line_is_rank_0_s_and_the_status_is_128_plus_the_signal(monkeypatch, capsys, rank, printed):
    monkeypatch.setenv("RANK", rank)

    def body() -> None:
        raise RunInterrupted(signal.SIGTERM, "checkpoint saved")

    assert run_command(body) == 143
    assert capsys.readouterr().err == printed


@pytest.mark.parametrize("source, root, profile, shown", [
    ("runs/a/profile", "runs/a/profile", "runs/a/profile", "runs/a/profile"),  # a local dir, as given
    ("job/output.tar.gz", "/w/archive", "/w/archive", "job/output.tar.gz"),  # the profile at the archive's top
    ("job/output.tar.gz", "/w/archive", "/w/archive/reports/profile", "job/output.tar.gz (reports/profile)"),
    ("s3://b/p/job/tensorboard-output/", "/w/s3", "/w/s3", "s3://b/p/job/tensorboard-output/"),
    ("s3://b/p/job/output/", "/w/s3", "/w/s3/output.tar.gz.unpacked/profile",
     "s3://b/p/job/output (output.tar.gz.unpacked/profile)"),
])
def test_the_report_names_the_profile_as_the_user_gave_its_source(source, root, profile, shown):
    assert _where(source, Path(root), Path(profile)) == shown
