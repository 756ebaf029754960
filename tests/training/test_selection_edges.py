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


def _epoch_end(callback, metrics: dict, epoch: int) -> None:
    """One epoch's end as Lightning calls it: the validated weights copied, then the epoch's metrics read."""
    from types import SimpleNamespace

    callback._candidate = {"fc.bias": torch.tensor([float(epoch)])}
    callback.on_train_epoch_end(SimpleNamespace(callback_metrics=metrics, current_epoch=epoch), None)


def test_a_nan_or_infinite_monitor_value_never_becomes_the_best_epoch():
    best = BestEpoch("val_loss")
    _epoch_end(best, {"val/loss": torch.tensor(float("nan"))}, 0)
    assert (best.epoch, best.value, best.weights) == (0, None, None)
    _epoch_end(best, {"val/loss": torch.tensor(0.75)}, 1)
    _epoch_end(best, {"val/loss": torch.tensor(float("-inf"))}, 2)  # "lower" than any loss, but not a loss
    _epoch_end(best, {"val/loss": torch.tensor(0.5)}, 3)
    _epoch_end(best, {"val/loss": torch.tensor(0.625)}, 4)
    assert best.record() == {"epoch": 4, "monitor": "val_loss", "value": 0.5}
    assert best.weights is not None and best.weights["fc.bias"].tolist() == [3.0]
    accuracy = BestEpoch("val_acc")
    _epoch_end(accuracy, {"val/acc": torch.tensor(0.5)}, 0)
    _epoch_end(accuracy, {"val/acc": torch.tensor(float("inf"))}, 1)
    _epoch_end(accuracy, {"val/acc": torch.tensor(0.25)}, 2)
    assert accuracy.record() == {"epoch": 1, "monitor": "val_acc", "value": 0.5}


def test_the_time_budget_names_the_epoch_it_ran_out_in_counted_from_one():
    import time
    from types import SimpleNamespace

    from pytorch_lightning.trainer.states import RunningStage

    from dogbreed.training.selection import TimeBudget

    said: list[str] = []
    budget = TimeBudget("00:00:00:01", 1, emit=said.append)
    trainer = SimpleNamespace(strategy=SimpleNamespace(broadcast=lambda value: value), should_stop=False,
                              current_epoch=0, max_epochs=5, is_global_zero=True)
    budget._start_time[RunningStage.TRAINING] = time.monotonic()  # 1 s to go: the first batch is in time
    budget.on_train_batch_end(trainer)
    assert (budget.stopped_in, trainer.should_stop) == (None, False)
    budget._start_time[RunningStage.TRAINING] = time.monotonic() - 60  # a minute spent: over budget
    trainer.current_epoch = 2  # the third epoch
    budget.on_train_batch_end(trainer)
    assert (budget.stopped_in, trainer.should_stop) == (3, True)
    trainer.current_epoch = 3
    budget.on_train_batch_end(trainer)  # Lightning may end one more step: the epoch it ran out in stays
    assert budget.stopped_in == 3
    budget.on_fit_end(trainer, None)
    line = "time budget: --max-time 00:00:00:01 spent in epoch 3 of 5: training stopped"
    assert said == [line] and budget.summary_lines() == [line]


class _TinyNet(torch.nn.Module):
    """A "backbone" layer and the head under HEAD_PREFIX ("fc."), as the ResNet names them."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = torch.nn.Linear(2, 2)
        self.fc = torch.nn.Linear(2, 3)


def _validated(callback, frozen_backbone: bool) -> set[str]:
    """The names BestEpoch copies at the end of a fitting validation of a _TinyNet."""
    from types import SimpleNamespace

    from pytorch_lightning.trainer.states import TrainerFn

    net = _TinyNet()
    net.layer1.requires_grad_(not frozen_backbone)
    fitting = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING))
    callback.on_validation_epoch_end(fitting, SimpleNamespace(net=net))
    return set(callback._candidate)


def test_the_best_epoch_copies_the_head_of_a_frozen_backbone_but_the_whole_network_when_asked():
    head, whole = {"fc.weight", "fc.bias"}, {"layer1.weight", "layer1.bias", "fc.weight", "fc.bias"}
    assert _validated(BestEpoch("val_acc"), frozen_backbone=True) == head
    assert _validated(BestEpoch("val_acc"), frozen_backbone=False) == whole
    # --finetune gradual: a head epoch's best must keep the backbone it was validated with (it trains later)
    assert _validated(BestEpoch("val_acc", whole_network=True), frozen_backbone=True) == whole
    assert _validated(BestEpoch("val_acc", whole_network=True), frozen_backbone=False) == whole


def test_the_epoch_record_takes_the_heads_learning_rate_and_prints_the_epoch_line():
    from types import SimpleNamespace

    from dogbreed.training.callbacks import EpochHistory

    said: list[str] = []
    history = EpochHistory(emit=said.append)
    groups = [{"lr": 0.003}, {"lr": 0.0003}]  # head, backbone (gradual / full fine-tuning)
    metrics = {"train/loss": 0.5, "train/acc": 0.25, "val/loss": 0.75, "val/acc": 0.125, "val/acc_top5": 0.875,
               "val/f1_macro": 0.0625, "test/acc": 1.0}
    trainer = SimpleNamespace(current_epoch=1, is_global_zero=True, optimizers=[SimpleNamespace(param_groups=groups)],
                              callback_metrics={name: torch.tensor(value) for name, value in metrics.items()})
    history.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert history.history == [{"epoch": 2, "train_loss": 0.5, "train_acc": 0.25, "val_loss": 0.75, "val_acc": 0.125,
                                "val_acc_top5": 0.875, "val_f1_macro": 0.0625, "lr": 0.003}]
    assert said == ["epoch=2 train_loss=0.500000 train_acc=0.250000 val_loss=0.750000 val_acc=0.125000 "
                    "val_acc_top5=0.875000 val_f1_macro=0.062500"]
    trainer.is_global_zero, trainer.optimizers = False, []  # another rank: recorded, not printed; no optimiser yet
    history.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    assert history.history[-1]["lr"] is None and len(said) == 1


def test_the_data_wait_leaves_out_the_first_batch_of_every_epoch(monkeypatch):
    from types import SimpleNamespace

    from dogbreed.training import callbacks

    clock = iter([0.0, 1.0, 1.5, 2.0,  # epoch 1: batch 1 (left out), batch 2 waits 0.5 of a 1.0 s step
                  10.0, 11.0, 11.25, 12.0])  # epoch 2 after validation: batch 1 (left out), batch 2 waits 0.25 of 1.0
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timer = callbacks.DataWaitTimer()
    assert timer.wait_fraction is None
    for _epoch in range(2):
        timer.on_train_epoch_start(None, None)  # type: ignore[arg-type]
        for batch in range(2):
            timer.on_train_batch_start(None, None, None, batch)  # type: ignore[arg-type]
            timer.on_train_batch_end(None, None, None, None, batch)  # type: ignore[arg-type]
    assert (timer.waits_s, timer.steps_s) == ([0.5, 0.25], [1.0, 1.0])
    assert timer.wait_fraction == 0.375
