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

import os
import re
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import dogbreed
from dogbreed.core.constants import CONFIG_FILENAME, INT8_WEIGHTS_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError
from dogbreed.core.fileio import disk_errors
from dogbreed.serving.artifact import load_artifact, read_model_config
from dogbreed.serving.precision import precision_files

CODE_DIR = "code"
ENTRY_POINT = "inference.py"
PACKAGE_ROOT = Path(dogbreed.__file__).resolve().parent
ENTRY_POINT_SOURCE = PACKAGE_ROOT.parent / "entry_points" / ENTRY_POINT
# What code/dogbreed/ holds: the package marker and the two torch-only subpackages (an import-linter contract
# keeps them free of Lightning, torchmetrics, matplotlib and scipy; a test imports the archive with those blocked).
SERVING_SUBPACKAGES = ("core", "serving")
# Limits on what extract_model_archive unpacks (a model.tar.gz is ~90 MB with ~40 members).
MAX_ARCHIVE_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 8 * 1024**3
REBUILD = "rebuild it with python -m entry_points.package"


def check_model_dir(model_dir: Path) -> None:
    """Fail early and clearly: the archive must hold a model the endpoint can load."""
    if not model_dir.is_dir():
        raise ArtifactError(f"model dir {model_dir} does not exist: pass the --model-dir written by training")
    missing = [name for name in (WEIGHTS_FILENAME, CONFIG_FILENAME) if not (model_dir / name).is_file()]
    if missing:
        raise ArtifactError(f"model dir {model_dir} lacks {', '.join(missing)}: pass a dir written by "
                            "python -m entry_points.train --model-dir")
    load_artifact(model_dir, map_location="cpu")  # config valid, weights match, weights_only loading


def artifact_files(model_dir: Path) -> tuple[str, ...]:
    """model.pth, model_config.json and the reduced-precision weights the config records (model_int8.pth)."""
    record = read_model_config(model_dir).precision
    return (WEIGHTS_FILENAME, CONFIG_FILENAME, *precision_files(model_dir, record))


def stage_model_dir(model_dir: Path | str, destination: Path | str) -> Path:
    """Write the archive's layout into ``destination`` (used by packaging and the local endpoint)."""
    model_dir, destination = Path(model_dir), Path(destination)
    check_model_dir(model_dir)
    destination.mkdir(parents=True, exist_ok=True)
    for name in artifact_files(model_dir):
        shutil.copy2(model_dir / name, destination / name)
    return stage_own_code(destination)


def stage_own_code(destination: Path) -> Path:
    """``destination/code/``: this dogbreed's handlers (inference.py) and its serving modules."""
    if not ENTRY_POINT_SOURCE.is_file():
        raise ArtifactError(f"{ENTRY_POINT_SOURCE} not found: package from a dogbreed source checkout")
    code_dir = destination / CODE_DIR
    code_dir.mkdir(parents=True, exist_ok=True)
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
    if Path(model_dir).is_dir() and output.resolve().parent.is_relative_to(Path(model_dir).resolve()):
        raise ArtifactError(f"--output {output} is inside --model-dir {model_dir}: write the archive elsewhere "
                            "(e.g. --output model.tar.gz), so the model dir keeps only the model")
    # the staged copy and the archive: about twice the model dir, until the staging dir is removed
    needed = 2 * sum(p.stat().st_size for p in Path(model_dir).rglob("*") if p.is_file())
    with disk_errors(output.parent, needed):  # a full or read-only disk: one line, the staging dir removed
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".package-", dir=output.parent) as staging:
            staged = stage_model_dir(model_dir, Path(staging) / "model")
            partial = Path(staging) / output.name
            with tarfile.open(partial, "w:gz", compresslevel=6) as archive:
                for path in sorted(staged.rglob("*")):
                    archive.add(path, arcname=path.relative_to(staged).as_posix(), recursive=False,
                                filter=_reset_owner)
            partial.replace(output)
    return output


_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:")  # C:/x and C:x (drive-relative) both leave the folder on Windows


def _member_path(member: tarfile.TarInfo, archive: Path) -> PurePosixPath | None:
    """The member's relative path, or None for the archive root ("." / "./"). Refuses anything that is not a
    regular file or directory, and any absolute or ``..`` path: checked here for every member, on every Python
    (``tarfile``'s own ``filter="data"`` is bypassed by symlink chains on versions with CVE-2025-4517)."""
    kind = "a regular file" if member.isreg() else "a directory" if member.isdir() else None
    if kind is None:
        what = "a link" if member.issym() or member.islnk() else "a device, FIFO or special file"
        raise ArtifactError(f"{archive}: member {member.name!r} is {what}; a model archive holds only regular "
                            f"files and directories: {REBUILD}")
    name = member.name.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and _WINDOWS_DRIVE.match(path.parts[0])):
        raise ArtifactError(f"{archive}: member {member.name!r} points outside the archive's folder: {REBUILD}")
    parts = [part for part in path.parts if part != "."]
    return PurePosixPath(*parts) if parts else None


def _checked_members(tar: tarfile.TarFile, archive: Path) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    members: list[tuple[tarfile.TarInfo, PurePosixPath]] = []
    total = 0
    for member in tar:
        if len(members) >= MAX_ARCHIVE_MEMBERS:
            raise ArtifactError(f"{archive} has more than {MAX_ARCHIVE_MEMBERS} members: not a model archive")
        path = _member_path(member, archive)
        total += member.size if member.isreg() else 0
        if total > MAX_UNPACKED_BYTES:
            raise ArtifactError(f"{archive} unpacks to more than {MAX_UNPACKED_BYTES // 1024**3} GiB: "
                                "not a model archive")
        if path is not None:
            members.append((member, path))
    return members


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, root: Path, archive: Path) -> None:
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not target.parent.resolve().is_relative_to(root):
        raise ArtifactError(f"{archive}: member {member.name!r} resolves outside the destination: {REBUILD}")
    if member.isdir():
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
        return
    source = tar.extractfile(member)
    if source is None:
        raise ArtifactError(f"{archive}: member {member.name!r} has no data: {REBUILD}")
    # O_EXCL | O_NOFOLLOW: never write through a link, never overwrite a member written before (duplicates).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(target, flags, 0o644)
    except FileExistsError as exc:
        raise ArtifactError(f"{archive}: member {member.name!r} appears twice: {REBUILD}") from exc
    with os.fdopen(descriptor, "wb") as handle, source:
        shutil.copyfileobj(source, handle, 1024 * 1024)


def extract_model_archive(archive: Path | str, destination: Path | str, *, own_code: bool = False) -> Path:
    """Unpack a model.tar.gz safely into ``destination`` (a new or empty dir), then check the model loads.

    Every member is validated before anything is written: regular files and directories only (no links or
    devices), no absolute or ``..`` paths, each target resolved inside ``destination``, at most
    :data:`MAX_ARCHIVE_MEMBERS` members and :data:`MAX_UNPACKED_BYTES` in all. With ``own_code`` only the
    weights and the config are taken from the archive and ``code/`` is this dogbreed's own: the archive's
    ``code/inference.py`` (which an endpoint would otherwise run) is never unpacked.
    """
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise ArtifactError(f"model archive {archive} not found: build one with python -m entry_points.package")
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _checked_members(tar, archive)
            if own_code:
                members = [(m, p) for m, p in members
                           if p.as_posix() in (WEIGHTS_FILENAME, CONFIG_FILENAME, INT8_WEIGHTS_FILENAME)]
            for member, path in members:
                _extract_member(tar, member, root.joinpath(*path.parts), root, archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArtifactError(f"cannot unpack {archive} ({exc or type(exc).__name__}): {REBUILD}") from exc
    if own_code:
        stage_own_code(destination)
    elif not (destination / CODE_DIR / ENTRY_POINT).is_file():
        raise ArtifactError(f"{archive} has no {CODE_DIR}/{ENTRY_POINT}: {REBUILD}, or serve it with --own-code")
    check_model_dir(destination)
    return destination
