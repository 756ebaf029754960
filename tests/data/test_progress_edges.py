"""Progress edges: the byte units' boundaries, and which process of a multi-node run prints."""

from __future__ import annotations

import io

import pytest

from dogbreed.data.progress import format_bytes, is_rank_zero, progress_style


@pytest.fixture(autouse=True)
def no_forced_style(monkeypatch):
    for name in ("DOGBREED_PROGRESS", "DOGBREED_PROGRESS_INTERVAL", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("count, shown", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"),
    (1024**2, "1.0 MB"), (1024**3, "1.0 GB"), (5 * 1024**4, "5120.0 GB"),
])
def test_a_unit_starts_at_exactly_1024_of_the_one_below(count, shown):
    assert format_bytes(count) == shown


@pytest.mark.parametrize("rank, local_rank, first", [
    ("4", "0", False),  # the first process of the second node: its LOCAL_RANK is 0, its global RANK is not
    ("0", "0", True), ("1", "1", False), ("0", None, True), (None, "0", True), (None, "2", False), (None, None, True),
])
def test_only_global_rank_0_prints_progress(monkeypatch, rank, local_rank, first):
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if value is not None:
            monkeypatch.setenv(name, value)
    assert is_rank_zero() is first
    assert progress_style(io.StringIO()) == ("lines" if first else "off")


def test_a_total_of_zero_reads_as_a_count_without_a_total():
    from dogbreed.data.progress import Progress

    progress = Progress(0, "checking valid", stream=io.StringIO(), style="lines", clock=lambda: 100.0)
    assert progress.status_line(104.0) == "checking valid: 0 img, 0.0 img/s"  # an empty split: no 0/0 percent
