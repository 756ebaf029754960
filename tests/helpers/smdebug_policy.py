"""When the smdebug tests may be skipped: only where smdebug is not installed at all and ``CI`` is not set.

An smdebug that is installed but does not import (protobuf > 3.20.3, numpy >= 2.3) is a broken environment,
not an optional feature: those tests then run and fail. In CI (``.ci/run`` sets ``CI=1``) they never skip.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Mapping

import pytest


def smdebug_skip_reason(environ: Mapping[str, str] | None = None) -> str | None:
    """The reason to skip the smdebug tests, or None when they must run (and fail if smdebug is broken)."""
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return None
    if importlib.util.find_spec("smdebug") is not None:
        return None
    return "smdebug is not installed (pip install -e '.[debug]'); CI (CI=1) runs these tests"


needs_smdebug = pytest.mark.skipif(smdebug_skip_reason() is not None, reason=str(smdebug_skip_reason()))


def skip_module_without_smdebug() -> None:
    """Call at the top of a test module that imports smdebug at module level."""
    reason = smdebug_skip_reason()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


def block_smdebug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make smdebug unimportable for one test, as where it is not installed: ``import smdebug`` raises ImportError
    (``sys.modules["smdebug"] = None``), already-loaded submodules are dropped, ``find_spec`` finds nothing."""
    import sys

    for name in [name for name in sys.modules if name == "smdebug" or name.startswith("smdebug.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "smdebug", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "smdebug" else real(name, *a))


def smdebug_modules_loaded() -> list[str]:
    """smdebug modules a test loaded despite :func:`block_smdebug` (there must be none)."""
    import sys

    return sorted(name for name, module in sys.modules.items()
                  if (name == "smdebug" or name.startswith("smdebug.")) and module is not None)
