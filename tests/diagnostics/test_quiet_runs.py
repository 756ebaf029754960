"""Quiet by default: no smdebug/kineto noise, no Lightning warnings that do not apply, epochs counted from 1
everywhere; the profiler trace covers training steps; the smdebug trial size is estimated before training."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from dogbreed.diagnostics import smdebug_hook
from dogbreed.diagnostics.smdebug_hook import estimate_trial_size, saved_steps, size_message
from dogbreed.training.run import train
from dogbreed.training.runtime import Runtime
from tests.helpers.builders import fast_config, write_tree

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory) -> Path:
    """A seeded random ResNet50 state_dict: 'pretrained' weights for head-only runs, offline."""
    from dogbreed.core.network import build_resnet50

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(build_resnet50(10).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def six_step_tree(tmp_path_factory) -> Path:
    """48 training images: 6 training steps per epoch at batch 8 (the profiler's window needs 5)."""
    return write_tree(tmp_path_factory.mktemp("six") / "data", {"train": 16, "valid": 3, "test": 3})


def test_saved_steps_and_the_size_estimate_are_exact_for_a_known_module():
    assert [saved_steps(12, 3), saved_steps(7, 1), saved_steps(12, 100), saved_steps(0, 5)] == [4, 7, 1, 0]
    module = nn.Sequential(nn.Linear(10, 4), nn.Linear(4, 2))  # 44 + 10 = 54 float32 parameters
    module[0].requires_grad_(False)  # frozen: saved as weights, no gradients
    estimate = estimate_trial_size(module, train_steps=12, eval_steps=7, train_interval=3, eval_interval=1)
    assert (estimate.train_saves, estimate.eval_saves) == (4, 7)
    assert (estimate.bytes_per_train_save, estimate.bytes_per_eval_save) == ((54 + 10) * 4, 54 * 4)
    assert estimate.total_bytes == 4 * 256 + 7 * 216


def test_the_size_message_warns_with_the_fix_only_when_large(monkeypatch):
    module = nn.Linear(1000, 1000)  # 1,001,000 parameters: 4 MB per eval save, 8 MB per train save
    estimate = estimate_trial_size(module, train_steps=200, eval_steps=20, train_interval=1, eval_interval=1)
    text = size_message(estimate, "out/debug-trial", train_interval=1, eval_interval=1, train_steps=200,
                        eval_steps=20)
    assert text == ("smdebug will write about 1.6 GB to out/debug-trial: 200 TRAIN save(s) of 7.6 MB (every 1 of "
                    "200 steps) and 20 EVAL save(s) of 3.8 MB (every 1 of about 20 steps); raise "
                    "--debug-train-interval / --debug-eval-interval (defaults 100 and 10) to write less")
    monkeypatch.setattr(smdebug_hook, "WARN_BYTES", 10**12)
    assert size_message(estimate, "d", train_interval=1, eval_interval=1, train_steps=200, eval_steps=20) == (
        "smdebug will write about 1.6 GB to d: 200 TRAIN save(s) of 7.6 MB (every 1 of 200 steps) and 20 EVAL "
        "save(s) of 3.8 MB (every 1 of about 20 steps)")  # no "raise --debug-train-interval ..."


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_a_local_trial_is_estimated_before_training_and_matches_what_is_written(tmp_path, six_step_tree,
                                                                                 backbone_file, caplog, monkeypatch):
    from dogbreed.diagnostics.run_policy import train_with_diagnostics
    from dogbreed.diagnostics.smdebug_hook import CONFIG_PATH_ENV

    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "absent.json"))
    monkeypatch.setattr(smdebug_hook, "WARN_BYTES", 1000)  # the head alone is ~24 KB per save: "large" here
    config = fast_config(tmp_path, six_step_tree, finetune="head", weights=str(backbone_file), epochs=2,
                         debug_dir=tmp_path / "trial", debug_train_interval=2, debug_eval_interval=1)
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        train_with_diagnostics(config)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "dogbreed.diagnostics.smdebug_hook"]
    # The registered module is the head (2048 x 3 + 3 float32 = 24,588 B; TRAIN adds its gradients).
    # TRAIN: 2 epochs x 6 steps, every 2nd: 6 saves. EVAL (batches of 8 of 9 images: 2 per pass): the sanity
    # check's 1 + 2 validations x 2 + the test split counted like validation, 2: 7 saves.
    assert warnings == [f"smdebug will write about 456.2 KB to {tmp_path / 'trial'}: 6 TRAIN save(s) of 48.0 KB (every "
                        "2 of 12 steps) and 7 EVAL save(s) of 24.0 KB (every 1 of about 7 steps); raise "
                        "--debug-train-interval / --debug-eval-interval (defaults 100 and 10) to write less"]
    estimated = 6 * 2 * 24_588 + 7 * 24_588
    written = sum(p.stat().st_size for p in (tmp_path / "trial" / "events").rglob("*") if p.is_file())
    assert 0.9 * estimated <= written <= 1.25 * estimated  # tensors dominate; record headers add a little


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_the_progress_bar_counts_epochs_from_one(tmp_path, tiny_tree, backbone_file, capsys):
    config = fast_config(tmp_path, tiny_tree, finetune="head", weights=str(backbone_file), epochs=2)
    train(config, runtime=Runtime(cpu_count=1, progress_bar=True))
    captured = capsys.readouterr()
    drawn = captured.out + captured.err  # Lightning draws its bar on stdout
    assert "Epoch 1/2" in drawn and "Epoch 2/2" in drawn
    assert not re.search(r"Epoch 0\b", drawn)


@pytest.mark.slow
def test_a_profiled_head_only_run_is_quiet_and_traces_training_steps(tmp_path, six_step_tree, backbone_file):
    out = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in ("SMDEBUG_LOG_LEVEL", "KINETO_LOG_LEVEL")}
    env.update(PYTHONPATH=str(REPO), SMDEBUG_CONFIG_FILE_PATH=str(tmp_path / "absent.json"))
    proc = subprocess.run(
        [sys.executable, "-m", "entry_points.profiled_train", "--data-dir", str(six_step_tree),
         "--weights", str(backbone_file), "--epochs", "2", "--image-size", "32", "--batch-size", "8",
         "--num-workers", "0", "--accelerator", "cpu", "--profiler", "pytorch", "--model-dir", str(tmp_path / "m"),
         "--output-dir", str(out), "--checkpoint-dir", str(tmp_path / "ckpt")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    noise = ("INFO hook.py", "INFO utils.py", "count_params", "gpuGetDeviceCount", "USDT", "kineto",
             "Profiler is not initialized", "collection.cpp", "in eval mode", "weights_only",
             "default schedule will be overridden")
    for text in (proc.stdout, proc.stderr):
        assert not [line for line in text.splitlines() if any(n in line for n in noise)], text[-3000:]
    assert not [line for line in proc.stdout.splitlines() if line.startswith("[")]  # smdebug's log format
    assert [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("epoch=")] == \
        ["epoch=1", "epoch=2"]
    traces = {p.name.split("-")[0]: p for p in (out / "profile").glob("*.pt.trace.json")}
    assert set(traces) == {"fit", "test"}
    assert "training_step" in traces["fit"].name
    events = Counter(e.get("name", "") for e in json.loads(traces["fit"].read_text())["traceEvents"])
    assert events["[pl][profile][Strategy]SingleDeviceStrategy.training_step"] == 3  # the schedule's 3 active
    assert events["[pl][profile][LightningModule]FeatureHeadClassifier.optimizer_step"] == 3  # whole steps
    assert not [name for name in events if name.endswith("validation_step")]
