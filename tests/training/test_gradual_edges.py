"""--finetune gradual's data switch: cached features during the head phase for training and validation, images
from the first unfrozen epoch, and the test split always as images (it measures the final network)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dogbreed.config.parser import parse_config
from dogbreed.training.gradual import GradualUnfreeze, HeadPhaseData, say_where_the_head_phase_trains


@pytest.mark.parametrize("testing, epoch, features", [
    (False, 0, True), (False, 1, True), (False, 2, False), (False, 5, False),
    (True, 0, False), (True, 3, False),
])
def test_features_are_served_in_the_head_phase_only_and_never_to_test(testing, epoch, features):
    data = HeadPhaseData(images=SimpleNamespace(), feature_data=SimpleNamespace(), freeze_epochs=2)
    data.trainer = SimpleNamespace(testing=testing, current_epoch=epoch)
    assert data.serves_features() is features


def test_without_a_trainer_it_serves_features():
    assert HeadPhaseData(images=SimpleNamespace(), feature_data=SimpleNamespace(), freeze_epochs=2).serves_features()


def _switching_trainer(epoch: int, reload_every: int, *, sanity: bool = False) -> SimpleNamespace:
    data = HeadPhaseData(images=SimpleNamespace(), feature_data=SimpleNamespace(), freeze_epochs=2)
    return SimpleNamespace(datamodule=data, current_epoch=epoch, reload_dataloaders_every_n_epochs=reload_every,
                           sanity_checking=sanity)


def test_the_loaders_are_fetched_again_at_the_switch_and_the_trainers_setting_comes_back_after_it():
    callback = GradualUnfreeze(freeze_epochs=2, emit=lambda line: None)
    trainer = _switching_trainer(epoch=0, reload_every=3)
    callback.on_train_epoch_end(trainer, None)  # epoch 1 of 2 in the head phase: nothing to do yet
    assert trainer.reload_dataloaders_every_n_epochs == 3
    trainer.current_epoch = 1  # the last head epoch ends: the next epoch must fetch image loaders
    callback.on_train_epoch_end(trainer, None)
    assert trainer.reload_dataloaders_every_n_epochs == 1
    trainer.current_epoch, trainer.sanity_checking = 2, True  # a sanity check does not count
    callback.on_validation_start(trainer, None)
    assert trainer.reload_dataloaders_every_n_epochs == 1
    trainer.sanity_checking = False
    callback.on_validation_start(trainer, None)  # both loaders of the first full epoch are fetched by now
    assert trainer.reload_dataloaders_every_n_epochs == 3
    trainer.reload_dataloaders_every_n_epochs, trainer.current_epoch = 5, 3
    callback.on_validation_start(trainer, None)  # nothing pending: the Trainer's setting is left alone
    assert trainer.reload_dataloaders_every_n_epochs == 5


def test_without_the_feature_switch_the_trainers_reload_setting_is_never_touched():
    callback = GradualUnfreeze(freeze_epochs=2, emit=lambda line: None)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(), current_epoch=1, reload_dataloaders_every_n_epochs=0,
                              sanity_checking=False)
    callback.on_train_epoch_end(trainer, None)  # images throughout (no HeadPhaseData): no reload needed
    trainer.current_epoch = 2
    callback.on_validation_start(trainer, None)
    assert trainer.reload_dataloaders_every_n_epochs == 0


@pytest.mark.parametrize("argv, start_epoch, line", [
    ([], 0, "--finetune gradual: the head phase (3 epoch(s)) trains on cached backbone features, then the whole "
            "network on images"),
    ([], 2, "--finetune gradual: the head phase (3 epoch(s)) trains on cached backbone features, then the whole "
            "network on images"),
    ([], 3, "--finetune gradual: resumed after the head phase (3 epoch(s)): no backbone features needed"),
    (["--cached-views", "0"], 0, "--finetune gradual: the head phase (3 epoch(s)) trains on images, not on cached "
                                 "backbone features: --cached-views 0 turns the feature cache off"),
    (["--mixup-alpha", "0.2"], 1, "--finetune gradual: the head phase (3 epoch(s)) trains on images, not on cached "
                                  "backbone features: --mixup-alpha/--cutmix-alpha mix decoded images, which cached "
                                  "features are not"),
])
def test_the_log_says_where_the_head_phase_trains(argv, start_epoch, line, caplog):
    config = parse_config(["--finetune", "gradual", "--freeze-epochs", "3", *argv])
    with caplog.at_level("INFO", logger="dogbreed.training.gradual"):
        say_where_the_head_phase_trains(config.optimisation.freeze_epochs, config.cache, config.recipe, start_epoch)
    assert caplog.messages == [line]


class _Module:
    def __init__(self, frozen: bool) -> None:
        self.backbone_frozen, self.calls = frozen, []

    def set_backbone_trainable(self, trainable: bool) -> None:
        self.calls.append(trainable)
        self.backbone_frozen = not trainable


def _trainer_at(epoch: int, rebuilt: list) -> SimpleNamespace:
    groups = [{"lr": 0.003}, {"lr": 0.0003}]  # head, backbone: what the rebuilt optimiser holds
    return SimpleNamespace(current_epoch=epoch, is_global_zero=True, optimizers=[SimpleNamespace(param_groups=groups)],
                           strategy=SimpleNamespace(setup_optimizers=lambda trainer: rebuilt.append(trainer)))


def test_the_whole_network_trains_from_the_first_epoch_after_the_head_phase_with_a_fresh_optimiser():
    lines, rebuilt = [], []
    callback = GradualUnfreeze(freeze_epochs=2, emit=lines.append)
    module = _Module(frozen=True)
    for epoch in (0, 1):  # the head phase: the backbone stays frozen
        callback.on_train_epoch_start(_trainer_at(epoch, rebuilt), module)
    assert module.calls == [] and rebuilt == [] and lines == []
    trainer = _trainer_at(2, rebuilt)
    callback.on_train_epoch_start(trainer, module)
    assert module.calls == [True] and rebuilt == [trainer]
    assert lines == ["gradual fine-tuning: from epoch 3 the whole network trains (head lr 0.003, backbone lr "
                     "0.0003, a fresh schedule)"]
    callback.on_train_epoch_start(_trainer_at(3, rebuilt), module)  # already unfrozen: nothing again
    assert module.calls == [True] and len(rebuilt) == 1 and len(lines) == 1


def test_a_run_resumed_from_the_last_head_epoch_drops_the_head_optimiser_and_still_announces_the_switch():
    """Resumed at epoch 2 of freeze 2: set-up already unfroze the backbone, so the epoch start has nothing to switch;
    the checkpoint's one-group optimiser is dropped and the switch line is printed once, at the first full epoch."""
    lines, rebuilt = [], []
    callback = GradualUnfreeze(freeze_epochs=2, start_epoch=2, emit=lines.append)
    module = _Module(frozen=True)
    callback.setup(SimpleNamespace(), module, "fit")
    assert module.calls == [True]  # the optimiser Lightning builds next covers the backbone
    checkpoint = {"optimizer_states": [{"param_groups": [{"lr": 0.003}]}], "lr_schedulers": [{"last_epoch": 2}]}
    callback.on_load_checkpoint(SimpleNamespace(), module, checkpoint)
    assert checkpoint["optimizer_states"] == [] and checkpoint["lr_schedulers"] == []
    callback.on_train_epoch_start(_trainer_at(2, rebuilt), module)
    assert rebuilt == [] and module.calls == [True]
    assert lines == ["gradual fine-tuning: from epoch 3 the whole network trains (head lr 0.003, backbone lr "
                     "0.0003, a fresh schedule)"]
    callback.on_train_epoch_start(_trainer_at(3, rebuilt), module)
    assert len(lines) == 1


def test_a_checkpoint_past_the_switch_keeps_its_two_group_optimiser_and_prints_no_switch_line():
    lines, rebuilt = [], []
    callback = GradualUnfreeze(freeze_epochs=2, start_epoch=3, emit=lines.append)
    module = _Module(frozen=True)
    callback.setup(SimpleNamespace(), module, "fit")
    states = [{"param_groups": [{"lr": 0.003}, {"lr": 0.0003}]}]
    checkpoint = {"optimizer_states": states, "lr_schedulers": [{"last_epoch": 3}]}
    callback.on_load_checkpoint(SimpleNamespace(), module, checkpoint)
    assert checkpoint["optimizer_states"] is states and checkpoint["lr_schedulers"] == [{"last_epoch": 3}]
    callback.on_train_epoch_start(_trainer_at(3, rebuilt), module)
    assert lines == [] and rebuilt == []


GRADUAL = ["--finetune", "gradual", "--freeze-epochs", "3"]


@pytest.mark.parametrize("argv, start_epoch, extracts, cached", [
    (GRADUAL, 0, True, True),
    (GRADUAL, 2, True, True),  # resumed inside the head phase: its features
    (GRADUAL, 3, False, True),  # resumed at the switch: images from now on
    (GRADUAL, 5, False, True),
    ([*GRADUAL, "--cached-views", "0"], 0, False, False),
    ([*GRADUAL, "--cutmix-alpha", "1"], 0, False, False),
    (["--finetune", "head"], 0, True, True),
    (["--finetune", "head"], 4, True, True),  # a head-only run trains on features in every epoch
    (["--finetune", "full"], 0, False, False),
])
def test_features_are_extracted_only_while_some_epoch_still_trains_on_them(tmp_path, argv, start_epoch, extracts,
                                                                           cached):
    from dogbreed.training.gradual import extracts_features, feature_cache_dir

    config = parse_config(argv)
    out = tmp_path / "out"
    assert extracts_features(config.optimisation, config.cache, config.recipe, out, start_epoch) is extracts
    # the default cache dir sits beside the output dir (shared by the runs of one data set)
    where = feature_cache_dir(config.optimisation, config.cache, config.recipe, out)
    assert where == (tmp_path / "feature_cache" if cached else None)
