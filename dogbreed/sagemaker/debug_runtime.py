"""smdebug inside a SageMaker Debugger job, without downgrading the training toolkit's protobuf.

smdebug 1.0.34 declares ``protobuf<=3.20.3``; sagemaker-training>=5 (in the current PyTorch DLCs) needs
``protobuf>=5.28.1``. Installed with its dependencies, smdebug downgrades protobuf under the toolkit and pip
prints an ERROR. So the debug job's ``requirements.txt`` carries smdebug's other needs
(``entry_points/requirements-debug.txt``), and :func:`prepare_smdebug` installs smdebug itself with
``--no-deps`` when the job starts; its generated protobuf modules then run on protobuf's pure-Python
implementation (``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``; checked with protobuf 6.33 and 7.36:
a hook writes a trial and ``create_trial`` reads it back). Only this job pays for it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping, MutableMapping, Sequence

from dogbreed.core.errors import DogBreedError
from dogbreed.sagemaker.environment import in_sagemaker_training, sagemaker_base_dir

logger = logging.getLogger(__name__)

SMDEBUG_REQUIREMENT = "smdebug==1.0.34"
PROTOBUF_IMPLEMENTATION = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
# Sent with every Debugger job (build_estimator(debugging=True)): smdebug's protobuf modules predate protoc 3.19.
DEBUG_JOB_ENVIRONMENT = {PROTOBUF_IMPLEMENTATION: "python"}
# smdebug's own names (smdebug/core/config_constants.py): where SageMaker writes the Debugger hook config.
CONFIG_PATH_ENV = "SMDEBUG_CONFIG_FILE_PATH"
HOOK_CONFIG = Path("input/config/debughookconfig.json")

Runner = Callable[[Sequence[str]], int]


def debugger_config_in_job(environ: Mapping[str, str]) -> Path | None:
    """The Debugger hook config SageMaker wrote for this training job, if it is one with a config."""
    if not in_sagemaker_training(environ):
        return None
    path = Path(environ[CONFIG_PATH_ENV]) if environ.get(CONFIG_PATH_ENV) else sagemaker_base_dir(environ) / HOOK_CONFIG
    return path if path.is_file() else None


def protobuf_major() -> int | None:
    """The installed protobuf's major version, read from its metadata (importing it would fix the backend)."""
    try:
        return int(importlib.metadata.version("protobuf").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def _pip(args: Sequence[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pip", *args])


def prepare_smdebug(environ: MutableMapping[str, str] | None = None, *, run: Runner = _pip) -> bool:
    """In a SageMaker job with a Debugger config: make smdebug importable (``pip install --no-deps``) and select
    protobuf's pure-Python implementation when protobuf is 4 or newer. Call it before anything imports protobuf.
    Returns True when it installed smdebug. Elsewhere it does nothing."""
    environ = os.environ if environ is None else environ
    config = debugger_config_in_job(environ)
    if config is None:
        return False
    major = protobuf_major()
    if major is not None and major >= 4 and PROTOBUF_IMPLEMENTATION not in environ:
        environ[PROTOBUF_IMPLEMENTATION] = "python"
        logger.info("protobuf %d: smdebug runs on protobuf's pure-Python implementation", major)
    if importlib.util.find_spec("smdebug") is not None:
        return False
    logger.info("Debugger config %s: installing %s without its protobuf pin", config, SMDEBUG_REQUIREMENT)
    if run(["install", "--no-deps", "--no-cache-dir", SMDEBUG_REQUIREMENT]) != 0:
        raise DogBreedError(f"pip could not install {SMDEBUG_REQUIREMENT} for the Debugger job (see the pip output "
                            "above); without it no tensors reach the Debugger rules. Check the job's internet/"
                            "CodeArtifact access, or run it with your own image that has smdebug (image_uri=)")
    importlib.invalidate_caches()
    return True
