"""The run's own wiring, without training: the Trainer arguments every run gets, which callbacks a run builds for
its options (the data-wait report on image-fed runs only, the gradual switch told where a resumed run starts)."""

from __future__ import annotations

from pathlib import Path

from dogbreed.data.datamodule import LoaderSettings
from dogbreed.training.callbacks import DataWaitReport, EMAWeights, NonFiniteGuard
from dogbreed.training.gradual import GradualUnfreeze
from dogbreed.training.run import _Run, build_callbacks, trainer_settings
from dogbreed.training.runtime import Runtime
from tests.helpers.builders import fast_config

RUNTIME = Runtime(cpu_count=2, progress_bar=False)


def test_every_run_validates_one_batch_before_training_and_logs_every_step(tmp_path):
    config = fast_config(tmp_path, tmp_path / "data", epochs=3, accumulate_grad_batches=2, logger="none")
    settings = trainer_settings(config, RUNTIME)
    picked = {key: settings[key] for key in ("max_epochs", "accumulate_grad_batches", "num_sanity_val_steps",
                                             "log_every_n_steps", "enable_checkpointing", "enable_model_summary",
                                             "enable_progress_bar", "devices", "accelerator", "precision")}
    assert picked == {"max_epochs": 3, "accumulate_grad_batches": 2, "num_sanity_val_steps": 1,
                      "log_every_n_steps": 1, "enable_checkpointing": False, "enable_model_summary": False,
                      "enable_progress_bar": False, "devices": "auto", "accelerator": "cpu",
                      "precision": "32-true"}
    assert "plugins" not in settings  # no checkpoint dir: no checkpoint I/O plugin


def _callbacks(tmp_path: Path, **options) -> list:
    config = fast_config(tmp_path, tmp_path / "data", logger="none", **options)
    run = _Run(config, RUNTIME, test=False, epoch_lines=False)
    return run.callbacks([], LoaderSettings(num_workers=3))


def test_the_data_wait_report_comes_with_image_fed_runs_only(tmp_path):
    full = [c for c in _callbacks(tmp_path, finetune="full") if isinstance(c, DataWaitReport)]
    assert len(full) == 1 and full[0].num_workers == 3
    cached = _callbacks(tmp_path, finetune="head", weights="imagenet")  # trains on cached features: no images
    assert not any(isinstance(c, DataWaitReport) for c in cached)
    uncached = _callbacks(tmp_path, finetune="head", weights="imagenet", cached_views=0)
    assert sum(isinstance(c, DataWaitReport) for c in uncached) == 1


def test_a_resumed_gradual_run_tells_the_switch_how_many_epochs_were_done(tmp_path):
    config = fast_config(tmp_path, tmp_path / "data", finetune="gradual", freeze_epochs=2, epochs=4,
                         ema_decay=0.9, logger="none")
    callbacks = build_callbacks(config, {}, start_epoch=3)
    (switch,) = [c for c in callbacks if isinstance(c, GradualUnfreeze)]
    assert (switch.freeze_epochs, switch.start_epoch) == (2, 3)
    (ema,) = [c for c in callbacks if isinstance(c, EMAWeights)]
    assert ema.decay == 0.9
    assert isinstance(callbacks[0], NonFiniteGuard) and callbacks[0].lr == config.optimisation.lr
