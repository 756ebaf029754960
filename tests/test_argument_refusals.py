"""Library-level argument checks that no other test quoted: each names the argument, the choices and the value
(issue 24: every refusal read back). The command line refuses these earlier; these guard direct library use."""

from __future__ import annotations

import io

import pytest
import torch


def _refusal(error, call, *args, **kwargs) -> str:
    with pytest.raises(error) as refused:
        call(*args, **kwargs)
    return str(refused.value)


def test_an_augment_policy_outside_the_list():
    from dogbreed.core.augment import TrainTransform

    for policy in ("autoaugment", "none"):  # none is the eval view, not a training transform
        assert _refusal(ValueError, TrainTransform, 32, mean=(0.5,) * 3, std=(0.5,) * 3, policy=policy) == (
            f"policy must be one of ('default', 'trivialaugment', 'randaugment'), got {policy!r}")


def test_a_progress_style_outside_the_list():
    from dogbreed.data.progress import STYLES, Progress

    assert _refusal(ValueError, Progress, 3, "x", stream=io.StringIO(), style="fancy") == (
        f"progress style must be one of {STYLES}, got 'fancy'")


def test_a_finetune_mode_and_a_monitor_outside_their_lists():
    from dogbreed.training.module import DogBreedClassifier
    from dogbreed.training.selection import BestEpoch

    assert _refusal(ValueError, DogBreedClassifier, 3, finetune="partial") == (
        "finetune must be one of ('head', 'full', 'gradual'), got 'partial'")
    assert _refusal(ValueError, BestEpoch, "val_f1") == (
        "monitor must be one of ('val_acc', 'val_loss', 'val_f1_macro'), got 'val_f1'")


def test_a_name_the_serving_package_does_not_have():
    import dogbreed.serving

    assert _refusal(AttributeError, getattr, dogbreed.serving, "Predictr") == (
        "module 'dogbreed.serving' has no attribute 'Predictr'")
    from dogbreed.serving.predictor import Predictor

    assert dogbreed.serving.Predictor is Predictor  # a name in __all__ comes from the predictor module


def test_a_model_config_too_large_to_be_one(tiny_model_dir, tmp_path):
    import shutil

    from dogbreed.core.errors import ArtifactError
    from dogbreed.serving.artifact import read_model_config

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    with open(model / "model_config.json", "ab") as handle:
        handle.truncate(16 * 1024 * 1024 + 1)  # one byte over 16 MiB (sparse: nothing written)
    assert _refusal(ArtifactError, read_model_config, model) == (
        f"{model / 'model_config.json'} is 16777217 bytes, over 16777216: not a model config")


def test_int8_calibration_that_saw_no_image():
    from dogbreed.core.errors import ConfigError
    from dogbreed.core.network import build_resnet50
    from dogbreed.serving.precision import quantize_int8

    assert _refusal(ConfigError, quantize_int8, build_resnet50(3).eval(), iter(())) == (
        "int8 calibration needs at least one image: pass a --data-dir whose train split has images")


def test_backbone_features_with_nan_are_refused(monkeypatch):
    from dogbreed.core.network import build_resnet50
    from dogbreed.core.transforms import Preprocessing
    from dogbreed.training import head_training

    monkeypatch.setattr(head_training, "_extract_features",
                        lambda *args, **kwargs: torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(FloatingPointError) as refused:
        head_training.build_split_features(build_resnet50(3), [("a.jpg", 0)], pre=Preprocessing(image_size=32),
                                           views=1, seed=0, batch_size=1, num_workers=0, device=torch.device("cpu"))
    assert str(refused.value) == "backbone features contain NaN/inf: check the --weights file"
