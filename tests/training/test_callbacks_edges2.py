"""Callbacks on toy modules: EMAWeights averages BatchNorm's running statistics like the weights (the docstring's
"every parameter and buffer"); EpochProgressBar counts epochs from 1, hides the logger version, clears the test
bar, and on an error closes every bar, keeping only the training bar on screen."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dogbreed.training.callbacks import EMAWeights, EpochProgressBar

DECAY = 0.75


class ToyWithBatchNorm(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.out(self.norm(self.layer(x))), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class RecordState(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_batchnorm_running_statistics_are_averaged_with_the_weights():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 3) * 3 + 1, torch.randint(0, 2, (16,)))
    model, recorder = ToyWithBatchNorm(), RecordState()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder, EMAWeights(DECAY)])
    trainer.fit(model, DataLoader(data, batch_size=4))
    assert len(recorder.steps) == 4
    first, *rest = recorder.steps
    for name in ("norm.running_mean", "norm.running_var", "layer.weight", "norm.weight"):
        expected = first[name].float()  # the first update copies, then ema = 0.75 * ema + 0.25 * value
        for step in rest:
            expected = DECAY * expected + (1 - DECAY) * step[name].float()
        value = model.state_dict()[name]
        assert torch.allclose(value, expected, atol=1e-6), name
        assert not torch.allclose(value, recorder.steps[-1][name], atol=1e-4), name  # not the last raw value


class ToyWithTest(ToyWithBatchNorm):
    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.training_step(batch, batch_idx), prog_bar=True)

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self.training_step(batch, batch_idx))


def test_the_bar_counts_epochs_from_one_without_the_logger_version_and_the_test_bar_goes_away(tmp_path, capsys):
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,))), batch_size=4)
    bar = EpochProgressBar()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=CSVLogger(tmp_path), enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[bar])
    model = ToyWithTest()
    trainer.fit(model, loader, loader)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "Epoch 0" not in out and "v_num" not in out  # Lightning's count from 0 and its logger version
    assert "val/loss" in out  # the metrics themselves are still shown
    trainer.test(model, loader, verbose=False)
    assert bar.test_progress_bar.leave is False  # the finished test bar is cleared, the last epoch's stays
    assert bar.train_progress_bar.leave is True


class FailsInValidation(ToyWithTest):
    def validation_step(self, batch, batch_idx):
        raise RuntimeError("broken validation")


def test_an_error_closes_every_bar_and_only_the_training_bar_stays_on_screen(tmp_path, capsys):
    loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,))), batch_size=4)
    bar = EpochProgressBar()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[bar])
    with pytest.raises(RuntimeError, match="broken validation"):
        trainer.fit(FailsInValidation(), loader, loader)
    validation, training = bar._val_progress_bar, bar._train_progress_bar
    assert validation is not None and training is not None
    assert validation.disable and not validation.leave  # closed (tqdm disables a closed bar) and cleared
    assert training.disable and training.leave  # closed where the run stopped, kept above the message


def test_an_ema_decay_of_zero_is_refused_like_one():
    # decay 0 would make the "average" the raw weights; the CLI's 0 means off and never builds the callback
    for decay in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError) as refused:
            EMAWeights(decay)
        assert str(refused.value) == f"EMA decay must be in (0, 1), got {decay}"
    assert EMAWeights(0.999).decay == 0.999
