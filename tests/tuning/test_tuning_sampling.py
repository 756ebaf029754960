"""The local Optuna sweep samples exactly the space SageMaker's tuner gets: the distributions Optuna records for a
trial equal the rendered ones (log scale included), and the sampled values reach the training config."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dogbreed.config.options import TrainConfig
from dogbreed.tuning.local import _apply
from dogbreed.tuning.search_space import optuna_distributions, suggest, without

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The space written out (not imported): what `make tune` and SageMaker's tuner search.
EXPECTED = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "batch-size": CategoricalDistribution([16, 32, 64]),
    "epochs": IntDistribution(5, 10),
    "weight-decay": FloatDistribution(1e-6, 1e-2, log=True),
    "label-smoothing": FloatDistribution(0.0, 0.2),
}


def _ask(seed: int = 0, space=None) -> tuple[optuna.Trial, dict]:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    return trial, suggest(trial) if space is None else suggest(trial, space)


def test_rendered_distributions_written_out():
    assert optuna_distributions() == EXPECTED


def test_a_sampled_trial_records_the_rendered_distributions():
    trial, values = _ask()
    assert trial.distributions == EXPECTED
    assert list(values) == list(EXPECTED)


def test_sampled_values_lie_in_the_space():
    for seed in range(20):
        _, values = _ask(seed)
        assert 1e-4 <= values["lr"] <= 1e-1
        assert values["batch-size"] in (16, 32, 64)
        assert isinstance(values["epochs"], int) and 5 <= values["epochs"] <= 10
        assert 1e-6 <= values["weight-decay"] <= 1e-2
        assert 0.0 <= values["label-smoothing"] <= 0.2


def test_learning_rate_is_sampled_on_a_log_scale():
    # Log-uniform on [1e-4, 1e-1]: half the draws fall below the geometric mean 10**-2.5 (~0.0032);
    # uniform sampling would put only ~3% there.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draws = [suggest(study.ask())["lr"] for _ in range(200)]
    below = sum(lr < 10 ** -2.5 for lr in draws) / len(draws)
    assert 0.35 < below < 0.65
    decades = {math.floor(math.log10(lr)) for lr in draws}
    assert decades == {-4, -3, -2}


def test_fixed_options_are_not_sampled():
    trial, values = _ask(space=without(["epochs", "lr"]))
    assert set(values) == {"batch-size", "weight-decay", "label-smoothing"}
    assert set(trial.distributions) == {"batch-size", "weight-decay", "label-smoothing"}


def test_sampled_values_reach_the_trial_config(tmp_path):
    base = TrainConfig(data_dir=tmp_path / "data", epochs=3, lr=0.5)
    params = {"lr": 0.0123, "batch-size": 64, "epochs": 7, "weight-decay": 3e-5, "label-smoothing": 0.15}
    config = _apply(base, params, tmp_path / "hpo" / "trials" / "trial_004")
    opt = config.optimisation
    assert (opt.lr, opt.batch_size, opt.epochs, opt.weight_decay, opt.label_smoothing) == (0.0123, 64, 7, 3e-5, 0.15)
    assert config.outputs.model_dir == tmp_path / "hpo" / "trials" / "trial_004" / "model"
    assert config.outputs.output_dir == tmp_path / "hpo" / "trials" / "trial_004" / "reports"
    # The feature cache `train` uses with the same options (<output-dir>/../feature_cache), shared by every trial.
    assert config.cache.cache_dir == Path("outputs/feature_cache")
    trial_5 = _apply(base, params, tmp_path / "hpo" / "trials" / "trial_005")
    assert trial_5.cache.cache_dir == Path("outputs/feature_cache")
    assert config.data.data_dir == Path(tmp_path / "data")
    assert config.diagnostics.profile_dir is None  # the trial's <output-dir>/profile


def test_each_trial_profiles_into_its_own_subdir_of_profile_dir(tmp_path):
    base = TrainConfig(data_dir=tmp_path / "data", profiler="pytorch", profile_dir=tmp_path / "tb")
    config = _apply(base, {"lr": 0.01}, tmp_path / "hpo" / "trials" / "trial_004")
    assert config.diagnostics.profile_dir == tmp_path / "tb" / "trial_004"



def test_the_shared_search_space_cannot_be_changed_by_a_trial():
    import dataclasses

    import pytest

    from dogbreed.tuning.search_space import SEARCH_SPACE

    for parameter in SEARCH_SPACE:  # one object shared by every sweep in the process
        with pytest.raises(dataclasses.FrozenInstanceError):
            parameter.name = "changed"  # type: ignore[misc]
    assert len(set(SEARCH_SPACE)) == 5  # frozen: hashable, and five distinct parameters
