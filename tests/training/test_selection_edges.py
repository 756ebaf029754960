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
