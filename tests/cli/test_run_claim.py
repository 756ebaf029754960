"""One run per output dir: another run's model is not replaced without --overwrite, two runs never share dirs."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dogbreed.cli.run_claim import LOCK_FILENAME, check_model_dir_free, claimed_outputs
from dogbreed.config.options import TrainConfig
from dogbreed.core.errors import ConfigError
from tests.helpers.builders import model_of_another_run

REPO = Path(__file__).resolve().parents[2]


def test_a_model_dir_with_another_runs_model_refuses_in_one_line_naming_its_date_and_the_flag(tmp_path):
    model_dir = model_of_another_run(tmp_path / "model", demo=False, checkpoint_dir=None)
    with pytest.raises(ConfigError) as caught:
        check_model_dir_free(TrainConfig(model_dir=model_dir))
    assert str(caught.value) == (
        f"--model-dir {model_dir} holds the model of another run (written 2026-05-28 20:26 UTC): pass --overwrite "
        "to replace it, or choose another --model-dir")
    check_model_dir_free(TrainConfig(model_dir=model_dir, overwrite=True))
    check_model_dir_free(TrainConfig(model_dir=tmp_path / "fresh"))
    (tmp_path / "empty").mkdir()
    check_model_dir_free(TrainConfig(model_dir=tmp_path / "empty"))


def test_the_same_run_again_is_not_another_run(tmp_path):
    resumed = model_of_another_run(tmp_path / "resumed", demo=False, checkpoint_dir=str(tmp_path / "ckpt"))
    check_model_dir_free(TrainConfig(model_dir=resumed, checkpoint_dir=tmp_path / "ckpt"))
    with pytest.raises(ConfigError) as caught:
        check_model_dir_free(TrainConfig(model_dir=resumed, checkpoint_dir=tmp_path / "other"))
    assert str(caught.value) == (
        f"--model-dir {resumed} holds the model of another run (written 2026-05-28 20:26 UTC): pass --overwrite "
        "to replace it, or choose another --model-dir")
    demo = model_of_another_run(tmp_path / "demo", demo=True, checkpoint_dir=None)
    check_model_dir_free(TrainConfig(model_dir=demo, demo=True))  # make demo twice
    with pytest.raises(ConfigError) as caught:
        check_model_dir_free(TrainConfig(model_dir=demo))  # a real run over the demo's model
    assert str(caught.value) == (
        f"--model-dir {demo} holds the model of another run (written 2026-05-28 20:26 UTC): pass --overwrite "
        "to replace it, or choose another --model-dir")


def test_the_cli_refuses_before_training(tmp_path, capsys):
    from dogbreed.cli.train import main

    model_dir = model_of_another_run(tmp_path / "model", demo=False)
    assert main(["--data-dir", str(tmp_path / "none"), "--model-dir", str(model_dir), "--output-dir",
                 str(tmp_path / "reports"), "--epochs", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --model-dir {model_dir} holds the model of another run (written 2026-05-28 20:26 UTC): "
        "pass --overwrite to replace it, or choose another --model-dir")
    assert (model_dir / "model.pth").read_bytes() == b"weights"


def test_a_second_concurrent_run_into_the_same_dirs_stops_at_the_lock(tmp_path):
    config = TrainConfig(model_dir=tmp_path / "model", output_dir=tmp_path / "reports")
    holder = ("import sys, time\nfrom dogbreed.cli.run_claim import claimed_outputs\n"
              "from dogbreed.config.options import TrainConfig\n"
              f"with claimed_outputs(TrainConfig(model_dir={str(tmp_path / 'other')!r}, "
              f"output_dir={str(tmp_path / 'reports')!r})):\n"
              "    print('held', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", holder], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as caught:
            with claimed_outputs(config):
                pass
        message = str(caught.value)
        # only the holder's start time is unknown here (to the minute, UTC)
        pattern = (re.escape(f"--output-dir {tmp_path / 'reports'} is in use by another run (pid {process.pid}, ")
                   + "started "
                   + r"\d{4}-\d\d-\d\d \d\d:\d\d"
                   + re.escape(" UTC): wait for it to finish, or choose another --output-dir"))
        assert re.fullmatch(pattern, message), message
        assert not (tmp_path / "model" / LOCK_FILENAME).exists()  # the first lock was given back
    finally:
        process.kill()
        process.wait()
    time.sleep(0.1)
    with claimed_outputs(config):  # free again once the other run is gone
        assert (tmp_path / "model" / LOCK_FILENAME).exists()
    assert not (tmp_path / "model" / LOCK_FILENAME).exists() and not (tmp_path / "reports" / LOCK_FILENAME).exists()


def test_a_run_that_wrote_nothing_leaves_no_dirs_and_bad_dirs_keep_their_message(tmp_path):
    config = TrainConfig(model_dir=tmp_path / "a" / "model", output_dir=tmp_path / "a" / "reports")
    with pytest.raises(RuntimeError):
        with claimed_outputs(config):
            assert (tmp_path / "a" / "model" / LOCK_FILENAME).is_file()
            raise RuntimeError("the data check failed")
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError) as caught:
        with claimed_outputs(TrainConfig(model_dir=tmp_path / "m", output_dir=tmp_path / "file" / "sub")):
            pass
    assert str(caught.value) == f"--output-dir {tmp_path / 'file' / 'sub'} cannot be created: {tmp_path / 'file'} " \
                                "is a file, not a directory"
    assert not (tmp_path / "m").exists()
