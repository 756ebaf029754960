"""A broken smdebug fails the run; the smdebug tests are skipped only where it is absent and CI is not set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers.smdebug_policy import smdebug_skip_reason

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def smdebug_absent(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "smdebug" else real(name, *a))


def test_absent_smdebug_outside_ci_is_a_skip(smdebug_absent):
    assert smdebug_skip_reason({}) == ("smdebug is not installed (pip install -e '.[debug]'); "
                                       "CI (CI=1) runs these tests")
    assert smdebug_skip_reason({"CI": "false"}) is not None


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_in_ci_the_smdebug_tests_never_skip(smdebug_absent, value):
    assert smdebug_skip_reason({"CI": value}) is None


def test_installed_smdebug_is_never_skipped_even_when_broken(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "smdebug" else real(name, *a))
    assert smdebug_skip_reason({}) is None


def test_smdebug_imports_wherever_the_tests_run_it():
    """The one import a broken install (protobuf > 3.20.3, numpy >= 2.3) fails, named in the failure."""
    if smdebug_skip_reason() is not None:
        pytest.skip(smdebug_skip_reason())
    import smdebug.pytorch  # noqa: F401
    from smdebug.rules import Rule  # noqa: F401
    from smdebug.trials import create_trial  # noqa: F401


def test_ci_script_sets_ci():
    script = (REPO / ".ci" / "run").read_text()
    assert 'export CI="${CI:-1}"' in script
    assert script.index('export CI="${CI:-1}"') < script.index("make test")
