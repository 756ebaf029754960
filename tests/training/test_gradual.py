"""--finetune gradual with the head phase on cached backbone features: one pass of the backbone for the head epochs,
then the whole network on images, with one epoch count, one history, one best epoch and resume in either phase."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from dogbreed.core.errors import RunInterrupted
from dogbreed.core.network import HEAD_PREFIX
from dogbreed.data.splits import SplitDirs
from dogbreed.training.gradual import head_phase_feature_block
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import build_callbacks, build_datamodule, prepare_for_speed, train
from dogbreed.training.selection import BestEpoch
from tests.helpers.builders import fast_config, write_tree
from tests.helpers.stopping import StopAfter

# 3 classes x 4 training images, batches of 4: 3 training and 2 validation batches per epoch
GRADUAL = dict(finetune="gradual", freeze_epochs=2, epochs=3, batch_size=4, lr=2e-3, monitor="val_loss", seed=5)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("gradual") / "data", {"train": 4, "valid": 2, "test": 2}, seed=4)


class BackboneCalls(Callback):
    """Counts the backbone's forward passes (its first conv) per epoch (from 1) while fitting; keeps the backbone
    the fit started from."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}
        self.initial: dict[str, torch.Tensor] = {}
        self._handle = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.initial = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()
                        if not k.startswith(HEAD_PREFIX)}

        def count(*_) -> None:
            epoch = trainer.current_epoch + 1
            self.calls[epoch] = self.calls.get(epoch, 0) + 1

        self._handle = pl_module.net.conv1.register_forward_hook(count)

    def on_fit_end(self, trainer, pl_module) -> None:
        self._handle.remove()


@pytest.fixture(scope="module")
def gradual_run(tree, tmp_path_factory):
    """One uninterrupted gradual run (2 head epochs, 1 full): its result, backbone probe and printed lines."""
    root = tmp_path_factory.mktemp("whole")
    probe = BackboneCalls()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train(fast_config(root, tree, **GRADUAL), extra_callbacks=[probe])
    return SimpleNamespace(root=root, result=result, probe=probe, out=out.getvalue())


def _exported(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(model_dir / "model.pth", weights_only=True)


def test_the_head_phase_can_use_cached_features_unless_the_options_need_images(tree, tmp_path):
    def block(**options) -> str | None:
        config = fast_config(tmp_path, tree, **{**GRADUAL, **options})
        return head_phase_feature_block(config.cache, config.recipe)

    assert block() is None and block(cached_views=3) is None
    assert block(cached_views=0) == "--cached-views 0 turns the feature cache off"
    assert block(mixup_alpha=0.2) == "--mixup-alpha/--cutmix-alpha mix decoded images, which cached features are not"


def test_a_head_phase_on_images_says_why_in_one_line(tree, tmp_path, caplog):
    config = fast_config(tmp_path, tree, **{**GRADUAL, "cached_views": 0})
    images = build_datamodule(config, SplitDirs.from_data_dir(tree), num_workers=0)
    images.setup("fit")
    with caplog.at_level(logging.INFO, logger="dogbreed.training.gradual"):
        datamodule, _ = prepare_for_speed(config, images, DogBreedClassifier(3, finetune="gradual", freeze_epochs=2))
    assert datamodule is images  # the old behaviour: images in every epoch
    assert [r.getMessage() for r in caplog.records] == [
        "--finetune gradual: the head phase (2 epoch(s)) trains on images, not on cached backbone features: "
        "--cached-views 0 turns the feature cache off"]
    assert not (tmp_path / "feature_cache").exists()


def test_best_epoch_in_the_head_phase_keeps_the_backbone_it_was_validated_with(tree, tmp_path):
    best = next(c for c in build_callbacks(fast_config(tmp_path, tree, **GRADUAL)) if isinstance(c, BestEpoch))
    model = DogBreedClassifier(3, finetune="gradual", freeze_epochs=2)  # backbone frozen: the head phase
    trainer = SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING), current_epoch=0,
                              callback_metrics={"val/loss": torch.tensor(0.5)})
    best.on_validation_epoch_end(trainer, model)
    best.on_train_epoch_end(trainer, model)
    validated = {k: v.clone() for k, v in model.net.state_dict().items()}
    with torch.no_grad():  # the full phase moves the backbone (and the head) afterwards
        for param in model.net.parameters():
            param.add_(1.0)
    assert best.restore(model.net) and best.epoch == 1
    for name, tensor in model.net.state_dict().items():
        torch.testing.assert_close(tensor, validated[name], msg=name)  # the head alone was kept before


@pytest.mark.slow  # a 3-epoch ResNet50 run at 32 px (shared by the tests below)
def test_the_head_epochs_run_no_backbone_forward_and_the_cache_holds_their_features(gradual_run):
    # old code: every head epoch ran the backbone on 3 training + 2 validation batches (and the sanity check)
    assert gradual_run.probe.calls == {3: 5}
    cached = sorted(p.name for p in (gradual_run.root / "feature_cache").glob("features-*.pt"))
    assert len(cached) == 2  # train and valid: the test pass sees the final network, on images


@pytest.mark.slow
def test_epochs_and_metric_rows_run_on_across_the_switch(gradual_run):
    history = json.loads((gradual_run.root / "reports" / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3] == [h["epoch"] for h in gradual_run.result.history]
    for row in history:
        assert {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1_macro"} <= set(row)
    lines = [line.split()[0] for line in gradual_run.out.splitlines()
             if line.startswith(("epoch=", "gradual fine-tuning:"))]
    assert lines == ["epoch=1", "epoch=2", "gradual", "epoch=3"]
    assert "gradual fine-tuning: from epoch 3 the whole network trains (head lr 0.002, backbone lr 0.002" \
        in gradual_run.out


@pytest.mark.slow
def test_a_gradual_run_exports_a_trained_backbone_unlike_head_only(gradual_run, tree):
    metrics = json.loads((gradual_run.root / "reports" / "metrics.json").read_text())
    assert metrics["best"]["epoch"] == 3  # the full epoch: its val_loss is far below the head epochs'
    root = gradual_run.root / "head_only"  # same seed and backbone: the feature cache next door is hit
    train(fast_config(root, tree, **{**GRADUAL, "finetune": "head", "cache_dir": gradual_run.root / "feature_cache"}))
    gradual, head_only = _exported(gradual_run.root / "model"), _exported(root / "model")
    for name, tensor in gradual_run.probe.initial.items():
        torch.testing.assert_close(head_only[name], tensor, msg=name)  # head-only: the backbone never moves
    moved = [name for name in gradual_run.probe.initial if not torch.equal(gradual[name], head_only[name])]
    assert "conv1.weight" in moved and "layer4.2.conv3.weight" in moved


@pytest.mark.slow
def test_a_run_resumes_inside_the_cached_head_phase_and_at_the_switch(gradual_run, tree, tmp_path):
    config = fast_config(tmp_path, tree, **GRADUAL, checkpoint_dir=tmp_path / "ckpt",
                         cache_dir=gradual_run.root / "feature_cache")
    with pytest.raises(RunInterrupted):
        train(config, extra_callbacks=[StopAfter(1)])  # in the head phase
    with pytest.raises(RunInterrupted):
        train(config, extra_callbacks=[StopAfter(2)])  # resumed on features; stops at the last head epoch
    probe = BackboneCalls()
    resumed = train(config, extra_callbacks=[probe])  # the full phase from the head phase's checkpoint
    assert "feature_cache_s" not in resumed.timing  # no features needed any more
    assert probe.calls == {2: 1, 3: 5}  # the sanity check (on images now, counted before epoch 3 starts), epoch 3
    whole = gradual_run.result.history
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [round(h["train_loss"], 4) for h in resumed.history] == [round(h["train_loss"], 4) for h in whole]
    torch.testing.assert_close(_exported(tmp_path / "model"), _exported(gradual_run.root / "model"))
