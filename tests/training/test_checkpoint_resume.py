"""The one checkpoint/resume mechanism: names, fallback, run fingerprints, finished runs, exact resumption."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from dogbreed.core.errors import CheckpointError, RunInterrupted
from dogbreed.core.fileio import OutputError, write_under_final_name
from dogbreed.training import checkpoints
from dogbreed.training.checkpoints import (
    FINISHED_MARKER,
    mark_finished,
    own_checkpoints,
    plan_resume,
    run_fingerprint,
)
from dogbreed.training.run import train
from tests.helpers.builders import fast_config, write_tree

FINGERPRINT = {"options": {"lr": 0.002, "epochs": 3}, "class_dirs": ["a", "b"], "images": {"train": 4}, "files": "f1"}


def _fake_checkpoint(path: Path, epoch: int, fingerprint: dict | None = FINGERPRINT, classes: int = 2) -> Path:
    state = {"state_dict": {"net.fc.weight": torch.zeros(classes, 4)}, "epoch": epoch - 1}
    if fingerprint is not None:
        state["dogbreed"] = {"fingerprint": fingerprint, "epoch": epoch}
    torch.save(state, path)
    return path


# ---- choosing the checkpoint ----------------------------------------------------------------------------

def test_only_own_names_count_and_newest_is_by_epoch_not_mtime(tmp_path: Path, caplog) -> None:
    _fake_checkpoint(tmp_path / "epoch=10.ckpt", 10)
    _fake_checkpoint(tmp_path / "epoch=9.ckpt", 9)
    _fake_checkpoint(tmp_path / "notes.ckpt", 99)  # a stray file: newest by mtime, ignored by name
    _fake_checkpoint(tmp_path / "last.ckpt", 50)
    os.utime(tmp_path / "epoch=10.ckpt", (1, 1))  # S3 restores set arbitrary mtimes
    assert [epoch for epoch, _ in own_checkpoints(tmp_path)] == [10, 9]
    with caplog.at_level(logging.WARNING):
        plan = plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert (plan.path, plan.epoch) == (tmp_path / "epoch=10.ckpt", 10)
    assert caplog.messages == [f"ignoring last.ckpt, notes.ckpt in {tmp_path}: only epoch=N.ckpt files are dogbreed "
                               "checkpoints"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_unloadable_newest_falls_back_to_the_previous_with_a_warning(tmp_path: Path, caplog, damage: str) -> None:
    _fake_checkpoint(tmp_path / "epoch=2.ckpt", 2)
    newest = _fake_checkpoint(tmp_path / "epoch=3.ckpt", 3)
    data = newest.read_bytes()
    newest.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not a zip"}[damage])
    with caplog.at_level(logging.WARNING):
        plan = plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert (plan.path.name, plan.epoch) == ("epoch=2.ckpt", 2)
    reason = {"truncated": "its zip archive is incomplete or damaged: a cut-short or corrupted copy",
              "empty": "the file is empty", "garbage": "it is not a PyTorch file: neither torch.save's zip archive "
                                                       "nor a pickle"}[damage]
    assert caplog.messages == [f"checkpoint {newest} cannot be loaded ({reason}): trying the previous one"]


def test_no_loadable_checkpoint_starts_from_scratch_with_a_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / "epoch=1.ckpt").write_bytes(b"")  # killed during the very first checkpoint write
    with caplog.at_level(logging.WARNING):
        plan = plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert plan.path is None and plan.epoch == 0
    assert caplog.messages[-1] == (f"no checkpoint in {tmp_path} can be loaded: training starts from epoch 1 (they "
                                   "will be replaced)")


def test_a_file_that_is_not_a_lightning_checkpoint_is_passed_over_with_its_reason(tmp_path: Path, caplog) -> None:
    _fake_checkpoint(tmp_path / "epoch=2.ckpt", 2)
    foreign = tmp_path / "epoch=3.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)  # loads, but holds no state_dict
    with caplog.at_level(logging.WARNING):
        plan = plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert (plan.path.name, plan.epoch) == ("epoch=2.ckpt", 2)
    assert caplog.messages == [f"checkpoint {foreign} cannot be loaded (not a Lightning checkpoint): trying the "
                               "previous one"]


def test_checkpoint_of_another_run_is_refused_naming_dir_and_fix(tmp_path: Path) -> None:
    other = dict(FINGERPRINT, options={"lr": 0.01, "epochs": 3}, files="f2")
    _fake_checkpoint(tmp_path / "epoch=2.ckpt", 2, other)
    with pytest.raises(CheckpointError) as caught:
        plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert str(caught.value) == (
        f"checkpoint dir {tmp_path} holds another run (epoch=2.ckpt: --lr 0.01 in the checkpoint, 0.002 now; the image "
        "files differ): pass another --checkpoint-dir for this run, or --resume-anyway to continue from it regardless "
        "(its weights, optimizer and schedule state win)")


def test_checkpoint_without_fingerprint_is_refused(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path / "epoch=1.ckpt", 1, fingerprint=None)
    with pytest.raises(CheckpointError) as refused:
        plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert str(refused.value) == (
        f"checkpoint dir {tmp_path} holds another run (epoch=1.ckpt: it records no dogbreed run fingerprint): pass "
        "another --checkpoint-dir for this run, or --resume-anyway to continue from it regardless (its weights, "
        "optimizer and schedule state win)")


def test_resume_anyway_accepts_another_run_and_records_the_differences(tmp_path: Path, caplog) -> None:
    _fake_checkpoint(tmp_path / "epoch=2.ckpt", 2, dict(FINGERPRINT, options={"lr": 0.01, "epochs": 3}))
    with caplog.at_level(logging.WARNING):
        plan = plan_resume(tmp_path, FINGERPRINT, resume_anyway=True, num_classes=2)
    assert plan.path == tmp_path / "epoch=2.ckpt"
    assert plan.record() == {"checkpoint": "epoch=2.ckpt", "epochs_done": 2,
                             "differences": ["--lr 0.01 in the checkpoint, 0.002 now"]}
    assert caplog.messages == [f"--resume-anyway: resuming {tmp_path / 'epoch=2.ckpt'} although --lr 0.01 in the "
                               "checkpoint, 0.002 now"]


def test_another_class_count_is_refused_even_with_resume_anyway(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path / "epoch=2.ckpt", 2, classes=5)
    with pytest.raises(CheckpointError) as refused:
        plan_resume(tmp_path, FINGERPRINT, resume_anyway=True, num_classes=2)
    assert str(refused.value) == (f"checkpoint dir {tmp_path}: epoch=2.ckpt is a 5-class model and this data has 2 "
                                  "classes, so it cannot be resumed: pass another --checkpoint-dir")


def test_finished_run_is_refused_unless_resume_anyway(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path / "epoch=3.ckpt", 3)
    mark_finished(tmp_path, 3, tmp_path / "model")
    with pytest.raises(CheckpointError) as caught:
        plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert str(caught.value) == (
        f"checkpoint dir {tmp_path} holds a finished run (3 epoch(s), model exported to {tmp_path / 'model'}): nothing "
        "is left to train: pass another --checkpoint-dir for this run, or --resume-anyway to continue from it "
        "regardless (its weights, optimizer and schedule state win)")
    assert plan_resume(tmp_path, FINGERPRINT, resume_anyway=True, num_classes=2).epoch == 3


def test_fingerprint_covers_training_options_and_data_not_paths(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "data", {"train": 2, "valid": 1})
    config = fast_config(tmp_path, tree)
    roots = {"train": tree / "train", "valid": tree / "valid"}

    def fingerprint(config=config):
        samples = {split: sorted((p, 0) for p in root.rglob("*.*")) for split, root in roots.items()}
        return run_fingerprint(config.to_dict(), ["x"], samples, roots)

    base = fingerprint()
    elsewhere = dataclasses.replace(config, model_dir=tmp_path / "m2", num_workers=3, accelerator="auto",
                                    checkpoint_dir=tmp_path / "ck", precision="32-true")
    assert checkpoints.fingerprint_differences(base, fingerprint(elsewhere)) == []
    assert checkpoints.fingerprint_differences(base, fingerprint(dataclasses.replace(config, label_smoothing=0.1))) \
        == ["--label-smoothing 0.0 in the checkpoint, 0.1 now"]
    image = next((tree / "train").rglob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")  # same names, one file changed (size)
    assert checkpoints.fingerprint_differences(base, fingerprint()) == ["the image files differ"]


def test_write_under_final_name_removes_a_partial_file(tmp_path: Path, monkeypatch) -> None:
    def failing_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dogbreed.core.fileio.os.fsync", failing_fsync)
    with pytest.raises(OutputError) as refused:
        write_under_final_name(tmp_path / "epoch=2.ckpt", b"x" * 1000)
    assert str(refused.value) == (f"no space left writing {tmp_path} (needs about 1 MB): free some space there or "
                                  "write elsewhere")
    assert list(tmp_path.iterdir()) == []


# ---- real runs --------------------------------------------------------------------------------------------

class OptimizerAtEpochStart(Callback):
    """Records the optimizer and scheduler state and the weights when epoch ``epoch`` (0-based) starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.optimizer: dict | None = None
        self.scheduler: dict | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            state = trainer.optimizers[0].state_dict()["state"]
            self.optimizer = {(group, key): value.clone() for group, values in state.items()
                              for key, value in values.items()}
            self.scheduler = dict(trainer.lr_scheduler_configs[0].scheduler.state_dict())


class SignalAt(Callback):
    """Sends ``signum`` to this process at the end of training batch ``batch`` of epoch ``epoch`` (0-based), or at
    the end of that epoch (after its checkpoint) when ``batch`` is None: no timing race."""

    def __init__(self, epoch: int, batch: int | None, signum: int = signal.SIGTERM) -> None:
        self.epoch, self.batch, self.signum = epoch, batch, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.signum)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and self.batch is None:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def resume_tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("resume") / "data", {"train": 6, "valid": 2, "test": 2})


@pytest.fixture(scope="module")
def uninterrupted(resume_tree: Path, tmp_path_factory):
    """A 3-epoch run with checkpoints, and the optimizer state it had when epoch 3 started."""
    out = tmp_path_factory.mktemp("uninterrupted")
    config = fast_config(out, resume_tree, epochs=3, checkpoint_dir=out / "ckpt")
    probe = OptimizerAtEpochStart(2)
    result = train(config, extra_callbacks=[probe])
    return config, result, probe


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_finished_run_keeps_the_newest_two_checkpoints_and_a_marker(uninterrupted) -> None:
    config, result, _ = uninterrupted
    checkpoint_dir = config.checkpoints.checkpoint_dir
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == ["epoch=2.ckpt", "epoch=3.ckpt", FINISHED_MARKER]
    saved = torch.load(checkpoint_dir / "epoch=3.ckpt", map_location="cpu", weights_only=True)
    history = next(state["history"] for key, state in saved["callbacks"].items() if key.startswith("EpochHistory"))
    assert [row["epoch"] for row in history] == [1, 2, 3] and history == result.history
    lr = config.optimisation.lr
    assert saved["dogbreed"]["epoch"] == 3 and saved["dogbreed"]["fingerprint"]["options"]["lr"] == lr
    assert saved["lr_schedulers"][0]["last_epoch"] == 6  # 2 optimizer steps per epoch (16 images, batch 8)
    assert set(saved["optimizer_states"][0]["state"]) == set(range(len(saved["optimizer_states"][0]["state"])))


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_rerun_into_a_finished_runs_dir_is_refused_before_training(uninterrupted, capsys) -> None:
    config, _, _ = uninterrupted
    before = (config.outputs.model_dir / "model.pth").stat().st_mtime_ns
    checkpoint_dir = config.checkpoints.checkpoint_dir
    with pytest.raises(CheckpointError) as refused:
        train(config)
    assert str(refused.value) == (
        f"checkpoint dir {checkpoint_dir} holds a finished run (3 epoch(s), model exported to "
        f"{config.outputs.model_dir}): nothing is left to train: pass another --checkpoint-dir for this run, or "
        "--resume-anyway to continue from it regardless (its weights, optimizer and schedule state win)")
    with pytest.raises(CheckpointError) as refused:
        train(dataclasses.replace(config, lr=0.01))
    assert str(refused.value) == (
        f"checkpoint dir {checkpoint_dir} holds another run (epoch=3.ckpt: --lr 0.002 in the checkpoint, 0.01 now): "
        "pass another --checkpoint-dir for this run, or --resume-anyway to continue from it regardless (its "
        "weights, optimizer and schedule state win)")
    assert (config.outputs.model_dir / "model.pth").stat().st_mtime_ns == before
    assert "epoch=" not in capsys.readouterr().out  # no epoch ran


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(uninterrupted, resume_tree, tmp_path) -> None:
    full_config, full_result, full_probe = uninterrupted
    config = dataclasses.replace(full_config, model_dir=tmp_path / "model", output_dir=tmp_path / "reports",
                                 checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(RunInterrupted) as caught:
        train(config, extra_callbacks=[SignalAt(epoch=1, batch=None)])  # after epoch 2's checkpoint
    assert caught.value.signum == signal.SIGTERM
    assert caught.value.message == (
        f"stopped by SIGTERM in epoch 3 of 3: nothing was exported to {tmp_path / 'model'}; checkpoint "
        f"{tmp_path / 'ckpt' / 'epoch=2.ckpt'} holds epochs 1-2: run the same command to resume from epoch 3")
    assert not (tmp_path / "model").exists() or not any((tmp_path / "model").iterdir())

    probe = OptimizerAtEpochStart(2)
    resumed = train(config, extra_callbacks=[probe])
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history == full_result.history  # epochs 1-2 restored, epoch 3 identical
    [fit_line] = [line for line in resumed.summary if line.startswith("  fit ")]
    assert re.search(r"\(1 epoch\(s\), [0-9.]+ train img/s; resumed after epoch 2\)$", fit_line), fit_line
    assert probe.optimizer is not None and full_probe.optimizer is not None
    assert probe.optimizer.keys() == full_probe.optimizer.keys()
    assert all(torch.equal(probe.optimizer[key], full_probe.optimizer[key]) for key in probe.optimizer)
    assert probe.scheduler == full_probe.scheduler
    ours = torch.load(tmp_path / "model" / "model.pth", weights_only=True)
    theirs = torch.load(full_config.outputs.model_dir / "model.pth", weights_only=True)
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs)  # RNG states travel in the checkpoint


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_sigterm_mid_epoch_exits_143_saying_what_was_saved(resume_tree, tmp_path, monkeypatch, capsys) -> None:
    from dogbreed.training import run
    from entry_points import train as train_cli

    real_build = run.build_callbacks
    monkeypatch.setattr(run, "build_callbacks",
                        lambda config, *args: [*real_build(config, *args), SignalAt(1, batch=0)])
    previous = signal.getsignal(signal.SIGTERM)
    argv = ["--data-dir", str(resume_tree), "--model-dir", str(tmp_path / "model"), "--output-dir",
            str(tmp_path / "reports"), "--epochs", "3", "--batch-size", "8", "--image-size", "32", "--weights", "none",
            "--finetune", "full", "--num-workers", "0", "--accelerator", "cpu", "--checkpoint-dir",
            str(tmp_path / "ckpt")]
    assert train_cli.main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    line = [row for row in err.splitlines() if row.startswith("interrupted: ")]
    assert line == [f"interrupted: stopped by SIGTERM in epoch 2 of 3: nothing was exported to {tmp_path / 'model'}; "
                    f"checkpoint {tmp_path / 'ckpt' / 'epoch=1.ckpt'} holds epoch 1: run the same command to "
                    "resume from epoch 2"]
    assert "Traceback" not in err
    assert not (tmp_path / "model" / "model.pth").exists()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=1.ckpt"]
    assert signal.getsignal(signal.SIGTERM) == previous  # the run's handlers are removed again


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_signal_during_a_checkpoint_write_waits_for_it(resume_tree, tmp_path, monkeypatch) -> None:
    real_write = checkpoints.write_under_final_name

    def write_then_signal(path: Path, data: bytes) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the checkpoint is being written
        real_write(path, data)

    monkeypatch.setattr(checkpoints, "write_under_final_name", write_then_signal)
    config = fast_config(tmp_path, resume_tree, epochs=2, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(RunInterrupted) as caught:
        train(config)
    assert caught.value.signum == signal.SIGINT
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=1.ckpt"]
    complete = torch.load(tmp_path / "ckpt" / "epoch=1.ckpt", map_location="cpu", weights_only=True)
    assert complete["dogbreed"]["epoch"] == 1


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_failed_checkpoint_write_keeps_the_previous_and_leaves_no_partial_file(resume_tree, tmp_path,
                                                                               monkeypatch) -> None:
    real_fsync, calls = os.fsync, []

    def fsync_failing_on_second_checkpoint(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr("dogbreed.core.fileio.os.fsync", fsync_failing_on_second_checkpoint)
    config = fast_config(tmp_path, resume_tree, epochs=3, checkpoint_dir=tmp_path / "ckpt")
    with pytest.raises(OutputError) as refused:
        train(config)
    # the size is the checkpoint's, which the test does not fix; the rest is exact
    assert re.fullmatch(rf"no space left writing {re.escape(str(tmp_path / 'ckpt'))} \(needs about [1-9]\d* MB\): "
                        r"free some space there or write elsewhere", str(refused.value)), str(refused.value)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=1.ckpt"]
    assert plan_resume(tmp_path / "ckpt", torch.load(tmp_path / "ckpt" / "epoch=1.ckpt", weights_only=True)
                       ["dogbreed"]["fingerprint"], num_classes=3).epoch == 1


def test_a_loaded_checkpoint_puts_back_the_torch_python_and_numpy_random_states(tmp_path: Path) -> None:
    import random

    import numpy as np
    import torch

    from dogbreed.training.checkpoints import EpochCheckpoint

    callback = EpochCheckpoint(tmp_path, {"class_dirs": ["a", "b"]})
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    saved: dict = {}
    callback.on_save_checkpoint(_FakeTrainer(), None, saved)  # type: ignore[arg-type]
    expected = (torch.rand(4).tolist(), random.random(), np.random.rand(2).tolist())
    torch.rand(100), random.random(), np.random.rand(7)  # the process moves on
    callback.on_load_checkpoint(None, None, saved)  # type: ignore[arg-type]
    assert (torch.rand(4).tolist(), random.random(), np.random.rand(2).tolist()) == expected
    assert saved["dogbreed"]["epoch"] == 5 and saved["dogbreed"]["fingerprint"] == {"class_dirs": ["a", "b"]}


class _FakeTrainer:
    current_epoch = 4


def test_the_files_fingerprint_is_stable_across_versions_and_machines(tmp_path: Path) -> None:
    """Checkpoints written by an earlier dogbreed must still resume: the digest of (split, relative path, label,
    size) lines is written out here; changing its format refuses every existing checkpoint as another run."""
    from dogbreed.training.checkpoints import run_fingerprint

    (tmp_path / "elsewhere" / "train" / "001.A").mkdir(parents=True)
    (tmp_path / "valid" / "001.A").mkdir(parents=True)
    train_file = tmp_path / "elsewhere" / "train" / "001.A" / "x.jpg"
    valid_file = tmp_path / "valid" / "001.A" / "y.jpg"
    train_file.write_bytes(b"a" * 10)
    valid_file.write_bytes(b"b" * 7)
    fingerprint = run_fingerprint({"lr": 0.01, "model_dir": "m"}, ["001.A"],
                                  {"valid": [(valid_file, 0)], "train": [(train_file, 0)]},
                                  {"train": tmp_path / "elsewhere" / "train", "valid": tmp_path / "valid"})
    assert fingerprint == {"options": {"lr": 0.01}, "class_dirs": ["001.A"], "images": {"train": 1, "valid": 1},
                           # sha256 of "train\0" "001.A/x.jpg\0" "0\0" "10\n" "valid\0" "001.A/y.jpg\0" "0\0" "7\n"
                           "files": "56c74de3b4fd15b9f8acac0bdbe7841533fa3ada3eabd23062cb0c5ce8f8ff8a"}


@pytest.mark.parametrize("saved, epochs, part", [
    ([], 5, "no epoch completed, so {dir} holds no checkpoint of this run yet"),
    ([1], 5, "checkpoint {dir}/epoch=1.ckpt holds epoch 1: run the same command to resume from epoch 2"),
    ([1, 2], 5, "checkpoint {dir}/epoch=2.ckpt holds epochs 1-2: run the same command to resume from epoch 3"),
    ([4], 5, "checkpoint {dir}/epoch=4.ckpt holds epochs 1-4: run the same command to resume from epoch 5"),
    ([4, 5], 5, "checkpoint {dir}/epoch=5.ckpt holds all 5 epochs: run the same command to test and export"),
])
def test_an_interrupted_run_says_which_epoch_a_rerun_resumes_from(tmp_path: Path, saved, epochs, part) -> None:
    from dogbreed.training.checkpoints import _checkpoint_part

    for epoch in saved:
        (tmp_path / f"epoch={epoch}.ckpt").write_bytes(b"x")
    assert _checkpoint_part(tmp_path, epochs) == part.format(dir=tmp_path)
    assert _checkpoint_part(None, epochs) == "no checkpoint was written (pass --checkpoint-dir to make a run resumable)"


def test_an_epoch_checkpoint_keeps_itself_and_the_one_before_and_drops_an_abandoned_attempts_later_epochs(
        tmp_path: Path) -> None:
    from types import SimpleNamespace

    from dogbreed.training.checkpoints import EpochCheckpoint

    # epochs 1-6 of an earlier attempt (resumed here from epoch 2: its epochs 4-6 are of another history)
    for epoch in range(1, 7):
        (tmp_path / f"epoch={epoch}.ckpt").write_bytes(b"old")
    (tmp_path / "last.ckpt").write_bytes(b"not ours")
    barriers: list[str] = []
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=2, is_global_zero=True,
                              save_checkpoint=lambda path, weights_only: Path(path).write_bytes(b"new"),
                              strategy=SimpleNamespace(barrier=barriers.append))
    EpochCheckpoint(tmp_path, {}).on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch=2.ckpt", "epoch=3.ckpt", "last.ckpt"]
    assert (tmp_path / "epoch=3.ckpt").read_bytes() == b"new" and barriers == ["dogbreed-checkpoint"]


@pytest.mark.parametrize("epochs_done, started, phase", [
    (0, False, "before training started"),
    (0, True, "in epoch 1 of 3"),
    (2, True, "in epoch 3 of 3"),
    (3, True, "after all 3 epochs (while testing)"),
])
def test_an_interrupted_run_names_the_phase_it_stopped_in(tmp_path: Path, epochs_done, started, phase) -> None:
    from dogbreed.training.checkpoints import interrupted

    error = interrupted(signal.SIGTERM, checkpoint_dir=None, epochs=3, model_dir=tmp_path / "model",
                        output_dir=tmp_path / "out", training_started=started, epochs_done=epochs_done)
    assert str(error).startswith(f"stopped by SIGTERM {phase}: nothing was exported to {tmp_path / 'model'}; ")


def test_the_epochs_done_are_the_ones_the_checkpoint_records_else_its_name(tmp_path: Path) -> None:
    # a checkpoint copied under another name (epoch=7.ckpt holding 4 epochs) resumes after the 4 it holds
    state = {"state_dict": {"net.fc.weight": torch.zeros(2, 4)}, "epoch": 3,
             "dogbreed": {"fingerprint": FINGERPRINT, "epoch": 4}}
    torch.save(state, tmp_path / "epoch=7.ckpt")
    plan = plan_resume(tmp_path, FINGERPRINT, num_classes=2)
    assert (plan.path.name, plan.epoch) == ("epoch=7.ckpt", 4)
    assert plan.record() == {"checkpoint": "epoch=7.ckpt", "epochs_done": 4, "differences": []}
    # one without our record (resumed anyway): its name is all there is
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    _fake_checkpoint(foreign / "epoch=6.ckpt", 6, fingerprint=None)
    plan = plan_resume(foreign, FINGERPRINT, resume_anyway=True, num_classes=2)
    assert plan.epoch == 6 and plan.differences == ["it records no dogbreed run fingerprint"]


def test_the_data_difference_named_is_the_most_basic_one() -> None:
    saved = {"options": {"lr": 0.01, "seed": 1}, "class_dirs": ["a", "b"], "images": {"train": 4}, "files": "f1"}
    # other class folders change the counts and the files too: only the folders are named
    other = {"options": {"lr": 0.02, "epochs": 3}, "class_dirs": ["a", "c", "d"], "images": {"train": 6}, "files": "f2"}
    assert checkpoints.fingerprint_differences(saved, other) == [
        "--epochs None in the checkpoint, 3 now", "--lr 0.01 in the checkpoint, 0.02 now",
        "--seed 1 in the checkpoint, None now", "the class folders differ"]
    # the same folders with more images: the counts, not the files
    assert checkpoints.fingerprint_differences(saved, {**saved, "images": {"train": 5}, "files": "f2"}) == [
        "the image counts differ ({'train': 4} in the checkpoint, {'train': 5} now)"]
    assert checkpoints.fingerprint_differences(saved, {**saved, "files": "f2"}) == ["the image files differ"]
    assert checkpoints.fingerprint_differences(saved, dict(saved)) == []
