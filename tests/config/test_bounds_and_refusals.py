"""Issue 27, items 2, 4 and 5 on the options: upper bounds that name their reason, worker counts capped, an unset
--backbone-lr-scale that is absent (so -1 is refused), reports kept out of the model dir."""

from __future__ import annotations

import logging

import pytest

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.data.datamodule import LoaderSettings
from dogbreed.training.setup import resolve_num_workers


@pytest.mark.parametrize("flag, accepted, rejected, message", [
    ("--epochs", "10000", "10001", "--epochs must be at most 10000 (a typo guard: no schedule here needs more), "
                                   "got 10001"),
    ("--batch-size", "4096", "4097", "--batch-size must be at most 4096 (one batch of 4096 224-px images is 2.5 GB "
                                     "before the network runs), got 4097"),
    ("--num-workers", "256", "1000", "--num-workers must be at most 256 (each worker is a process with its own "
                                     "memory; more than twice the CPUs is capped anyway), got 1000"),
    ("--top-k", "1000", "1001", "--top-k must be at most 1000 (breeds listed per image), got 1001"),
    ("--cached-views", "100", "101", "--cached-views must be at most 100 (each view is one backbone pass over every "
                                     "training image, kept in memory and on disk), got 101"),
    ("--accumulate-grad-batches", "1024", "1025", "--accumulate-grad-batches must be at most 1024 (a typo guard), "
                                                  "got 1025"),
])
def test_count_options_have_upper_bounds_that_say_why(flag, accepted, rejected, message) -> None:
    assert parse_config([flag, accepted]).to_dict()[flag[2:].replace("-", "_")] == int(accepted)
    with pytest.raises(ConfigError) as caught:
        parse_config([flag, rejected])
    assert str(caught.value) == message


def test_num_workers_above_twice_the_cpus_is_capped_with_one_line(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dogbreed.training.setup"):
        assert resolve_num_workers(200, 2) == 4
    assert [r.getMessage() for r in caplog.records] == [
        "--num-workers 200 capped at 4 (2 x the 2 CPU(s) of each training process): more workers only add "
        "processes and memory"]
    assert resolve_num_workers(4, 2) == 4


def test_workers_are_never_more_than_the_batches_of_an_epoch() -> None:
    settings = LoaderSettings(num_workers=8, persistent_workers=True, prefetch_factor=2)
    assert settings.for_batches(3, "train").num_workers == 3
    assert settings.for_batches(0, "test").num_workers == 1
    assert settings.for_batches(20, "train") is settings


@pytest.mark.parametrize("value, shown", [("-1", "-1.0"), ("-0.5", "-0.5"), ("-1.0", "-1.0")])
def test_backbone_lr_scale_minus_one_is_refused_like_any_negative(value, shown) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(["--backbone-lr-scale", value])
    assert str(refused.value) == f"--backbone-lr-scale must be a finite number >= 0, got {shown}"


def test_backbone_lr_scale_not_given_is_absent_and_follows_weights() -> None:
    assert parse_config([]).optimisation.backbone_lr_scale == 0.1
    assert parse_config(["--weights", "none", "--finetune", "full"]).optimisation.backbone_lr_scale == 1.0


@pytest.mark.parametrize("output_dir", ["out/model", "out/model/reports"])
def test_output_dir_equal_to_or_inside_the_model_dir_is_refused(output_dir) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["--model-dir", "out/model", "--output-dir", output_dir])
    assert str(caught.value) == (f"--output-dir {output_dir} is --model-dir out/model or inside it: the reports would "
                                 "mix into the model artifact that gets packaged and served; pass a dir outside it "
                                 "(default: outputs/reports)")
    assert parse_config(["--model-dir", "out/model", "--output-dir", "out/model-reports"])
