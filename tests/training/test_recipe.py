"""EMA of the weights and MixUp/CutMix: exact averages, exported weights, soft targets in training only."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.training.callbacks import EMAWeights
from dogbreed.training.module import build_batch_mix
from tests.helpers.builders import fast_config

DECAY = 0.5


class Toy(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.layer(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class RecordWeights(pl.Callback):
    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _expected_ema(steps: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    ema = dict(steps[0])  # the first update copies the weights
    for weights in steps[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * weights[k] for k in ema}
    return ema


def test_ema_weights_equal_the_running_average_after_n_steps():
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(12, 3), torch.randint(0, 2, (12,)))
    model, recorder = Toy(), RecordWeights()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder, EMAWeights(DECAY)])
    trainer.fit(model, DataLoader(data, batch_size=2))
    assert len(recorder.steps) == 6
    expected = _expected_ema(recorder.steps, DECAY)
    for name, value in model.state_dict().items():  # Lightning copied the average into the model at the end
        assert torch.allclose(value, expected[name], atol=1e-6), name
    assert not torch.allclose(model.layer.weight, recorder.steps[-1]["layer.weight"])  # not the raw weights


def test_ema_decay_outside_0_1_is_refused():
    with pytest.raises(ValueError) as refused:
        EMAWeights(1.0)
    assert str(refused.value) == "EMA decay must be in (0, 1), got 1.0"
    with pytest.raises(ConfigError) as refused:
        parse_config(["--ema-decay", "1.5"])
    assert str(refused.value) == "--ema-decay must be in [0, 1) (e.g. 0.999; 0 = off), got 1.5"


class RecordLossTargets(pl.Callback):
    def __init__(self) -> None:
        self.targets: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}

    def setup(self, trainer, pl_module, stage):
        if isinstance(pl_module.loss_fn, _RecordingLoss):
            return
        callback = self

        def record(targets):
            stage_name = "train" if pl_module.training else ("test" if trainer.testing else "val")
            callback.targets[stage_name].append(targets.detach().clone())

        pl_module.loss_fn = _RecordingLoss(pl_module.loss_fn, record)  # the loss stays a torch module


class _RecordingLoss(torch.nn.Module):
    """The module's own loss, recording the targets it is given."""

    def __init__(self, original: torch.nn.Module, record) -> None:
        super().__init__()
        self.original, self.record = original, record

    def forward(self, logits, targets):
        self.record(targets)
        return self.original(logits, targets)


@pytest.mark.slow
def test_mixup_and_cutmix_reach_training_batches_only_and_the_export_is_the_ema(tmp_path, tiny_tree):
    from dogbreed.serving.artifact import load_artifact
    from dogbreed.training.run import train

    recorder, weights = RecordLossTargets(), RecordWeights()
    config = fast_config(tmp_path, tiny_tree, epochs=2, batch_size=4, mixup_alpha=0.4, cutmix_alpha=1.0,
                         ema_decay=0.6, logger="none", calibrate=False, abstention_score="none")
    train(config, extra_callbacks=[recorder, weights])
    assert recorder.targets["train"] and recorder.targets["val"] and recorder.targets["test"]
    for soft in recorder.targets["train"]:
        assert soft.dtype.is_floating_point and soft.shape[1] == 3
        assert torch.allclose(soft.sum(dim=1), torch.ones(len(soft)))
    assert any((soft.max(dim=1).values < 1).any() for soft in recorder.targets["train"])  # really mixed
    for stage in ("val", "test"):
        assert all(t.dtype == torch.long and t.ndim == 1 for t in recorder.targets[stage])
    best = json.loads((config.outputs.output_dir / "metrics.json").read_text())["best"]["epoch"]
    per_epoch = len(weights.steps) // 2
    expected = _expected_ema(weights.steps[:best * per_epoch], 0.6)  # the average as the best epoch ended
    exported, _ = load_artifact(config.outputs.model_dir)
    for name, value in exported.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(value, expected[f"net.{name}"], atol=1e-5), name


def test_batch_mix_gives_soft_targets_from_torchvision():
    torch.manual_seed(0)
    mix = build_batch_mix(5, mixup_alpha=0.2, cutmix_alpha=0.0)
    images, labels = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    mixed, soft = mix(images, labels)
    assert mixed.shape == images.shape and soft.shape == (4, 5)
    assert torch.allclose(soft.sum(dim=1), torch.ones(4))
    assert build_batch_mix(5, 0.0, 0.0) is None


def test_mixing_needs_images_not_cached_features(tmp_path, tiny_tree):
    with pytest.raises(ConfigError) as refused:
        parse_config(["--data-dir", str(tiny_tree), "--mixup-alpha", "0.2"])
    assert str(refused.value) == ("--mixup-alpha/--cutmix-alpha mix images, but --finetune head trains on cached "
                                  "features: add --cached-views 0 or use --finetune full")
    assert parse_config(["--mixup-alpha", "0.2", "--finetune", "full"]).recipe.mixup_alpha == 0.2
    assert fast_config(tmp_path, tiny_tree, cutmix_alpha=1.0).optimisation.finetune == "full"
