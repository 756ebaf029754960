"""BestEpoch's saved state: a resumed run keeps the best epoch, its value and its weights (a lost value would let a
worse epoch after the resume replace the best), and reports them."""

from __future__ import annotations

import torch

from dogbreed.training.selection import BestEpoch


def test_the_best_epoch_survives_a_checkpoint_round_trip():
    before = BestEpoch("val_loss")
    before.epoch, before.value, before.weights = 3, 0.4125, {"fc.bias": torch.tensor([0.5, -0.5])}
    state = before.state_dict()
    assert state == {"monitor": "val_loss", "epoch": 3, "value": 0.4125, "weights": before.weights}
    after = BestEpoch("val_loss")
    after.load_state_dict(state)
    assert (after.epoch, after.value) == (3, 0.4125) and after.weights is before.weights
    assert after.record() == {"epoch": 3, "monitor": "val_loss", "value": 0.4125}
    assert after.summary_lines() == ["best epoch: 3 (val_loss=0.4125): its weights were tested and exported"]
    assert after.state_key == "BestEpoch{'monitor': 'val_loss'}"


def test_an_empty_state_means_nothing_validated_yet():
    fresh = BestEpoch("val_acc")
    fresh.load_state_dict({})
    assert (fresh.epoch, fresh.value, fresh.weights, fresh.record()) == (0, None, None, None)
    assert fresh.summary_lines() == ["best epoch: none (no epoch was validated): the last weights were exported"]
    assert fresh.restore(torch.nn.Linear(2, 2)) is False


def test_early_stopping_says_what_did_not_improve_and_where_it_stopped():
    from types import SimpleNamespace

    from dogbreed.training.selection import EarlyStop

    said: list[str] = []
    stop = EarlyStop("val_f1_macro", 3, emit=said.append)
    assert (stop.monitor, stop.mode, stop.patience) == ("val/f1_macro", "max", 3)
    stop.on_fit_end(SimpleNamespace(max_epochs=20, is_global_zero=True), None)  # type: ignore[arg-type]
    assert (said, stop.summary_lines()) == ([], [])  # it never stopped the run
    stop.stopped_epoch, stop.best_score = 7, torch.tensor(0.812345)
    stop.on_fit_end(SimpleNamespace(max_epochs=20, is_global_zero=True), None)  # type: ignore[arg-type]
    line = "early stopping: val_f1_macro did not improve for 3 epoch(s) (best 0.8123): stopped after epoch 8 of 20"
    assert said == [line] and stop.summary_lines() == [line]
    quiet = EarlyStop("val_loss", 2, emit=said.append)
    quiet.stopped_epoch, quiet.best_score = 3, torch.tensor(0.5)
    quiet.on_fit_end(SimpleNamespace(max_epochs=9, is_global_zero=False), None)  # type: ignore[arg-type]
    assert len(said) == 1 and quiet.summary_lines() == [
        "early stopping: val_loss did not improve for 2 epoch(s) (best 0.5000): stopped after epoch 4 of 9"]
    assert quiet.mode == "min"


def test_the_epoch_history_survives_a_checkpoint_round_trip():
    from dogbreed.training.callbacks import EpochHistory

    before = EpochHistory(quiet=True)
    before.history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    after = EpochHistory(quiet=True)
    after.load_state_dict(before.state_dict())
    assert after.history == [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}]
    assert after.history is not before.history  # a copy: the resumed run appends to its own list
    empty = EpochHistory(quiet=True)
    empty.load_state_dict({})
    assert empty.history == []


def test_the_stopping_callbacks_are_the_best_epoch_then_what_was_asked_for():
    from dogbreed.config.sections import StoppingOptions
    from dogbreed.training.selection import EarlyStop, TimeBudget, stopping_callbacks

    (only,) = stopping_callbacks(StoppingOptions(monitor="val_loss"))
    assert type(only) is BestEpoch and only.monitor == "val_loss" and only.whole_network is False
    best, early, budget = stopping_callbacks(StoppingOptions(monitor="val_f1_macro", early_stopping=3,
                                                             max_time="00:02:30"), backbone_trains_later=True)
    assert type(best) is BestEpoch and best.whole_network is True
    assert type(early) is EarlyStop and (early.option, early.patience, early.mode) == ("val_f1_macro", 3, "max")
    assert type(budget) is TimeBudget and budget.budget == "00:02:30"
    assert budget._duration == 150.0  # seconds, parsed from HH:MM:SS
