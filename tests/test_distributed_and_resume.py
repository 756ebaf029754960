"""Multi-process DDP under torchrun (as SageMaker's torch_distributed starts it) and spot-style resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _train_args(tree: Path, out: Path, epochs: int) -> list[str]:
    return ["--data-dir", str(tree), "--model-dir", str(out / "model"), "--output-dir", str(out / "reports"),
            "--weights", "none", "--epochs", str(epochs), "--image-size", "32", "--finetune", "full",
            "--num-workers", "0", "--batch-size", "8", "--accelerator", "cpu"]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_two_process_cpu_ddp_writes_one_artifact_and_one_set_of_lines(tmp_path, learnable_tree):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "entry_points.train", *_train_args(learnable_tree, tmp_path, epochs=2)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("epoch=")] == ["epoch=1", "epoch=2"]
    assert sum(line.startswith("test: ") for line in lines) == 1, proc.stdout + proc.stderr[-3000:]
    assert sum(line.startswith("model artifact:") for line in lines) == 1
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.pth", "model_config.json"]
    assert len(json.loads((tmp_path / "reports" / "metrics.json").read_text())["history"]) == 2


@pytest.mark.slow
def test_killed_job_resumes_from_its_last_checkpoint(tmp_path, learnable_tree):
    epochs = 4
    cmd = [sys.executable, "-m", "entry_points.train", *_train_args(learnable_tree, tmp_path, epochs),
           "--checkpoint-dir", str(tmp_path / "ckpt")]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True)
    checkpoint = tmp_path / "ckpt" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # a spot interruption: no cleanup, no final save
    first_out = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    done_before = [line.split()[0] for line in first_out.splitlines() if line.startswith("epoch=")]
    assert 1 <= len(done_before) < epochs
    assert not (tmp_path / "model" / "model.pth").exists()

    second = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from checkpoint" in second.stderr
    resumed = [line.split()[0] for line in second.stdout.splitlines() if line.startswith("epoch=")]
    # At most the interrupted epoch is redone, and the run ends at the requested epoch count.
    assert resumed == [f"epoch={i}" for i in range(len(done_before) + 1, epochs + 1)]
    history = json.loads((tmp_path / "reports" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert (tmp_path / "model" / "model.pth").is_file()
