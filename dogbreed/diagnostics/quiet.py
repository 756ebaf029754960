"""Quiet profiling by default: kineto prints profiler start/stop lines and, on CPU-only machines,
``ERROR ... gpuGetDeviceCount failed``. It reads an environment variable; we set it only when the user has not, so
``KINETO_LOG_LEVEL=0`` brings everything back. (smdebug's logging: ``dogbreed.diagnostics.smdebug_setup``.)
"""

from __future__ import annotations

import os

KINETO_LOG_LEVEL_ENV = "KINETO_LOG_LEVEL"
# kineto levels: 0 verbose .. 3 error, 4 stage, 5 USDT (profiler_start/stop lines): 6 silences all of them.
KINETO_QUIET_LEVEL = "6"


def quiet_kineto() -> None:
    """Before a torch.profiler run starts (kineto reads the level when the profiler initialises it)."""
    os.environ.setdefault(KINETO_LOG_LEVEL_ENV, KINETO_QUIET_LEVEL)
