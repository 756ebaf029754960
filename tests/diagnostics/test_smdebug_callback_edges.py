"""The smdebug callback without training: the local trial's size as it is estimated before the first training step,
from what the trainer says about its loaders, and the mode it leaves the hook in after a validation (a stand-in
hook records what the callback asks of it)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from pytorch_lightning.trainer.states import TrainerFn
from torch import nn

from dogbreed.diagnostics.smdebug_hook import SmDebugCallback
from tests.helpers.smdebug_policy import needs_smdebug


def _estimate_line(caplog, tmp_path, **trainer) -> str:
    callback = SmDebugCallback(tmp_path / "trial", train_interval=3, eval_interval=3)
    callback.hook, callback.source = object(), "local"
    module = SimpleNamespace(net=nn.Linear(3, 2))  # 8 float32 parameters: 32 B, and 32 B of gradients
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        callback.on_train_start(SimpleNamespace(**trainer), module)  # type: ignore[arg-type]
    return caplog.records[-1].getMessage()


def test_a_resumed_run_counts_the_epochs_left_the_sanity_check_and_the_test_split(caplog, tmp_path):
    # 5 epochs, resumed at epoch 2: 3 left x 10 batches = 30 TRAIN steps; EVAL: 2 sanity-check batches, then 4
    # validation batches (an infinite loader counts as none) every epoch left and once more for the test split:
    # 2 + 4 x (3 + 1) = 18. Saves every 3rd step: 10 TRAIN of 64 B and 6 EVAL of 32 B = 832 B.
    line = _estimate_line(caplog, tmp_path, max_epochs=5, current_epoch=2, num_training_batches=10,
                          num_val_batches=[4, float("inf")], num_sanity_val_batches=[2])
    assert line == (f"smdebug will write about 832 B to {tmp_path / 'trial'}: 10 TRAIN save(s) of 64 B (every 3 of 30 "
                    "steps) and 6 EVAL save(s) of 32 B (every 3 of about 18 steps)")


def test_a_finished_run_has_no_training_steps_left_and_only_the_test_split_to_evaluate(caplog, tmp_path):
    line = _estimate_line(caplog, tmp_path, max_epochs=2, current_epoch=2, num_training_batches=10,
                          num_val_batches=5, num_sanity_val_batches=0)
    assert line == (f"smdebug will write about 64 B to {tmp_path / 'trial'}: 0 TRAIN save(s) of 64 B (every 3 of 0 "
                    "steps) and 2 EVAL save(s) of 32 B (every 3 of about 5 steps)")


class _ModeHook:
    def __init__(self) -> None:
        self.modes: list[str] = []

    def set_mode(self, mode) -> None:
        self.modes.append(mode.name)


@needs_smdebug
def test_only_a_validation_inside_fit_hands_the_hook_back_to_train_mode(tmp_path):
    """After the sanity check or an epoch's validation the next steps are training steps (TRAIN); after a bare
    ``trainer.validate()`` nothing trains, and the hook stays in EVAL."""
    callback = SmDebugCallback(tmp_path / "trial")
    callback.hook = hook = _ModeHook()
    fitting, validating = (SimpleNamespace(state=SimpleNamespace(fn=fn)) for fn in (TrainerFn.FITTING,
                                                                                    TrainerFn.VALIDATING))
    callback.on_sanity_check_start(fitting, None)  # type: ignore[arg-type]
    callback.on_validation_end(fitting, None)  # type: ignore[arg-type]
    assert hook.modes == ["EVAL", "TRAIN"]
    hook.modes.clear()
    callback.on_validation_end(validating, None)  # type: ignore[arg-type]
    assert hook.modes == []
