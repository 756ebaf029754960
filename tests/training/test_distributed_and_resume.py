"""Multi-process DDP under torchrun (as SageMaker's torch_distributed starts it) and spot-style resume."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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


# Runs the train CLI with one extra callback that SIGKILLs the process right after epoch 2's checkpoint is written:
# a spot interruption at a known point, not a race between a polling loop and the training.
KILL_AFTER_EPOCH_2 = """
import os, signal, sys
from pytorch_lightning.callbacks import Callback
from dogbreed.training import run

class KillAfterEpoch2(Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final save

real_build = run.build_callbacks
run.build_callbacks = lambda config, *args: [*real_build(config, *args), KillAfterEpoch2()]
from dogbreed.cli.train import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_killed_job_resumes_from_its_last_checkpoint(tmp_path, learnable_tree):
    epochs = 4
    args = [*_train_args(learnable_tree, tmp_path, epochs), "--checkpoint-dir", str(tmp_path / "ckpt")]
    first = subprocess.run([sys.executable, "-c", KILL_AFTER_EPOCH_2, *args], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    done_before = [line.split()[0] for line in first.stdout.splitlines() if line.startswith("epoch=")]
    assert done_before == ["epoch=1", "epoch=2"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=1.ckpt", "epoch=2.ckpt"]
    assert not (tmp_path / "model" / "model.pth").exists()

    cmd = [sys.executable, "-m", "entry_points.train", *args]
    second = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from checkpoint" in second.stderr and "epoch=2.ckpt (2 epoch(s) done)" in second.stderr
    resumed = [line.split()[0] for line in second.stdout.splitlines() if line.startswith("epoch=")]
    assert resumed == ["epoch=3", "epoch=4"]  # nothing redone, and the run ends at the requested epoch count
    history = json.loads((tmp_path / "reports" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert (tmp_path / "model" / "model.pth").is_file()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=3.ckpt", "epoch=4.ckpt", "finished.json"]
    config = json.loads((tmp_path / "model" / "model_config.json").read_text())
    assert config["hyperparameters"]["resumed_from"] == {"checkpoint": "epoch=2.ckpt", "epochs_done": 2,
                                                         "differences": []}

    third = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 2 and "holds a finished run" in third.stderr  # not silently re-exported
