"""Run claim edges: demo over a real run's model, one dir given as both outputs, a stale lock file's text, and
the ranks that claim nothing."""

from __future__ import annotations

import os
import re

import pytest

from dogbreed.cli.run_claim import LOCK_FILENAME, check_model_dir_free, claimed_outputs
from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ConfigError
from tests.helpers.builders import model_of_another_run


@pytest.fixture(autouse=True)
def first_process(monkeypatch):
    for name in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_a_demo_does_not_replace_a_real_runs_model(tmp_path):
    model_dir = model_of_another_run(tmp_path / "model", demo=False, checkpoint_dir=None)
    with pytest.raises(ConfigError) as caught:
        check_model_dir_free(TrainConfig(model_dir=model_dir, demo=True))
    assert str(caught.value) == (
        f"--model-dir {model_dir} holds the model of another run (written 2026-05-28 20:26 UTC): pass --overwrite "
        "to replace it, or choose another --model-dir")


def test_one_dir_given_as_model_dir_and_output_dir_is_locked_once(tmp_path):
    both = tmp_path / "run"
    with claimed_outputs(TrainConfig(model_dir=both, output_dir=both)):
        assert [p.name for p in both.iterdir()] == [LOCK_FILENAME]
    assert not both.exists()  # made for the lock, left empty: removed


def test_a_stale_lock_files_text_is_replaced_not_appended_to(tmp_path):
    model_dir, reports = tmp_path / "model", tmp_path / "reports"
    model_dir.mkdir()
    (model_dir / LOCK_FILENAME).write_text("pid 1, started 2020-01-01 00:00 UTC")  # a run killed with -9
    with claimed_outputs(TrainConfig(model_dir=model_dir, output_dir=reports)):
        text = (model_dir / LOCK_FILENAME).read_text()
        assert re.fullmatch(rf"pid {os.getpid()}, started \d{{4}}-\d\d-\d\d \d\d:\d\d UTC", text), text
    assert not (model_dir / LOCK_FILENAME).exists() and not reports.exists()


@pytest.mark.parametrize("rank, local_rank", [("2", "0"), ("0", "1"), ("3", "3")])
def test_a_process_other_than_global_rank_0_claims_nothing(tmp_path, monkeypatch, rank, local_rank):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    # rank 0 alone checks and refuses
    model_dir = model_of_another_run(tmp_path / "model", demo=False, checkpoint_dir=None)
    with claimed_outputs(TrainConfig(model_dir=model_dir, output_dir=tmp_path / "reports")):
        assert not (model_dir / LOCK_FILENAME).exists() and not (tmp_path / "reports").exists()
