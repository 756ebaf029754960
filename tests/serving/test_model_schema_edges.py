"""validate_model_config at the artifact format's edges: a newer format is refused with the versions and what to
do, the current and an absent version load, another architecture is refused by name."""

from __future__ import annotations

import json

import pytest

from dogbreed.core.errors import ArtifactError
from dogbreed.serving.model_schema import validate_model_config


@pytest.fixture
def config(tiny_model_dir) -> dict:
    return json.loads((tiny_model_dir / "model_config.json").read_text())


@pytest.mark.parametrize("version", [1, None])
def test_the_current_format_and_an_unversioned_config_are_valid(config, version):
    if version is None:
        config.pop("format_version", None)
    else:
        config["format_version"] = version
    assert validate_model_config(config) is config


@pytest.mark.parametrize("version", [2, 1000000])
def test_a_newer_format_says_to_upgrade(config, version):
    config["format_version"] = version
    with pytest.raises(ArtifactError) as caught:
        validate_model_config(config)
    assert str(caught.value) == (f"artifact format {version} is newer than this dogbreed understands (1): "
                                 "upgrade dogbreed")


@pytest.mark.parametrize("version, problem", [(0, "must be between 1 and 1000000, got 0"),
                                              (1000001, "must be between 1 and 1000000, got 1000001"),
                                              (1.0, "must be an integer, got 1.0")])
def test_a_format_version_out_of_its_range_names_the_field(config, version, problem):
    config["format_version"] = version
    with pytest.raises(ArtifactError) as caught:
        validate_model_config(config)
    assert str(caught.value) == (
        f"model_config.json: format_version {problem}: re-export the model (python -m entry_points.train --model-dir "
        "...), or for weights from elsewhere make the model dir with python -m entry_points.import_model")


def test_another_architecture_is_refused_by_name(config):
    config["architecture"] = "vit_b_16"
    with pytest.raises(ArtifactError) as caught:
        validate_model_config(config)
    assert str(caught.value) == "unsupported architecture 'vit_b_16': this dogbreed serves resnet50"


BF16_RECORD = {"mode": "bf16", "agreement": 0.998, "max_abs_delta_p": 0.0031, "images": 500}


def test_a_measured_precision_travels_through_the_config_and_fp32_writes_none(config):
    from dogbreed.serving.artifact import ModelConfig

    loaded = ModelConfig.from_dict({**config, "precision": BF16_RECORD})
    assert loaded.precision == BF16_RECORD
    assert loaded.to_dict()["precision"] == {"mode": "bf16", "agreement": 0.998, "max_abs_delta_p": 0.0031,
                                             "images": 500}
    assert "precision" not in ModelConfig.from_dict(config).to_dict()  # nothing measured: no key, not null


@pytest.mark.parametrize("quality, warning", [
    ({"better_than_chance": False, "test": {"acc": 0.25, "chance": 0.3333333}},
     "warning: this model was no better than chance when trained (test accuracy 0.250, chance 0.333): its answers "
     "are guesses; retrain it (more data, more epochs, pretrained weights) before relying on them"),
    ({"better_than_chance": False},
     "warning: this model was no better than chance when trained: its answers are guesses; retrain it (more data, "
     "more epochs, pretrained weights) before relying on them"),
    ({"better_than_chance": True, "test": {"acc": 0.9, "chance": 0.1}}, None),
    ({"better_than_chance": None}, None),  # not measured: no claim either way
    ("not a record", None),
])
def test_the_chance_warning_comes_only_from_a_recorded_no(config, quality, warning):
    from dogbreed.serving.artifact import ModelConfig, quality_warning

    loaded = ModelConfig.from_dict({**config, "metrics": {**config.get("metrics", {}), "quality": quality}})
    assert quality_warning(loaded) == warning
