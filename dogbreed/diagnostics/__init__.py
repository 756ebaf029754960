"""Diagnostics: SageMaker Debugger (smdebug) for Lightning (``smdebug_hook``: the callback and the trial-size
estimate), local versions of the Debugger's built-in rules (``rules``) and their report (``rule_report``),
profiling (``profiling``: Lightning's profilers, the system monitor), the files a profiled run leaves
(``profile_data``) and the report built from them alone (``profile_report``), where smdebug can run at all
(``smdebug_image``), and the run policy (``run_policy``: what diagnostics a run gets, and which defaults a profiled
run has).

An adapter layer: depends on ``training``/``config``; nothing inside the core or training imports it.

smdebug's process-wide logging is turned down here, in the package itself, because both the hook (which needs
Lightning) and the rules (which need smdebug, not Lightning) must do it before smdebug's first import. smdebug logs
at INFO to stdout by default: a line per trainable parameter when a hook registers a ResNet50 (about 160), a line
per trial load and refresh, config files it did not find. Among our own log lines that drowns the table and the
rule details. Its loggers read ``SMDEBUG_LOG_LEVEL`` once, when smdebug is first imported; after that only the
``smdebug`` logger's level counts.
"""

from __future__ import annotations

import logging
import os

SMDEBUG_LOG_LEVEL = "SMDEBUG_LOG_LEVEL"
_USER_LEVEL = os.environ.get(SMDEBUG_LOG_LEVEL)  # what the user asked for before we touched it


def quiet_smdebug_logging(level: int = logging.WARNING) -> None:
    """smdebug logs warnings and errors only (a level the user set in ``SMDEBUG_LOG_LEVEL`` is kept)."""
    if _USER_LEVEL:
        return
    os.environ[SMDEBUG_LOG_LEVEL] = logging.getLevelName(level).lower()
    logging.getLogger("smdebug").setLevel(level)
