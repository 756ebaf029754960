"""Throughput defaults: precision from the machine, channels-last, compile and cache switches."""

from __future__ import annotations

import pytest
import torch

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError
from dogbreed.training.head_training import FeatureHeadClassifier, uses_feature_cache
from dogbreed.training.module import DogBreedClassifier
from dogbreed.training.run import prepare_for_speed, trainer_settings
from dogbreed.training.setup import resolve_precision
from tests.helpers.builders import fast_config


@pytest.mark.parametrize("cuda,bf16,accelerator,expected", [
    (False, False, "auto", "32-true"),
    (True, True, "auto", "bf16-mixed"),
    (True, True, "gpu", "bf16-mixed"),
    (True, False, "auto", "16-mixed"),  # T4 / V100: fp16 tensor cores, no native bf16
    (True, True, "cpu", "32-true"),
])
def test_auto_precision_follows_the_machine(cuda, bf16, accelerator, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_precision("auto", accelerator) == expected


def test_explicit_precision_reaches_the_trainer(tmp_path, tiny_tree):
    assert trainer_settings(fast_config(tmp_path, tiny_tree, precision="bf16-mixed"))["precision"] == "bf16-mixed"
    if not torch.cuda.is_available():
        assert trainer_settings(fast_config(tmp_path, tiny_tree))["precision"] == "32-true"


def test_unknown_precision_and_negative_views_are_rejected():
    with pytest.raises(ConfigError) as refused:
        parse_config(["--precision", "fp8"])
    assert str(refused.value) == (
        "argument --precision: invalid choice: 'fp8' (choose from 'auto', '32-true', '16-mixed', 'bf16-mixed', "
        "'16-true', 'bf16-true', '64-true') (see python -m entry_points.train --help)")
    with pytest.raises(ConfigError) as refused:
        parse_config(["--cached-views", "-1"])
    assert str(refused.value) == "--cached-views must be >= 0 (0 disables the feature cache), got -1"


def test_network_and_inputs_are_channels_last():
    model = DogBreedClassifier(num_classes=3).eval()
    assert model.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_feature_cache_is_used_only_for_head_training_with_views(tmp_path, tiny_tree):
    def uses(**options) -> bool:
        config = fast_config(tmp_path, tiny_tree, **options)
        return uses_feature_cache(config.cache, config.optimisation.finetune)

    assert uses(finetune="head", cached_views=1)
    assert not uses(finetune="head", cached_views=0)
    assert not uses(finetune="full", cached_views=3)


def test_compile_flag_compiles_the_network_in_place(tmp_path, tiny_tree):
    model = DogBreedClassifier(num_classes=3, finetune="full")
    keys = set(model.state_dict())
    config = fast_config(tmp_path, tiny_tree, compile=True, finetune="full")
    datamodule, compiled = prepare_for_speed(config, None, model)  # type: ignore[arg-type]
    assert compiled is model and not isinstance(compiled, FeatureHeadClassifier)
    assert model.net._compiled_call_impl is not None  # nn.Module.compile: compiled lazily on first call
    assert set(model.state_dict()) == keys  # the artifact's keys do not change
