"""A trial's config, third pass: every trial shares the feature cache a plain ``train`` with these options would use
(so the backbone runs once over the images for the whole sweep), and a --profile-dir is split per trial."""

from __future__ import annotations

from dogbreed.config.options import TrainConfig
from dogbreed.tuning.local import _apply


def test_every_trial_shares_the_sweeps_feature_cache(tmp_path):
    base = TrainConfig(data_dir=tmp_path / "data", output_dir=tmp_path / "runs" / "reports")
    trials = [_apply(base, {}, tmp_path / "hpo" / "trials" / f"trial_{n:03d}") for n in (1, 2)]
    # <output-dir>/../feature_cache of the base config, not of each trial's own reports dir
    assert [t.cache.cache_dir for t in trials] == [tmp_path / "runs" / "feature_cache"] * 2
    chosen = TrainConfig(data_dir=tmp_path / "data", cache_dir=tmp_path / "my_cache")
    assert _apply(chosen, {}, tmp_path / "hpo" / "trials" / "trial_001").cache.cache_dir == tmp_path / "my_cache"


def test_each_trial_profiles_into_its_own_subdir_of_profile_dir(tmp_path):
    base = TrainConfig(data_dir=tmp_path / "data", profile_dir=tmp_path / "prof")
    config = _apply(base, {}, tmp_path / "hpo" / "trials" / "trial_004")
    assert config.diagnostics.profile_dir == tmp_path / "prof" / "trial_004"
    assert _apply(TrainConfig(data_dir=tmp_path / "data"), {}, tmp_path / "t" / "trial_001").diagnostics.profile_dir \
        is None
