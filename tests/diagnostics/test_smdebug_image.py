"""smdebug only where it can run: a run asking for it on an image with numpy >= 2.3 or protobuf > 3.20.3 (the AL2023
SageMaker PyTorch images) is refused with one line; requirements-smdebug.txt pins what the check expects."""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from dogbreed.core.errors import ConfigError
from dogbreed.diagnostics.run_policy import profiled_config
from dogbreed.diagnostics.smdebug_hook import debug_callbacks
from dogbreed.diagnostics.smdebug_image import SMDEBUG_LIMITS, refuse_smdebug_where_it_cannot_run, smdebug_conflicts
from tests.helpers.builders import fast_config
from tests.helpers.smdebug_policy import block_smdebug

REPO = Path(__file__).resolve().parents[2]
AL2023 = {"numpy": "2.4.3", "protobuf": "6.33.6"}  # locked in the PyTorch 2.13 SageMaker image
PT28_WITH_SMDEBUG = {"numpy": "2.2.6", "protobuf": "3.20.3"}


def _versions(table: dict[str, str]):
    def version_of(package: str) -> str:
        if package in table:
            return table[package]
        raise importlib.metadata.PackageNotFoundError(package)
    return version_of


@pytest.fixture
def al2023_image(monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: AL2023.get(name) or real(name))


def test_the_al2023_versions_are_both_named():
    assert smdebug_conflicts(_versions(AL2023)) == ["numpy 2.4.3 (smdebug needs numpy<2.3)",
                                                    "protobuf 6.33.6 (smdebug needs protobuf<=3.20.3)"]


@pytest.mark.parametrize("table, expected", [
    (PT28_WITH_SMDEBUG, []),
    ({"numpy": "2.3.0rc1", "protobuf": "3.20.3"}, ["numpy 2.3.0rc1 (smdebug needs numpy<2.3)"]),
    ({"numpy": "2.3", "protobuf": "3.20"}, ["numpy 2.3 (smdebug needs numpy<2.3)"]),  # the bound itself, written short
    ({"numpy": "2.2", "protobuf": "not-a-version"}, []),  # unparseable: not called too new
    ({"numpy": "2.2.99", "protobuf": "3.20.4"}, ["protobuf 3.20.4 (smdebug needs protobuf<=3.20.3)"]),
    ({"numpy": "1.26.4"}, []),  # protobuf not installed: nothing to conflict
])
def test_the_limits_sit_exactly_at_smdebugs_pins(table, expected):
    assert smdebug_conflicts(_versions(table)) == expected


def test_the_refusal_is_one_line_naming_the_request_the_versions_and_the_way_out():
    with pytest.raises(ConfigError) as err:
        refuse_smdebug_where_it_cannot_run("--debug-dir /opt/ml/output/data/trial", _versions(AL2023))
    message = str(err.value)
    assert message == (
        "--debug-dir /opt/ml/output/data/trial asks for smdebug, which cannot run here: numpy 2.4.3 (smdebug needs "
        "numpy<2.3), protobuf 6.33.6 (smdebug needs protobuf<=3.20.3), as on the Amazon Linux 2023 SageMaker PyTorch "
        "images (2.13, 2.14). Profile without it (python -m entry_points.profiled_train and python -m "
        "entry_points.profile_report need no smdebug), or collect tensors on an image that can hold smdebug "
        "(entry_points/requirements-smdebug.txt: PyTorch 2.8 or older, or your own image with numpy<2.3, "
        "protobuf<=3.20.3)")
    refuse_smdebug_where_it_cannot_run("--debug-dir x", _versions(PT28_WITH_SMDEBUG))  # no error


def test_a_run_asking_for_a_trial_on_an_al2023_image_is_refused_before_training(tmp_path, al2023_image):
    options = fast_config(tmp_path, tmp_path, debug_dir=tmp_path / "trial").diagnostics
    with pytest.raises(ConfigError) as refused:
        debug_callbacks(options)
    assert str(refused.value) == (
        f"--debug-dir {tmp_path / 'trial'} asks for smdebug, which cannot run here: numpy 2.4.3 (smdebug needs "
        "numpy<2.3), protobuf 6.33.6 (smdebug needs protobuf<=3.20.3), as on the Amazon Linux 2023 SageMaker PyTorch "
        "images (2.13, 2.14). Profile without it (python -m entry_points.profiled_train and python -m "
        "entry_points.profile_report need no smdebug), or collect tensors on an image that can hold smdebug "
        "(entry_points/requirements-smdebug.txt: PyTorch 2.8 or older, or your own image with numpy<2.3, "
        "protobuf<=3.20.3)")
    assert debug_callbacks(replace(options, debug_dir=None)) == []  # no trial asked: nothing to refuse


def test_a_profiled_run_on_an_al2023_image_goes_on_without_a_trial(tmp_path, al2023_image, caplog):
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.run_policy"):
        config = profiled_config(fast_config(tmp_path, tmp_path))
    assert config.diagnostics.debug_dir is None and config.diagnostics.profiler == "pytorch"
    assert ("no smdebug trial: numpy 2.4.3 (smdebug needs numpy<2.3), protobuf 6.33.6 (smdebug needs "
            "protobuf<=3.20.3); the profile and its report need none") in caplog.messages


def test_a_profiled_run_without_smdebug_or_in_a_job_has_no_default_trial(tmp_path, monkeypatch, caplog):
    config = fast_config(tmp_path, tmp_path)
    assert profiled_config(config, default_trial=False).diagnostics.debug_dir is None
    assert profiled_config(config, default_trial=False).diagnostics.profiler == "pytorch"
    block_smdebug(monkeypatch)
    with caplog.at_level(logging.INFO, logger="dogbreed.diagnostics.run_policy"):
        assert profiled_config(config).diagnostics.debug_dir is None
    assert ("no smdebug trial: smdebug is not installed (pip install -e '.[debug]'); the profile and its report need "
            "none") in caplog.messages


def _requirements(path: Path) -> dict[str, Requirement]:
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {Requirement(line).name: Requirement(line) for line in lines}


def test_requirements_smdebug_matches_the_debug_extra_and_the_check():
    path = REPO / "entry_points" / "requirements-smdebug.txt"
    pinned = _requirements(path)
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["debug"]
    assert {name: str(req.specifier) for name, req in pinned.items()} == \
        {Requirement(r).name: str(Requirement(r).specifier) for r in extra}
    for package, (operator, limit) in SMDEBUG_LIMITS.items():
        assert f"{operator}{limit}" in str(pinned[package].specifier).split(","), package
    assert str(pinned["smdebug"].specifier) == "==1.0.34"
    header = path.read_text().split("\nsmdebug==")[0]
    for words in ("PyTorch training images 2.8 and older", "numpy<2.3 and protobuf<=3.20.3",
                  "NOT on the Amazon Linux 2023 PyTorch images"):
        assert words in " ".join(header.replace("#", " ").split()), words
