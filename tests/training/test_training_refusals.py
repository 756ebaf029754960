"""Training refusals no other test quoted, each compared whole (issue 24): the divergence guard's three triggers,
an unloadable checkpoint given to import_model, and the option lists that module and selection check."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dogbreed.core.errors import TrainingDiverged
from dogbreed.training.callbacks import NonFiniteGuard, check_finite_weights


def _trainer(epoch: int = 2, val_loss=None, sanity=False):
    metrics = {} if val_loss is None else {"val/loss": torch.tensor(val_loss)}
    return SimpleNamespace(current_epoch=epoch, callback_metrics=metrics, sanity_checking=sanity)


def test_a_non_finite_validation_loss_stops_the_run_naming_the_epoch_and_the_lr():
    guard = NonFiniteGuard(lr=0.003)
    with pytest.raises(TrainingDiverged) as refused:
        guard.on_validation_epoch_end(_trainer(epoch=2, val_loss=float("inf")), None)
    assert str(refused.value) == ("the validation loss is inf in epoch 3: training diverged and nothing was exported. "
                                  "Lower --lr (now 0.003) or check the data and --weights")
    guard.on_validation_epoch_end(_trainer(val_loss=float("nan"), sanity=True), None)  # the sanity check: not yet
    guard.on_validation_epoch_end(_trainer(val_loss=0.7), None)
    guard.on_validation_epoch_end(_trainer(), None)  # no validation loss logged


def test_a_weight_that_became_nan_is_named():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    guard = NonFiniteGuard(lr=1e-4)
    guard.on_train_epoch_end(_trainer(epoch=0), net)  # finite: nothing said
    with torch.no_grad():
        net[1].running_var[1] = float("nan")  # a buffer counts too
    with pytest.raises(TrainingDiverged) as refused:
        guard.on_train_epoch_end(_trainer(epoch=0), net)
    assert str(refused.value) == ("weight 1.running_var holds NaN/inf values in epoch 1: training diverged and nothing "
                                  "was exported. Lower --lr (now 0.0001) or check the data and --weights")
    seen = []
    net[1].running_var[1] = 1.0
    net[1].num_batches_tracked.fill_(7)  # integers are never NaN: skipped
    check_finite_weights(net, seen.append)
    assert seen == []


def test_a_non_finite_training_loss_names_its_batch():
    guard = NonFiniteGuard(lr=0.5)
    with pytest.raises(TrainingDiverged) as refused:
        guard.on_train_batch_end(_trainer(epoch=4), None, {"loss": torch.tensor(float("-inf"))}, None, 6)
    assert str(refused.value) == ("the training loss is -inf at batch 7 in epoch 5: training diverged and nothing was "
                                  "exported. Lower --lr (now 0.5) or check the data and --weights")
    guard.on_train_batch_end(_trainer(), None, torch.tensor(0.3), None, 0)  # a bare loss tensor, finite
    guard.on_train_batch_end(_trainer(), None, None, None, 0)  # a step that returned nothing (skipped)


def test_checkpoints_that_cannot_be_imported_name_the_file(tmp_path):
    from dogbreed.core.errors import CheckpointError
    from dogbreed.training.checkpoint_model import read_checkpoint_model

    missing = tmp_path / "epoch=3.ckpt"
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint_model(missing)
    assert str(refused.value) == (f"--checkpoint {missing}: no such file (dogbreed writes epoch=N.ckpt into "
                                  "--checkpoint-dir)")
    missing.write_bytes(b"")
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint_model(missing)
    assert str(refused.value) == (f"--checkpoint {missing} cannot be loaded (the file is empty): take another "
                                  "epoch=N.ckpt")
    torch.save({"fc.weight": torch.zeros(2, 3)}, missing)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint_model(missing)
    assert str(refused.value) == (f"--checkpoint {missing} is not a Lightning checkpoint (no state_dict): for a plain "
                                  "torchvision state_dict use --state-dict FILE --classes FILE")
