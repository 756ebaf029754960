"""Fixtures of the diagnostics tests."""

from __future__ import annotations

import pytest

from dogbreed.diagnostics.smdebug_hook import CONFIG_PATH_ENV


@pytest.fixture(autouse=True)
def no_sagemaker_config(monkeypatch, tmp_path):
    """Point smdebug's config variable at a missing file, so a real /opt/ml config can never leak in."""
    monkeypatch.setenv(CONFIG_PATH_ENV, str(tmp_path / "absent-debughookconfig.json"))
