"""Build a SageMaker-ready ``model.tar.gz`` from a model dir.

Layout (what the PyTorch serving container expects, so ``PyTorchModel`` needs no repack)::

    model.pth  model_config.json          <- the artifact, at the top
    code/inference.py                     <- entry_points/inference.py
    code/dogbreed/__init__.py             <- the serving modules only: dogbreed.core and dogbreed.serving,
    code/dogbreed/core/...                   which need nothing the container lacks (torch, torchvision,
    code/dogbreed/serving/...                numpy, Pillow), so there is no code/requirements.txt and the
                                             endpoint starts without a pip install (network isolation works)
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path

import dogbreed
from dogbreed.core.constants import CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError
from dogbreed.serving.artifact import load_artifact

CODE_DIR = "code"
ENTRY_POINT = "inference.py"
PACKAGE_ROOT = Path(dogbreed.__file__).resolve().parent
ENTRY_POINT_SOURCE = PACKAGE_ROOT.parent / "entry_points" / ENTRY_POINT
# What code/dogbreed/ holds: the package marker and the two torch-only subpackages (an import-linter contract
# keeps them free of Lightning, torchmetrics, matplotlib and scipy; a test imports the archive with those blocked).
SERVING_SUBPACKAGES = ("core", "serving")


def check_model_dir(model_dir: Path) -> None:
    """Fail early and clearly: the archive must hold a model the endpoint can load."""
    if not model_dir.is_dir():
        raise ArtifactError(f"model dir {model_dir} does not exist: pass the --model-dir written by training")
    missing = [name for name in (WEIGHTS_FILENAME, CONFIG_FILENAME) if not (model_dir / name).is_file()]
    if missing:
        raise ArtifactError(f"model dir {model_dir} lacks {', '.join(missing)}: pass a dir written by "
                            "python -m entry_points.train --model-dir")
    load_artifact(model_dir, map_location="cpu")  # config valid, weights match, weights_only loading


def stage_model_dir(model_dir: Path | str, destination: Path | str) -> Path:
    """Write the archive's layout into ``destination`` (used by packaging and the local endpoint)."""
    model_dir, destination = Path(model_dir), Path(destination)
    check_model_dir(model_dir)
    if not ENTRY_POINT_SOURCE.is_file():
        raise ArtifactError(f"{ENTRY_POINT_SOURCE} not found: package from a dogbreed source checkout")
    code_dir = destination / CODE_DIR
    code_dir.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILENAME, CONFIG_FILENAME):
        shutil.copy2(model_dir / name, destination / name)
    shutil.copy2(ENTRY_POINT_SOURCE, code_dir / ENTRY_POINT)
    package_dir = code_dir / "dogbreed"
    package_dir.mkdir(exist_ok=True)
    shutil.copy2(PACKAGE_ROOT / "__init__.py", package_dir / "__init__.py")
    for subpackage in SERVING_SUBPACKAGES:
        shutil.copytree(PACKAGE_ROOT / subpackage, package_dir / subpackage,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    return destination


def _reset_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644  # model.pth is written 0600; the server must read it
    return info


def build_model_archive(model_dir: Path | str, output: Path | str) -> Path:
    """Create ``output`` (a .tar.gz) from ``model_dir``; written atomically next to ``output``."""
    output = Path(output)
    if output.is_dir():
        raise ArtifactError(f"--output {output} is a directory: give a file name such as model.tar.gz")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".package-", dir=output.parent) as staging:
        staged = stage_model_dir(model_dir, Path(staging) / "model")
        partial = Path(staging) / output.name
        with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
            for path in sorted(staged.rglob("*")):
                archive.add(path, arcname=path.relative_to(staged).as_posix(), recursive=False, filter=_reset_owner)
        partial.replace(output)
    return output


def extract_model_archive(archive: Path | str, destination: Path | str) -> Path:
    """Unpack a model.tar.gz safely (no absolute paths, links or escapes) into ``destination``."""
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise ArtifactError(f"model archive {archive} not found: build one with python -m entry_points.package")
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"cannot unpack {archive} ({exc}): rebuild it with python -m entry_points.package") from exc
    if not (destination / CODE_DIR / ENTRY_POINT).is_file():
        raise ArtifactError(f"{archive} has no {CODE_DIR}/{ENTRY_POINT}: "
                            "rebuild it with python -m entry_points.package")
    check_model_dir(destination)
    return destination
