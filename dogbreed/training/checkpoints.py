"""Per-epoch checkpoints and resume: a spot job restarted from its checkpoint dir loses at most one epoch.

The rules, in one place:

- A checkpoint is written at the end of every epoch as ``epoch=N.ckpt``, straight under that final name (no temp
  file renamed into place: SageMaker's uploader syncs files as they appear), then fsynced; the newest two are
  kept. Only these names count: any other ``*.ckpt`` in the dir is ignored.
- Each checkpoint carries the run's fingerprint (:func:`run_fingerprint`: the hyperparameters that change
  training, the class folders, the data files) and the RNG states, so a resumed run continues exactly where
  the interrupted one stopped.
- Resume tries the newest checkpoint and falls back to the previous one (with a warning) when it cannot be loaded
  (truncated by a kill mid-write, empty, not a checkpoint). A checkpoint whose fingerprint differs from this
  run, or a dir whose run has finished (``finished.json``, written after the export), is refused with a
  :class:`CheckpointError` naming the dir and the fix, unless ``--resume-anyway``.
- A run stopped by a signal ends with one line (:func:`interrupted`) saying which checkpoint holds which epochs
  and how to go on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins.io import TorchCheckpointIO

from dogbreed.core.constants import CONFIG_FILENAME
from dogbreed.core.errors import CheckpointError, RunInterrupted, torch_load_reason
from dogbreed.core.fileio import atomic_write, write_under_final_name
from dogbreed.training.guards import critical_section

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"^epoch=(\d+)\.ckpt$")
FINISHED_MARKER = "finished.json"
KEEP_CHECKPOINTS = 2
STATE_KEY = "dogbreed"  # our entry in the Lightning checkpoint dict: {"fingerprint", "epoch", "rng"}
_STATE_KEY = STATE_KEY
# Options that do not change what a run learns (paths, workers, diagnostics, speed switches): they may differ
# between an interrupted run and its resumption. Every other option is part of the fingerprint, including
# options added later (a new option is assumed to matter until it is listed here).
NOT_TRAINING_OPTIONS = frozenset({
    "data_dir", "train_dir", "valid_dir", "test_dir", "model_dir", "output_dir", "checkpoint_dir", "cache_dir",
    "num_workers", "accelerator", "precision", "compile", "top_k", "demo", "download", "dataset_url",
    "debug_dir", "debug_train_interval", "debug_eval_interval", "profiler", "monitor_interval_ms",
    "profile_dir", "resume_anyway", "skip_bad_images",
    # a time budget, a picture of the inputs and the LR finder's stop: none changes what an epoch learns (--lr auto
    # stays "auto" in the fingerprint, so a resumed run finds it again)
    "max_time", "show_batch", "lr_find",
})
_RESUME_FIX = ("pass another --checkpoint-dir for this run, or --resume-anyway to continue from it regardless "
              "(its weights, optimizer and schedule state win)")


def _checkpoint_path(checkpoint_dir: Path, epoch: int) -> Path:
    return Path(checkpoint_dir) / f"epoch={epoch}.ckpt"


def own_checkpoints(checkpoint_dir: Path | None) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the ``epoch=N.ckpt`` files in the dir, newest first."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(checkpoint_dir).iterdir()
             if p.is_file() and (m := _CHECKPOINT_NAME.match(p.name))]
    return sorted(found, reverse=True)


def run_fingerprint(options: Mapping[str, Any], class_dirs: Sequence[str],
                    samples: Mapping[str, Sequence[tuple[Path, int]]], roots: Mapping[str, Path]) -> dict[str, Any]:
    """What makes two runs the same run: training options (``options``: the run's flat record,
    ``TrainConfig.to_dict()``), class folders, and each split's files (path relative to the split dir, label, size:
    stable across machines and S3 re-downloads, which reset mtimes)."""
    digest = hashlib.sha256()
    for split in sorted(samples):
        for path, label in samples[split]:
            relative = Path(path).relative_to(roots[split]).as_posix()
            digest.update(f"{split}\0{relative}\0{label}\0{Path(path).stat().st_size}\n".encode())
    training = {k: v for k, v in options.items() if k not in NOT_TRAINING_OPTIONS}
    return {"options": training, "class_dirs": list(class_dirs),
            "images": {split: len(items) for split, items in sorted(samples.items())}, "files": digest.hexdigest()}


def fingerprint_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's run and this one, in words (empty when they are the same run)."""
    differences = []
    old_options, new_options = saved.get("options", {}), current.get("options", {})
    for key in sorted(set(old_options) | set(new_options)):
        if old_options.get(key) != new_options.get(key):
            differences.append(f"--{key.replace('_', '-')} {old_options.get(key)!r} in the checkpoint, "
                               f"{new_options.get(key)!r} now")
    if saved.get("class_dirs") != current.get("class_dirs"):
        differences.append("the class folders differ")
    elif saved.get("images") != current.get("images"):
        differences.append(f"the image counts differ ({saved.get('images')} in the checkpoint, "
                           f"{current.get('images')} now)")
    elif saved.get("files") != current.get("files"):
        differences.append("the image files differ")
    return differences


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state["numpy"] = [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), position, has_gauss, cached]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class FinalNameCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but straight to the final name (no temp file + rename), fsynced."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_under_final_name(Path(path), buffer.getvalue())


class EpochCheckpoint(Callback):
    """Writes ``epoch=N.ckpt`` (fingerprint and RNG states included) at the end of every training epoch."""

    def __init__(self, checkpoint_dir: Path, fingerprint: Mapping[str, Any]) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.fingerprint = dict(fingerprint)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:  # the dir now holds an unfinished run (again)
            (self.checkpoint_dir / FINISHED_MARKER).unlink(missing_ok=True)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[_STATE_KEY] = {"fingerprint": self.fingerprint, "epoch": trainer.current_epoch + 1,
                                 "rng": _rng_state()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get(_STATE_KEY, {}).get("rng")
        if rng is not None:
            _restore_rng(rng)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        with critical_section():  # a signal now waits until the checkpoint is complete
            # collective: every rank calls it, rank 0 writes; weights_only=False (the full state, for resuming) said
            # explicitly, or Lightning logs that it defaulted to it after every epoch.
            trainer.save_checkpoint(_checkpoint_path(self.checkpoint_dir, epoch), weights_only=False)
            if trainer.is_global_zero:
                for old_epoch, old in own_checkpoints(self.checkpoint_dir):
                    if old_epoch > epoch or old_epoch <= epoch - KEEP_CHECKPOINTS:
                        old.unlink(missing_ok=True)  # older ones, and stale newer ones of an abandoned attempt
        trainer.strategy.barrier("dogbreed-checkpoint")


@dataclass
class ResumePlan:
    """Where a run starts: ``path`` (None: from scratch) holding ``epoch`` completed epochs."""

    path: Path | None = None
    epoch: int = 0
    differences: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any] | None:
        """What the artifact records about the resume (None when the run started from scratch)."""
        if self.path is None:
            return None
        return {"checkpoint": self.path.name, "epochs_done": self.epoch, "differences": self.differences}


def _load(path: Path) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError("not a Lightning checkpoint")
    return checkpoint


def _head_classes(checkpoint: Mapping[str, Any]) -> int | None:
    head = checkpoint.get("state_dict", {}).get("net.fc.weight")
    return int(head.shape[0]) if isinstance(head, torch.Tensor) and head.dim() == 2 else None


def plan_resume(checkpoint_dir: Path | None, fingerprint: Mapping[str, Any], *, resume_anyway: bool = False,
                num_classes: int | None = None) -> ResumePlan:
    """Choose the checkpoint to resume from (see the module docstring for the rules)."""
    if checkpoint_dir is None or not Path(checkpoint_dir).is_dir():
        return ResumePlan()
    checkpoint_dir = Path(checkpoint_dir)
    ignored = sorted(p.name for p in checkpoint_dir.glob("*.ckpt") if not _CHECKPOINT_NAME.match(p.name))
    if ignored:
        logger.warning("ignoring %s in %s: only epoch=N.ckpt files are dogbreed checkpoints", ", ".join(ignored),
                       checkpoint_dir)
    candidates = own_checkpoints(checkpoint_dir)
    for epoch, path in candidates:
        try:
            checkpoint = _load(path)
        except Exception as exc:  # noqa: BLE001 - truncated, empty or foreign files: all mean "try the previous one"
            reason = torch_load_reason(exc)  # our words: never torch's advice to load with weights_only=False
            logger.warning("checkpoint %s cannot be loaded (%s): trying the previous one", path, reason)
            continue
        return _checked_plan(checkpoint_dir, path, epoch, checkpoint, fingerprint, resume_anyway, num_classes)
    if candidates:
        logger.warning("no checkpoint in %s can be loaded: training starts from epoch 1 (they will be replaced)",
                       checkpoint_dir)
    return ResumePlan()


def _checked_plan(checkpoint_dir: Path, path: Path, epoch: int, checkpoint: Mapping[str, Any],
                  fingerprint: Mapping[str, Any], resume_anyway: bool, num_classes: int | None) -> ResumePlan:
    saved = checkpoint.get(_STATE_KEY, {})
    differences = (fingerprint_differences(saved["fingerprint"], fingerprint) if "fingerprint" in saved
                   else ["it records no dogbreed run fingerprint"])
    classes = _head_classes(checkpoint)
    if num_classes is not None and classes is not None and classes != num_classes:
        raise CheckpointError(f"checkpoint dir {checkpoint_dir}: {path.name} is a {classes}-class model and this "
                              f"data has {num_classes} classes, so it cannot be resumed: pass another --checkpoint-dir")
    finished = _finished(checkpoint_dir)
    if not resume_anyway:
        if differences:
            raise CheckpointError(f"checkpoint dir {checkpoint_dir} holds another run ({path.name}: "
                                  f"{'; '.join(differences)}): {_RESUME_FIX}")
        if finished is not None:
            raise CheckpointError(f"checkpoint dir {checkpoint_dir} holds a finished run ({finished}): nothing is "
                                  f"left to train: {_RESUME_FIX}")
    elif differences or finished is not None:
        logger.warning("--resume-anyway: resuming %s although %s", path,
                       "; ".join(differences + ([f"its run finished ({finished})"] if finished else [])))
    return ResumePlan(path=path, epoch=int(saved.get("epoch", epoch)), differences=differences)


def _finished(checkpoint_dir: Path) -> str | None:
    marker = checkpoint_dir / FINISHED_MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        return f"{info['epochs']} epoch(s), model exported to {info['model_dir']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "see finished.json"


def mark_finished(checkpoint_dir: Path, epochs: int, model_dir: Path) -> None:
    """After the export: this dir's run is complete (a later run with the same dir is refused, not resumed)."""
    text = json.dumps({"epochs": epochs, "model_dir": str(model_dir)}) + "\n"
    atomic_write(Path(checkpoint_dir) / FINISHED_MARKER, lambda handle: handle.write(text.encode("utf-8")))


# --- the line a signalled run ends with ---------------------------------------------------------------------------

def _checkpoint_part(checkpoint_dir: Path | None, epochs: int) -> str:
    if checkpoint_dir is None:
        return "no checkpoint was written (pass --checkpoint-dir to make a run resumable)"
    saved = own_checkpoints(checkpoint_dir)
    if not saved:
        return f"no epoch completed, so {checkpoint_dir} holds no checkpoint of this run yet"
    epoch, path = saved[0]
    done = f"epochs 1-{epoch}" if epoch > 1 else "epoch 1"
    return (f"checkpoint {path} holds {done}: run the same command to resume "
            f"from epoch {epoch + 1}" if epoch < epochs else
            f"checkpoint {path} holds all {epoch} epochs: run the same command to test and export")


def interrupted(signum: int, *, checkpoint_dir: Path | None, epochs: int, model_dir: Path, output_dir: Path,
                training_started: bool, epochs_done: int, exported: bool = False) -> RunInterrupted:
    """:class:`RunInterrupted` for a run of ``epochs`` epochs stopped by ``signum``, its message saying what was and
    was not saved (``training_started``: the Trainer existed; ``epochs_done``: epochs in its history)."""
    name = signal.Signals(signum).name
    if exported:
        return RunInterrupted(signum, f"{name} received while exporting: the model in {model_dir} and the "
                                      f"reports in {output_dir} were completed first; the run is finished")
    if not training_started:
        phase = "before training started"
    elif epochs_done >= epochs:
        phase = f"after all {epochs} epochs (while testing)"
    else:
        phase = f"in epoch {epochs_done + 1} of {epochs}"
    model_dir = Path(model_dir)
    previous = " (it still holds an earlier run's model)" if (model_dir / CONFIG_FILENAME).is_file() else ""
    return RunInterrupted(signum, f"stopped by {name} {phase}: nothing was exported to {model_dir}{previous}; "
                                  f"{_checkpoint_part(checkpoint_dir, epochs)}")
