"""model.tar.gz extraction validates every member itself: crafted archives write nothing, anywhere."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dogbreed.core.errors import ArtifactError
from dogbreed.serving import packaging
from dogbreed.serving.packaging import ENTRY_POINT_SOURCE, build_model_archive, extract_model_archive
from entry_points import package as package_cli


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _symlink_chain_members(outside: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The shape of the CVE-2025-4517 proof of concept: nested dirs with a symlink beside each, a link through the
    chain whose path outgrows PATH_MAX (so realpath stops checking), a link to outside, then a file written
    through it. tarfile's filter="data" lets it through on affected Pythons (3.11.7 here)."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    component, path = "d" * 247, ""
    for step in "abcdefghijklmnop":
        directory = tarfile.TarInfo(os.path.join(path, component))
        directory.type = tarfile.DIRTYPE
        members.append((directory, None))
        members.append(_special(os.path.join(path, step), tarfile.SYMTYPE, component))
        path = os.path.join(path, component)
    long_link = os.path.join(*"abcdefghijklmnop", "l" * 254)
    members.append(_special(long_link, tarfile.SYMTYPE, "../" * 16))
    members.append(_special("escape", tarfile.SYMTYPE, long_link + "/.." * 40 + str(outside)))
    members.append(_file("escape/pwned.txt", b"written outside"))
    return members


def test_symlink_chain_archive_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _archive(tmp_path / "escape.tar.gz", _symlink_chain_members(outside))
    destination = tmp_path / "serve" / "model"
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(archive, destination)
    assert str(refused.value) == (f"{archive}: member 'a' is a link; a model archive holds only regular files and "
                                  "directories: rebuild it with python -m entry_points.package")
    assert list(outside.iterdir()) == []
    assert list(destination.iterdir()) == []  # every member is checked before the first one is written


OUTSIDE = "points outside the archive's folder: rebuild it with python -m entry_points.package"
LINK = "is a link; a model archive holds only regular files and directories: rebuild it with python -m " \
    "entry_points.package"
SPECIAL = "is a device, FIFO or special file; a model archive holds only regular files and directories: rebuild it " \
    "with python -m entry_points.package"


@pytest.mark.parametrize("member, refusal", [
    (_file("../escaped.txt"), f"member '../escaped.txt' {OUTSIDE}"),
    (_file("code/../../escaped.txt"), f"member 'code/../../escaped.txt' {OUTSIDE}"),
    (_file("/tmp/absolute.txt"), f"member '/tmp/absolute.txt' {OUTSIDE}"),
    # Windows separators and drives: read as "/" and refused, whatever the OS that unpacks the archive
    (_file("..\\escaped.txt"), f"member '..\\\\escaped.txt' {OUTSIDE}"),
    (_file("code\\..\\..\\escaped.txt"), f"member 'code\\\\..\\\\..\\\\escaped.txt' {OUTSIDE}"),
    (_file("C:\\Windows\\escaped.txt"), f"member 'C:\\\\Windows\\\\escaped.txt' {OUTSIDE}"),
    (_file("C:escaped.txt"), f"member 'C:escaped.txt' {OUTSIDE}"),
    (_special("model.pth", tarfile.SYMTYPE, "/etc/passwd"), f"member 'model.pth' {LINK}"),
    (_special("hard", tarfile.LNKTYPE, "/etc/passwd"), f"member 'hard' {LINK}"),
    (_special("dev", tarfile.CHRTYPE), f"member 'dev' {SPECIAL}"),
    (_special("fifo", tarfile.FIFOTYPE), f"member 'fifo' {SPECIAL}"),
])
def test_each_unsafe_member_kind_is_refused(tmp_path: Path, member, refusal: str) -> None:
    archive = _archive(tmp_path / "bad.tar.gz", [_file("model_config.json", b"{}"), member])
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(archive, tmp_path / "out")
    assert str(refused.value) == f"{archive}: {refusal}"
    assert not (tmp_path / "escaped.txt").exists() and list((tmp_path / "out").iterdir()) == []


def test_duplicate_member_is_refused_not_overwritten(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "dup.tar.gz", [_file("model.pth", b"first"), _file("model.pth", b"second")])
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(archive, tmp_path / "out")
    assert str(refused.value) == (f"{archive}: member 'model.pth' appears twice: rebuild it with python -m "
                                  "entry_points.package")
    assert (tmp_path / "out" / "model.pth").read_bytes() == b"first"


def test_size_and_member_count_limits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(packaging, "MAX_UNPACKED_BYTES", 100)
    big = _archive(tmp_path / "big.tar.gz", [_file("a", b"x" * 60), _file("b", b"x" * 60)])
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(big, tmp_path / "out1")
    assert str(refused.value) == f"{big} unpacks to more than 0 GiB: not a model archive"  # the limit in whole GiB
    monkeypatch.setattr(packaging, "MAX_ARCHIVE_MEMBERS", 3)
    many = _archive(tmp_path / "many.tar.gz", [_file(f"f{i}") for i in range(4)])
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(many, tmp_path / "out2")
    assert str(refused.value) == f"{many} has more than 3 members: not a model archive"
    assert list((tmp_path / "out1").iterdir()) == [] and list((tmp_path / "out2").iterdir()) == []


def test_half_a_gzip_is_an_artifact_error(tmp_path: Path) -> None:
    weights = np.random.default_rng(0).bytes(200_000)  # incompressible: half the archive is half its data
    archive = _archive(tmp_path / "model.tar.gz", [_file("model_config.json", b"{}"), _file("model.pth", weights)])
    half = tmp_path / "half.tar.gz"
    half.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(half, tmp_path / "out")
    assert str(refused.value) == (f"cannot unpack {half} (Compressed file ended before the end-of-stream marker was "
                                  "reached): rebuild it with python -m entry_points.package")


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_archive_made_with_tar_dot_prefixes_extracts(tiny_model_dir: Path, tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    extract_model_archive(build_model_archive(tiny_model_dir, tmp_path / "model.tar.gz"), staged)
    dotted = tmp_path / "dotted.tar.gz"
    with tarfile.open(dotted, "w:gz") as tar:  # what `tar czf model.tar.gz .` writes: ./, ./model.pth, ...
        tar.add(staged, arcname=".")
    out = extract_model_archive(dotted, tmp_path / "out")
    assert (out / "model.pth").read_bytes() == (tiny_model_dir / "model.pth").read_bytes()
    assert (out / "code" / "inference.py").is_file()


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_own_code_never_unpacks_the_archives_code(tiny_model_dir: Path, tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    extract_model_archive(build_model_archive(tiny_model_dir, tmp_path / "model.tar.gz"), staged)
    (staged / "code" / "inference.py").write_text("raise SystemExit('this archive code ran')\n")
    (staged / "code" / "extra.py").write_text("print('extra')\n")
    hostile = tmp_path / "hostile.tar.gz"
    with tarfile.open(hostile, "w:gz") as tar:
        for path in sorted(staged.rglob("*")):
            tar.add(path, arcname=path.relative_to(staged).as_posix(), recursive=False)
    out = extract_model_archive(hostile, tmp_path / "out", own_code=True)
    assert (out / "code" / "inference.py").read_bytes() == ENTRY_POINT_SOURCE.read_bytes()
    assert not (out / "code" / "extra.py").exists()
    assert (out / "model_config.json").read_bytes() == (tiny_model_dir / "model_config.json").read_bytes()


def test_package_output_inside_the_model_dir_is_refused(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("model.pth", "model_config.json"):
        (model_dir / name).write_bytes((tiny_model_dir / name).read_bytes())
    weights = (model_dir / "model.pth").read_bytes()
    status = package_cli.main(["--model-dir", str(model_dir), "--output", str(model_dir / "model.pth")])
    assert status == 2
    err = capsys.readouterr().err
    assert err == (f"error: --output {model_dir / 'model.pth'} is inside --model-dir {model_dir}: write the archive "
                   "elsewhere (e.g. --output model.tar.gz), so the model dir keeps only the model\n")
    assert (model_dir / "model.pth").read_bytes() == weights
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.pth", "model_config.json"]


@pytest.mark.slow  # a 90 MB archive written and unpacked twice: make test, not make test-quick
def test_an_archive_without_the_handler_is_refused_unless_served_with_own_code(tiny_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    bare = tmp_path / "bare.tar.gz"
    with tarfile.open(bare, "w:gz") as tar:  # only the model files, as a hand-made archive may hold
        for name in ("model.pth", "model_config.json"):
            tar.add(tiny_model_dir / name, arcname=name)
    with pytest.raises(ArtifactError) as refused:
        extract_model_archive(bare, tmp_path / "out")
    assert str(refused.value) == (f"{bare} has no code/inference.py: rebuild it with python -m entry_points.package, "
                                  "or serve it with --own-code")
    out = extract_model_archive(bare, tmp_path / "own", own_code=True)
    assert (out / "code" / "inference.py").read_bytes() == ENTRY_POINT_SOURCE.read_bytes()


def test_an_output_that_is_a_directory_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as refused:
        build_model_archive(tiny_model_dir, tmp_path)
    assert str(refused.value) == f"--output {tmp_path} is a directory: give a file name such as model.tar.gz"
    assert list(tmp_path.iterdir()) == []  # nothing staged or written


def test_packaging_outside_a_source_checkout_says_where_to_package_from(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "site-packages" / "entry_points" / "inference.py"
    monkeypatch.setattr(packaging, "ENTRY_POINT_SOURCE", missing)
    with pytest.raises(ArtifactError) as refused:
        packaging.stage_own_code(tmp_path / "staged")
    assert str(refused.value) == f"{missing} not found: package from a dogbreed source checkout"
    assert not (tmp_path / "staged").exists()


def test_own_code_keeps_the_int8_weights_the_config_records(tiny_model_dir: Path, tmp_path: Path) -> None:
    """--own-code takes the model's files from the archive (model_int8.pth too, which an int8 record serves from)
    and nothing else. The archive is a plain tar (no gzip of 90 MB): fast."""
    import hashlib
    import json

    int8 = b"stand-in int8 weights: only their hash is checked when unpacking"
    config = json.loads((tiny_model_dir / "model_config.json").read_text())
    config["precision"] = {"mode": "int8", "agreement": 1.0, "max_abs_delta_p": 0.01, "images": 9,
                           "weights_sha256": hashlib.sha256(int8).hexdigest(),
                           "source_weights_sha256": config["weights_sha256"]}
    archive = tmp_path / "int8.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tiny_model_dir / "model.pth", arcname="model.pth")
        for name, data in (("model_config.json", json.dumps(config).encode()), ("model_int8.pth", int8),
                           ("code/inference.py", b"raise SystemExit('archive code ran')\n"),
                           ("notes.txt", b"not a model file")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = extract_model_archive(archive, tmp_path / "out", own_code=True)
    assert (out / "model_int8.pth").read_bytes() == int8
    assert json.loads((out / "model_config.json").read_text())["precision"]["mode"] == "int8"
    assert (out / "code" / "inference.py").read_bytes() == ENTRY_POINT_SOURCE.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["code", "model.pth", "model_config.json", "model_int8.pth"]


def test_archive_members_are_owned_by_root_and_readable_by_the_server_user() -> None:
    """model.pth is written 0600 (atomic_write): in the archive every file is 0644 and every dir 0755, owner 0,
    so the container's model server (not root) can read them."""
    from dogbreed.serving.packaging import _reset_owner

    private = tarfile.TarInfo("model.pth")
    private.mode, private.uid, private.gid, private.uname, private.gname = 0o600, 1000, 1000, "me", "staff"
    folder = tarfile.TarInfo("code")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o700
    for info, mode in ((private, 0o644), (folder, 0o755)):
        cleaned = _reset_owner(info)
        assert (cleaned.mode, cleaned.uid, cleaned.gid, cleaned.uname, cleaned.gname) == (mode, 0, 0, "", "")
