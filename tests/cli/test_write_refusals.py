"""Issue 27, item 3: a write the file system refuses (full, read-only, quota, permission) is one line naming the
dir and about how much it needs, exit 2, nothing partial left; package and serve check their outputs first.

Tests may run as root, where chmod does not stop writes: the refusals are raised by monkeypatched writes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from dogbreed.cli import package, serve
from dogbreed.cli.runner import run_command
from dogbreed.core.errors import OutputError
from dogbreed.core.fileio import atomic_write
from dogbreed.training.head_training import CachedFeatures, save_features


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_atomic_write_names_the_dir_and_the_size(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "model.pth"
    target.write_bytes(b"previous")
    monkeypatch.setattr("dogbreed.core.fileio.os.fsync", _full_disk)
    with pytest.raises(OutputError) as caught:
        atomic_write(target, lambda handle: handle.write(b"x" * 3_000_000), needed_bytes=3_000_000)
    assert str(caught.value) == (f"no space left writing {tmp_path} (needs about 3 MB): free some space there or "
                                 "write elsewhere")
    assert target.read_bytes() == b"previous"  # the old file is whole and no temp file is left
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_a_full_disk_while_caching_features_says_how_much_the_cache_needs(tmp_path: Path, monkeypatch) -> None:
    cached = CachedFeatures(features=torch.zeros(1000, 1, 2048), labels=torch.zeros(1000, dtype=torch.long))
    monkeypatch.setattr("dogbreed.core.fileio.os.fsync", _full_disk)
    with pytest.raises(OutputError) as caught:
        save_features(tmp_path / "cache" / "features.pt", "key", cached)
    assert str(caught.value) == (f"no space left writing {tmp_path / 'cache'} (needs about 8 MB): free some space "
                                 "there or write elsewhere")
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("code, cause, fix", [
    (errno.EROFS, "read-only file system", "choose a folder you can write to"),
    (errno.EDQUOT, "disk quota exceeded", "free some space there or write elsewhere"),
    (errno.EACCES, "permission denied", "choose a folder you can write to"),
])
def test_any_refused_write_reaching_the_runner_is_one_line_exit_2(tmp_path: Path, capsys, code, cause, fix) -> None:
    def body():
        raise OSError(code, "refused", str(tmp_path / "metrics.json"))

    assert run_command(body) == 2
    assert capsys.readouterr().err == f"error: {cause} writing {tmp_path}: {fix}\n"


def test_package_into_a_full_disk_is_one_line_and_leaves_no_staging_dir(tiny_model_dir: Path, tmp_path: Path,
                                                                        monkeypatch, capsys) -> None:
    monkeypatch.setattr("dogbreed.serving.packaging.tarfile.open", _full_disk)
    out = tmp_path / "out"
    assert package.main(["--model-dir", str(tiny_model_dir), "--output", str(out / "model.tar.gz")]) == 2
    size = sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file())
    assert capsys.readouterr().err == (f"error: no space left writing {out} (needs about {round(2 * size / 1e6)} MB): "
                                       "free some space there or write elsewhere\n")
    assert list(out.iterdir()) == []


def test_package_output_under_a_file_is_refused_before_the_model_is_read(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert package.main(["--model-dir", str(tmp_path / "no-model"), "--output", str(blocker / "m.tar.gz")]) == 2
    assert capsys.readouterr().err == (f"error: --output's folder {blocker} is a file, not a directory: pass a "
                                       "directory path\n")


TIMEOUT_RANGE = ("--timeout must be a finite number above 0 and at most 86400 (the seconds to wait for the model to "
                 "load; default: 180), got")


@pytest.mark.parametrize("argv, message", [
    (["--timeout", "nan"], f"{TIMEOUT_RANGE} nan"),
    (["--timeout", "inf"], f"{TIMEOUT_RANGE} inf"),
    (["--timeout", "0"], f"{TIMEOUT_RANGE} 0.0"),
    (["--timeout", "-1"], f"{TIMEOUT_RANGE} -1.0"),
    (["--workers", "1000"], "--workers must be between 1 and 64 (each worker process holds its own copy of the "
                            "model), got 1000"),
    (["--response-timeout", "0"], "--response-timeout must be between 1 and 86400 seconds (default: 60), got 0"),
])
def test_serve_refuses_bad_values_before_any_temp_dir_or_server(tiny_model_dir, monkeypatch, capsys, argv, message):
    monkeypatch.setattr("dogbreed.cli.serve.tempfile.mkdtemp", lambda **kw: pytest.fail("a temp dir was made"))
    assert serve.main(["--model-dir", str(tiny_model_dir), *argv]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_serve_work_dir_that_is_a_file_is_refused_first(tiny_model_dir, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert serve.main(["--model-dir", str(tiny_model_dir), "--work-dir", str(blocker)]) == 2
    assert capsys.readouterr().err == f"error: --work-dir {blocker} is a file, not a directory: pass a directory path\n"
