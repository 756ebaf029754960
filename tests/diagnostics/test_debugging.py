"""SmDebugCallback: trials written by real (tiny) training runs, read back with smdebug."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.run_policy import train_with_diagnostics
from dogbreed.diagnostics.smdebug_hook import CONFIG_PATH_ENV, SmDebugCallback, debug_callbacks, smdebug_available
from dogbreed.training.run import train
from tests.helpers.builders import fast_config
from tests.helpers.smdebug_policy import needs_smdebug

LOSS = "CrossEntropyLoss_output_0"


def _trial(path: Path):
    from smdebug.trials import create_trial

    return create_trial(str(path))


def _run(tmp_path: Path, data_dir: Path, **overrides):
    # 12 train images / bs 4 = 3 train steps per epoch; 6 valid and 6 test images / bs 4 = 2 steps each.
    config = fast_config(tmp_path, data_dir, **{"batch_size": 4, "epochs": 2, **overrides})
    return config, train_with_diagnostics(config)


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
@needs_smdebug
def test_local_trial_has_losses_weights_gradients_at_the_configured_intervals(tmp_path, tiny_tree):
    from smdebug import modes

    config, _ = _run(tmp_path, tiny_tree, debug_dir=tmp_path / "trial", debug_train_interval=2,
                     debug_eval_interval=3)
    trial = _trial(config.diagnostics.debug_dir)
    # TRAIN: 2 epochs x 3 steps = mode steps 0..5, saved every 2nd.
    assert trial.steps(mode=modes.TRAIN) == [0, 2, 4]
    # EVAL: sanity check (1) + 2 validations x 2 + test 2 = mode steps 0..6, saved every 3rd.
    assert trial.steps(mode=modes.EVAL) == [0, 3, 6]
    loss = trial.tensor(LOSS)
    assert loss.steps(mode=modes.TRAIN) == [0, 2, 4]
    assert loss.steps(mode=modes.EVAL) == [0, 3, 6]
    assert 0 < float(loss.value(0, mode=modes.TRAIN)) < 10
    names = trial.tensor_names()
    assert "ResNet_conv1.weight" in names and "ResNet_fc.bias" in names
    assert "gradient/ResNet_conv1.weight" in names and "gradient/ResNet_fc.weight" in names
    gradient = trial.tensor("gradient/ResNet_fc.weight")
    assert gradient.steps(mode=modes.TRAIN) == [0, 2, 4]
    assert gradient.value(0, mode=modes.TRAIN).shape == (3, 2048)
    assert not any(n.endswith("_output_1") for n in names), "loss registered twice"


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
@needs_smdebug
def test_sagemaker_json_config_wins_and_sets_the_intervals(tmp_path, tiny_tree, monkeypatch):
    from smdebug import modes

    out = tmp_path / "sm-trial"
    config_file = tmp_path / "debughookconfig.json"
    config_file.write_text(json.dumps({
        "LocalPath": str(out),
        "HookParameters": {"train.save_interval": "2", "eval.save_interval": "2"},
        "CollectionConfigurations": [{"CollectionName": "losses", "CollectionParameters": {}},
                                     {"CollectionName": "gradients", "CollectionParameters": {}}],
    }))
    monkeypatch.setenv(CONFIG_PATH_ENV, str(config_file))
    config, _ = _run(tmp_path, tiny_tree, debug_dir=tmp_path / "ignored-local-dir", epochs=1)
    assert not (tmp_path / "ignored-local-dir").exists()
    trial = _trial(out)
    assert trial.tensor(LOSS).steps(mode=modes.TRAIN) == [0, 2]  # 3 TRAIN steps
    assert trial.tensor(LOSS).steps(mode=modes.EVAL) == [0, 2, 4]  # sanity 1 + validation 2 + test 2
    assert "gradient/ResNet_fc.weight" in trial.tensor_names()
    assert "ResNet_conv1.weight" not in trial.tensor_names()  # weights were not asked for


def test_callback_is_added_only_when_asked_for(tmp_path, tiny_tree):
    assert debug_callbacks(fast_config(tmp_path, tiny_tree).diagnostics) == []
    [callback] = debug_callbacks(fast_config(tmp_path, tiny_tree, debug_dir=tmp_path / "t").diagnostics)
    assert isinstance(callback, SmDebugCallback)


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
@needs_smdebug
def test_callback_without_config_is_a_noop_that_says_so_once(tmp_path, tiny_tree, caplog):
    import pytorch_lightning as pl

    from dogbreed.data.datamodule import DogBreedDataModule
    from dogbreed.data.sources import resolve_splits
    from dogbreed.training.run import build_datamodule, build_model

    config = fast_config(tmp_path, tiny_tree, batch_size=4)
    splits = resolve_splits(config.data, seed=config.optimisation.seed)
    datamodule: DogBreedDataModule = build_datamodule(config, splits, num_workers=0)
    datamodule.setup("fit")
    callback = SmDebugCallback(None)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, callbacks=[callback])
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        model = build_model(config, datamodule.num_classes)
        trainer.fit(model, datamodule=datamodule)
        trainer.test(model, datamodule=datamodule, verbose=False)
    assert callback.hook is None
    messages = [r.getMessage() for r in caplog.records if "tensors are not collected" in r.getMessage()]
    assert len(messages) == 1
    assert not list(tmp_path.rglob("training_job_end.ts"))


@needs_smdebug
def test_finished_trial_dir_is_refused_with_a_clear_error(tmp_path, tiny_tree):
    trial_dir = tmp_path / "old-trial"
    trial_dir.mkdir()
    (trial_dir / "training_job_end.ts").write_text("0")
    with pytest.raises(ConfigError) as refused:
        _run(tmp_path, tiny_tree, debug_dir=trial_dir)
    assert str(refused.value) == (f"--debug-dir {trial_dir} already holds a finished smdebug trial; pass a new "
                                  "directory or delete the old one")


class _TinyClassifier:
    """Built lazily: a LightningModule with the ``net`` / ``loss_fn`` attributes the callback registers."""

    @staticmethod
    def make():
        import pytorch_lightning as pl
        import torch
        from torch import nn

        class Tiny(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
                self.loss_fn = nn.CrossEntropyLoss()

            def _step(self, batch):
                x, y = batch
                return self.loss_fn(self.net(x), y)

            def training_step(self, batch, batch_idx):
                return self._step(batch)

            def validation_step(self, batch, batch_idx):
                self._step(batch)

            def test_step(self, batch, batch_idx):
                self._step(batch)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        return Tiny()


def _loader():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(12, 4, generator=g), torch.randint(0, 2, (12,), generator=g)),
                      batch_size=4)


@needs_smdebug
def test_repeated_fit_and_test_register_once_and_keep_counting_steps(tmp_path):
    import pytorch_lightning as pl
    from smdebug import modes

    model, callback = _TinyClassifier.make(), SmDebugCallback(tmp_path / "trial", train_interval=1, eval_interval=1)
    for _ in range(2):  # fit + test twice with the same module and callback
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1,
                             callbacks=[callback])
        trainer.fit(model, _loader(), _loader())
        trainer.test(model, _loader(), verbose=False)
    trial = _trial(tmp_path / "trial")
    assert trial.steps(mode=modes.TRAIN) == list(range(6))  # 2 fits x 3 batches
    # Each fit: sanity 1 + validation 3; each test: 3 -> 2 x 7 EVAL steps.
    assert trial.steps(mode=modes.EVAL) == list(range(14))
    assert trial.tensor_names(collection="losses") == ["CrossEntropyLoss_output_0"]


def test_only_global_rank_zero_builds_a_hook(tmp_path):
    from types import SimpleNamespace

    callback = SmDebugCallback(tmp_path / "trial")
    callback.on_fit_start(SimpleNamespace(is_global_zero=False), _TinyClassifier.make())
    assert callback.hook is None and not (tmp_path / "trial").exists()


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_without_smdebug_dogbreed_still_trains_and_the_callback_says_so(tmp_path, tiny_tree, monkeypatch, caplog):
    import sys

    for name in [m for m in sys.modules if m == "smdebug" or m.startswith("smdebug.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "smdebug", None)  # "import smdebug..." now raises ImportError
    assert not smdebug_available()
    callback = SmDebugCallback(tmp_path / "trial")
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        result = train(fast_config(tmp_path, tiny_tree, batch_size=4), extra_callbacks=[callback],
                       limit_train_batches=2)
    assert result.history and callback.hook is None and not (tmp_path / "trial").exists()
    assert any("smdebug is not installed" in r.getMessage() for r in caplog.records)


@needs_smdebug
def test_head_training_on_cached_features_counts_steps_on_the_head(tmp_path):
    from types import SimpleNamespace

    import torch
    from smdebug import modes

    from dogbreed.training.head_training import FeatureHeadClassifier

    model = FeatureHeadClassifier(num_classes=3)
    callback = SmDebugCallback(tmp_path / "trial", train_interval=1, eval_interval=1)
    callback.on_fit_start(SimpleNamespace(is_global_zero=True), model)
    for _ in range(2):  # what a training step does: head forward on 2048-d features, loss, backward
        model.loss_fn(model(torch.randn(4, 2048)), torch.tensor([0, 1, 2, 0])).backward()
    callback.on_fit_end(None, model)
    trial = _trial(tmp_path / "trial")
    assert trial.steps(mode=modes.TRAIN) == [0, 1]
    assert "gradient/Linear_weight" in trial.tensor_names()


@needs_smdebug
def test_the_hook_says_what_it_writes_where_and_how_often(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "no-such-config.json"))  # no SageMaker Debugger config
    callback = SmDebugCallback(tmp_path / "trial", train_interval=7, eval_interval=3, collections=("losses", "weights"))
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        hook = callback._build_hook()
    assert hook is not None and callback.source == "local"
    assert caplog.messages[-1] == (f"smdebug: writing losses, weights to {tmp_path / 'trial'} (TRAIN every 7 steps, "
                                   "EVAL every 3)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        assert SmDebugCallback(None)._build_hook() is None
    assert caplog.messages[-1] == "smdebug: no Debugger config and no --debug-dir: tensors are not collected"
    config = tmp_path / "debughookconfig.json"
    config.write_text(json.dumps({"LocalPath": str(tmp_path / "sm-trial")}))
    monkeypatch.setenv(CONFIG_PATH_ENV, str(config))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.smdebug_hook"):
        sagemaker = SmDebugCallback(tmp_path / "ignored")
        assert sagemaker._build_hook() is not None and sagemaker.source == "sagemaker"
    assert caplog.messages[-1] == f"smdebug: hook from the SageMaker Debugger config {config}"
