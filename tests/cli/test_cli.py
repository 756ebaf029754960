"""The command-line entry points as a user runs them (subprocesses), and --download."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from dogbreed.core.errors import DownloadError
from dogbreed.data.sources import download_dataset
from tests.helpers.builders import BREED_DIRS, write_tree
from tests.helpers.report_checks import check_plot
from tests.training.test_model import _Server

REPO = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.slow
def test_train_cli_end_to_end_then_predict_json(tmp_path, learnable_tree):
    model, reports = tmp_path / "m", tmp_path / "o"
    proc = run_module("entry_points.train", "--data-dir", str(learnable_tree), "--model-dir", str(model),
                      "--output-dir", str(reports), "--weights", "none", "--epochs", "2", "--image_size", "32",
                      "--num-workers", "0", "--finetune", "full", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    epoch_lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch=")]
    assert [line.split()[0] for line in epoch_lines] == ["epoch=1", "epoch=2"]
    assert all("train_loss=" in line and "val_loss=" in line and "val_acc=" in line for line in epoch_lines)
    assert any(line.startswith("test: test_loss=") for line in proc.stdout.splitlines())
    assert torch.load(model / "model.pth", weights_only=True)["fc.weight"].shape == (3, 2048)
    assert json.loads((model / "model_config.json").read_text())["class_names"] == [
        "Affenpinscher", "Afghan hound", "Airedale terrier"]
    history = json.loads((reports / "metrics.json").read_text())["history"]
    assert [f"epoch={row['epoch']}" for row in history] == ["epoch=1", "epoch=2"]
    for line, row in zip(epoch_lines, history):  # the printed lines are the recorded metrics
        assert f" val_acc={row['val_acc']:.6f} " in line and f"train_loss={row['train_loss']:.6f} " in line
    csv_rows = (reports / "per_class_accuracy.csv").read_text().splitlines()
    assert csv_rows[0] == "index,breed,correct,total,accuracy" and len(csv_rows) == 4
    check_plot(reports / "training_curves.png", (1500, 420))  # loss, accuracy, lr
    check_plot(reports / "confusion_matrix.png", (650, 500))  # 5 in square + 1.5 in for the colour bar
    image = sorted((learnable_tree / "test" / BREED_DIRS[2]).iterdir())[0]
    pred = run_module("entry_points.predict", "--model-dir", str(model), "--json", "--top-k", "2", str(image),
                      cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr
    payload = json.loads(pred.stdout)
    assert payload[0]["image"] == str(image)
    assert [set(p) for p in payload[0]["predictions"]] == [{"breed", "index", "probability"}] * 2
    assert payload[0]["predictions"][0]["breed"] in {"Affenpinscher", "Afghan hound", "Airedale terrier"}


@pytest.mark.slow
def test_demo_trains_exports_and_predicts_holdout(tmp_path):
    proc = run_module("entry_points.train", "--demo", "--epochs", "2", "--data-dir", str(tmp_path / "demo"),
                      "--model-dir", str(tmp_path / "m"), "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "held-out demo images, top-3 breeds:" in proc.stdout
    assert proc.stdout.count("Zebra_Terrier_000") == 1
    assert "test accuracy" in proc.stdout and str(tmp_path / "m") in proc.stdout
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert len(config["class_names"]) == 5 and config["preprocessing"]["image_size"] == 64


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_predict_cli_reports_a_bad_model_dir(tmp_path):
    image = tmp_path / "x.jpg"
    image.write_bytes(b"")
    proc = run_module("entry_points.predict", "--model-dir", str(tmp_path), str(image), cwd=tmp_path)
    assert proc.returncode == 2 and "model_config.json" in proc.stderr


def _make_zip(tmp_path: Path) -> Path:
    tree = write_tree(tmp_path / "src" / "dogImages", {"train": 2, "valid": 1, "test": 1})
    served = tmp_path / "served"
    served.mkdir()
    archive = served / "dogImages.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree.parent))
    return archive


def test_download_fetches_unpacks_and_then_skips(tmp_path, capsys, caplog):
    _make_zip(tmp_path)
    with _Server(tmp_path / "served") as url:
        root = download_dataset(f"{url}/dogImages.zip", tmp_path / "data")
        assert root == tmp_path / "data" / "dogImages"
        assert sorted(p.name for p in (root / "train").iterdir()) == BREED_DIRS
        assert not list((tmp_path / "data").glob(".download*"))
        assert "downloading dogImages.zip" in capsys.readouterr().err  # the progress bar
    # Second call: the server is gone, but the data is present, so nothing is fetched.
    with caplog.at_level("INFO", logger="dogbreed.data.sources"):
        assert download_dataset(f"{url}/dogImages.zip", tmp_path / "data") == root
    assert caplog.messages == [f"dataset already present in {root}: skipping download"]


def test_download_failure_is_clear_and_leaves_no_partial_file(tmp_path):
    with _Server(tmp_path) as url:
        with pytest.raises(DownloadError) as refused:
            download_dataset(f"{url}/missing.zip", tmp_path / "data")
    assert str(refused.value) == (f"could not download {url}/missing.zip (HTTP Error 404: File not found). Check the "
                                  "network, or download the zip yourself, unpack it and pass --data-dir")
    assert not list((tmp_path / "data").glob(".download*"))


def test_download_refuses_zip_slip(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "evil.zip", "w") as zf:
        zf.writestr("../../evil.txt", "x")
    with _Server(served) as url:
        with pytest.raises(DownloadError) as refused:
            download_dataset(f"{url}/evil.zip", tmp_path / "data")
    assert str(refused.value) == f"refusing to extract '../../evil.txt': it points outside {tmp_path / 'data'}"
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.slow
def test_train_cli_download_flag_against_local_server(tmp_path):
    _make_zip(tmp_path)
    with _Server(tmp_path / "served") as url:
        proc = run_module("entry_points.train", "--download", "--dataset-url", f"{url}/dogImages.zip",
                          "--data-dir", str(tmp_path / "data"), "--weights", "none", "--finetune", "full",
                          "--epochs", "1", "--image-size", "32", "--num-workers", "0", "--batch-size", "4",
                          "--model-dir", str(tmp_path / "m"), "--output-dir", str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "dogImages" / "train").is_dir()
    assert torch.load(tmp_path / "m" / "model.pth", weights_only=True)["fc.weight"].shape[1] == 2048
