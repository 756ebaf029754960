"""Quiet diagnostics by default: smdebug logs every registered tensor at INFO (~170 lines for a ResNet50) and
kineto prints profiler start/stop lines and, on CPU-only machines, ``ERROR ... gpuGetDeviceCount failed``.

Both libraries read an environment variable; we set it only when the user has not, so
``SMDEBUG_LOG_LEVEL=info`` or ``KINETO_LOG_LEVEL=0`` brings everything back.
"""

from __future__ import annotations

import logging
import os

SMDEBUG_LOG_LEVEL_ENV = "SMDEBUG_LOG_LEVEL"
SMDEBUG_QUIET_LEVEL = "warning"
KINETO_LOG_LEVEL_ENV = "KINETO_LOG_LEVEL"
# kineto levels: 0 verbose .. 3 error, 4 stage, 5 USDT (profiler_start/stop lines): 6 silences all of them.
KINETO_QUIET_LEVEL = "6"


def quiet_smdebug() -> None:
    """Before smdebug is imported: its logger (stdout, set up once at import) at WARNING unless asked otherwise."""
    os.environ.setdefault(SMDEBUG_LOG_LEVEL_ENV, SMDEBUG_QUIET_LEVEL)
    if os.environ[SMDEBUG_LOG_LEVEL_ENV].lower() == SMDEBUG_QUIET_LEVEL:
        logging.getLogger("smdebug").setLevel(logging.WARNING)  # if smdebug was imported earlier


def quiet_kineto() -> None:
    """Before a torch.profiler run starts (kineto reads the level when the profiler initialises it)."""
    os.environ.setdefault(KINETO_LOG_LEVEL_ENV, KINETO_QUIET_LEVEL)
