"""Parser edges the option registry passes through without pinning: a launcher option's inline value, the "--"
that ends the options, a --config file whose "config" is not an object. Each test was written against a mutant
the rest of the suite let live."""

from __future__ import annotations

import json

import pytest

from dogbreed.config.parser import build_parser, load_config_file, split_launcher_options, unknown_options
from dogbreed.core.errors import ConfigError


def test_a_launcher_option_with_an_inline_value_takes_no_second_value():
    assert split_launcher_options(["--sagemaker_program=train.py", "stray", "--_hp", "v", "--epochs", "2"]) == (
        ["stray", "--epochs", "2"], ["--sagemaker_program", "--_hp"])


def test_nothing_after_a_double_dash_is_taken_for_an_option():
    parser = build_parser()
    assert unknown_options(["--epochs", "2", "--", "--not-an-option", "--lerning-rate"], parser) == []
    assert unknown_options(["--lerning-rate", "1", "--", "--x"], parser) == ["--lerning-rate"]


def test_a_config_file_whose_config_is_not_an_object_is_read_as_the_options_themselves(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"config": "epochs=3"}))
    with pytest.raises(ConfigError) as refused:
        load_config_file(path)
    assert str(refused.value).startswith(f"--config {path}: unknown option(s) config; valid: data-dir, train-dir, ")

