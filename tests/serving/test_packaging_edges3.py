"""What ``code/`` in the model archive holds (the serving modules as source, never the bytecode left beside them:
a ``.pyc`` built by another Python is dead weight at best, stale code at worst), and a model dir without its config
refused by name before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dogbreed.core.errors import ArtifactError
from dogbreed.serving import packaging


def test_staged_code_leaves_bytecode_caches_home(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "checkout" / "dogbreed"
    shutil.copytree(packaging.PACKAGE_ROOT, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for folder in ("core", "serving"):
        (package / folder / "__pycache__").mkdir()
        (package / folder / "__pycache__" / "handlers.cpython-311.pyc").write_bytes(b"\x00stale")
    (package / "serving" / "old.pyc").write_bytes(b"\x00stale")
    monkeypatch.setattr(packaging, "PACKAGE_ROOT", package)
    code = packaging.stage_own_code(tmp_path / "model") / "code"
    staged = sorted(p.relative_to(code).as_posix() for p in code.rglob("*"))
    assert not [name for name in staged if "__pycache__" in name or name.endswith(".pyc")]
    assert "dogbreed/serving/handlers.py" in staged and "dogbreed/core/network.py" in staged
    assert (code / "dogbreed" / "serving" / "handlers.py").read_bytes() == (
        package / "serving" / "handlers.py").read_bytes()


def test_a_model_dir_without_its_config_is_refused_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    shutil.copy2(tiny_model_dir / "model.pth", weights_only / "model.pth")
    with pytest.raises(ArtifactError) as refused:
        packaging.build_model_archive(weights_only, tmp_path / "model.tar.gz")
    assert str(refused.value) == (f"model dir {weights_only} lacks model_config.json: pass a dir written by "
                                  "python -m entry_points.train --model-dir")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError) as refused:
        packaging.check_model_dir(empty)
    assert str(refused.value) == (f"model dir {empty} lacks model.pth, model_config.json: pass a dir written by "
                                  "python -m entry_points.train --model-dir")
    assert not (tmp_path / "model.tar.gz").exists()


def test_the_staged_model_carries_the_int8_weights_its_config_records(tiny_model_dir: Path, tmp_path: Path) -> None:
    import hashlib
    import json

    model_dir = tmp_path / "int8-model"
    shutil.copytree(tiny_model_dir, model_dir)
    int8 = b"stand-in int8 weights: only their hash is checked when packaging"
    config = json.loads((model_dir / "model_config.json").read_text())
    config["precision"] = {"mode": "int8", "agreement": 1.0, "max_abs_delta_p": 0.01, "images": 9,
                           "weights_sha256": hashlib.sha256(int8).hexdigest(),
                           "source_weights_sha256": config["weights_sha256"]}
    (model_dir / "model_config.json").write_text(json.dumps(config))
    (model_dir / "model_int8.pth").write_bytes(int8)
    staged = packaging.stage_model_dir(model_dir, tmp_path / "staged")
    assert sorted(p.name for p in staged.iterdir()) == ["code", "model.pth", "model_config.json", "model_int8.pth"]
    assert (staged / "model_int8.pth").read_bytes() == int8


def test_the_archive_is_a_gzipped_tar(tmp_path: Path, monkeypatch) -> None:
    """SageMaker unpacks model.tar.gz as a gzip'd tar. A small stand-in for the staged model keeps this fast."""
    import tarfile

    def stage(model_dir: Path, destination: Path) -> Path:
        destination.mkdir(parents=True)
        (destination / "model_config.json").write_text("{}")
        return destination

    monkeypatch.setattr(packaging, "stage_model_dir", stage)
    (tmp_path / "model").mkdir()
    archive = packaging.build_model_archive(tmp_path / "model", tmp_path / "out" / "model.tar.gz")
    assert archive.read_bytes()[:2] == b"\x1f\x8b"
    with tarfile.open(archive, "r:gz") as tar:
        assert tar.getnames() == ["model_config.json"]
