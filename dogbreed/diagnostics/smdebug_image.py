"""Whether this environment can hold smdebug at all, asked before a run that wants it collects anything.

smdebug 1.0.34 (its last release, 2023) needs numpy < 2.3 (it saves tensors with ``ndarray.tostring()``) and
protobuf <= 3.20.3 (its generated protobuf modules). The current SageMaker PyTorch training images (2.13, 2.14 on
Amazon Linux 2023) lock numpy 2.4.3 and protobuf 6.33.6, and their training toolkit needs protobuf >= 5.28.1: smdebug
cannot live there, and installing it would downgrade both under the toolkit. A run that asks for smdebug collection
(``--debug-dir``, or a SageMaker Debugger hook config) where either package is too new is refused with one line,
before any data is read. ``entry_points/requirements-smdebug.txt`` names the images that can hold it. Profiling
needs none of this: the profiled run's report reads only its own CSV and JSON files.

The versions are read from the installed metadata, so nothing is imported (importing protobuf would fix its backend).
"""

from __future__ import annotations

import importlib.metadata
from typing import Callable

from packaging.version import InvalidVersion, Version

from dogbreed.core.errors import ConfigError

REQUIREMENTS_FILE = "entry_points/requirements-smdebug.txt"
# package -> (the newest version smdebug 1.0.34 works with is below / at most this, the requirement as written)
SMDEBUG_LIMITS: dict[str, tuple[str, str]] = {"numpy": ("<", "2.3"), "protobuf": ("<=", "3.20.3")}

VersionOf = Callable[[str], str]


def _too_new(version: str, operator: str, limit: str) -> bool:
    try:
        installed = Version(version).release  # 2.3.0rc1 counts as 2.3: smdebug's limit is about the API
    except InvalidVersion:
        return False
    bound = Version(limit).release
    return installed >= bound if operator == "<" else installed > bound


def smdebug_conflicts(version_of: VersionOf | None = None) -> list[str]:
    """The installed packages too new for smdebug, e.g. ``["numpy 2.4.3 (smdebug needs numpy<2.3)"]``."""
    version_of = version_of or importlib.metadata.version
    conflicts = []
    for package, (operator, limit) in SMDEBUG_LIMITS.items():
        try:
            version = version_of(package)
        except importlib.metadata.PackageNotFoundError:
            continue
        if _too_new(version, operator, limit):
            conflicts.append(f"{package} {version} (smdebug needs {package}{operator}{limit})")
    return conflicts


def refuse_smdebug_where_it_cannot_run(request: str, version_of: VersionOf | None = None) -> None:
    """Raise a one-line :class:`ConfigError` when ``request`` (what asked for smdebug, e.g. ``--debug-dir X``) would
    need smdebug in an environment that cannot hold it."""
    conflicts = smdebug_conflicts(version_of)
    if conflicts:
        raise ConfigError(
            f"{request} asks for smdebug, which cannot run here: {', '.join(conflicts)}, as on the Amazon Linux 2023 "
            "SageMaker PyTorch images (2.13, 2.14). Profile without it (python -m entry_points.profiled_train and "
            "python -m entry_points.profile_report need no smdebug), or collect tensors on an image that can hold "
            f"smdebug ({REQUIREMENTS_FILE}: PyTorch 2.8 or older, or your own image with numpy<2.3, "
            "protobuf<=3.20.3)")
