"""Mistakes found before the work, not after it: options, output dirs, data; one line, exit 2, nothing exported."""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dogbreed.config.parser import parse_config
from dogbreed.core.errors import ConfigError, DataError, TrainingDiverged
from dogbreed.core.network import build_resnet50
from dogbreed.data.datamodule import DogBreedDataModule
from dogbreed.data.splits import SplitDirs
from dogbreed.training.run import train
from entry_points import hpo as hpo_cli
from entry_points import predict as predict_cli
from entry_points import prepare as prepare_cli
from entry_points import serve as serve_cli
from entry_points import train as train_cli
from tests.helpers.builders import BREED_DIRS, fast_config, write_tree
from tests.helpers.inference_support import huge_png


@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "--lr must be a positive finite number (or auto: the learning-rate finder), got inf"),
    (["--lr", "1e309"], "--lr must be a positive finite number (or auto: the learning-rate finder), got inf"),
    (["--lr", "nan"], "--lr must be a positive finite number (or auto: the learning-rate finder), got nan"),
    (["--backbone-lr-scale", "nan"], "--backbone-lr-scale must be a finite number >= 0, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, got inf"),
    (["--label-smoothing", "nan"], "--label-smoothing must be in [0, 1), got nan"),
    (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["--seed", "4294967296"], "--seed must be between 0 and 4294967295, got 4294967296"),
    (["--image-size", "100000"], "--image-size must be between 32 and 2048, got 100000"),
    (["--num-workers", "-2"], "--num-workers must be >= 0, or -1 to pick from the CPU count, got -2"),
    (["--finetune", "full", "--batch-size", "1"],
     "--batch-size 1 with --finetune full: BatchNorm needs at least 2 images per batch; use --batch-size 2 or more"),
    (["--accelerator", "tpu"], "argument --accelerator: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'gpu', "
                               "'cuda', 'mps') (see python -m entry_points.train --help)"),
])
def test_bad_numeric_and_choice_options_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(["--data-dir", "x", *argv])
    assert str(caught.value) == message


def _train_argv(tree: Path, out: Path, *extra: str) -> list[str]:
    return ["--data-dir", str(tree), "--model-dir", str(out / "model"), "--output-dir", str(out / "reports"),
            "--weights", "none", "--finetune", "full", "--epochs", "1", "--image-size", "32", "--batch-size", "8",
            "--num-workers", "0", "--accelerator", "cpu", *extra]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


@pytest.mark.parametrize("option", ["--model-dir", "--output-dir", "--checkpoint-dir", "--cache-dir"])
def test_output_dir_that_is_a_file_fails_before_any_data_is_read(tmp_path: Path, option: str, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a dir")
    argv = _train_argv(tmp_path / "no-such-data", tmp_path, "--weights", "imagenet", "--finetune", "head",
                       "--cached-views", "1", option, str(blocker / "sub"))
    assert train_cli.main(argv) == 2
    line = _one_error_line(capsys)
    # The data dir does not exist either: the output check came first.
    assert line == f"error: {option} {blocker / 'sub'} cannot be created: {blocker} is a file, not a directory"


def test_unwritable_output_dir_is_named(tmp_path: Path, tiny_tree: Path, capsys) -> None:
    unwritable = Path("/proc/1")  # exists, and not even root can create files in it
    assert train_cli.main(_train_argv(tiny_tree, tmp_path, "--output-dir", str(unwritable))) == 2
    # The OS's reason in the parentheses varies (permission, read-only, missing): the rest is exact.
    assert re.fullmatch(rf"error: --output-dir {unwritable} cannot be written \({unwritable}: [^()]+\): pass a "
                        "directory you can write to", _one_error_line(capsys))
    assert not (tmp_path / "model").exists()  # nothing created by the check


def test_accelerator_gpu_without_cuda_is_one_line(tmp_path: Path, tiny_tree: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_cli.main(_train_argv(tiny_tree, tmp_path, "--accelerator", "gpu")) == 2
    assert _one_error_line(capsys) == ("error: --accelerator gpu: torch sees no CUDA GPU on this machine "
                                       f"(torch {torch.__version__}): use --accelerator cpu or auto")


def test_non_utf8_class_folder_is_refused_at_the_data_check(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "data", {"train": 2, "valid": 1})
    for split in ("train", "valid"):
        bad = os.path.join(os.fsencode(tree / split), b"004.Bad\xffname")
        os.mkdir(bad)
        Image.new("RGB", (20, 20)).save(os.fsdecode(os.path.join(bad, b"x.jpg")))
    with pytest.raises(DataError) as caught:
        train(fast_config(tmp_path, tree))
    assert str(caught.value) == (f"class folder '{tree / 'train'}/004.Bad\\udcffname' has a name that is not valid "
                                 "UTF-8: rename it (in every split) with UTF-8 characters")
    assert not (tmp_path / "model").exists()


def test_one_class_dataset_is_refused(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "data", {"train": 2, "valid": 1}, breed_dirs=BREED_DIRS[:1])
    with pytest.raises(DataError) as caught:
        train(fast_config(tmp_path, tree))
    assert str(caught.value) == (f"split {tree / 'train'} has one class folder (001.Affenpinscher): a classifier "
                                 "needs at least 2 classes, one folder per breed")


def _break_image_data(tree: Path) -> Path:
    """A deflate TIFF whose header reads fine (the data check passes) but whose compressed data is garbage: even
    training's tolerant decoding (LOAD_TRUNCATED_IMAGES) fails on it."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buffer, "TIFF", compression="tiff_deflate")
    data = buffer.getvalue()
    path = tree / "train" / BREED_DIRS[1] / "broken.tiff"
    path.write_bytes(data[:200] + bytes(range(256)) * 4 + data[1224:])
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_undecodable_image_is_one_line_naming_file_and_flag(tmp_path: Path, tiny_tree: Path, workers: int,
                                                             capsys) -> None:
    broken = _break_image_data(tiny_tree)
    # One batch holding every training image, so the broken one is decoded in epoch 1.
    argv = _train_argv(tiny_tree, tmp_path, "--num-workers", str(workers), "--batch-size", "16")
    assert train_cli.main(argv) == 2
    line = _one_error_line(capsys)
    assert line == (f"error: {broken} passed the header check but cannot be decoded (cannot decode image {broken}: "
                    "decoder error -2. Use a valid JPEG, PNG or WebP file): fix or delete it, or pass "
                    "--skip-bad-images to train without images that fail to decode")
    assert line.endswith("or pass --skip-bad-images to train without images that fail to decode")
    assert not (tmp_path / "model" / "model.pth").exists()


@pytest.mark.slow  # a training run or subprocess: make test, not make test-quick
def test_skip_bad_images_replaces_undecodable_images_and_counts_them(tmp_path: Path, tiny_tree: Path,
                                                                     caplog) -> None:
    broken = _break_image_data(tiny_tree)
    datamodule = DogBreedDataModule(SplitDirs.from_data_dir(tiny_tree), preprocessing=fast_preprocessing(),
                                    batch_size=4, skip_bad_images=True)
    datamodule.setup("fit")
    dataset = datamodule.datasets["train"]
    index = [path for path, _ in dataset.samples].index(broken)
    with caplog.at_level("WARNING"):
        image, label = dataset[index]
    assert label == 1 and image.shape == (3, 32, 32)
    assert dataset.skipped is not None and dataset.skipped.value == 1
    assert caplog.messages == [f"skipping {broken} (--skip-bad-images, 1 decode failure(s) so far): cannot decode "
                               f"image {broken}: decoder error -2. Use a valid JPEG, PNG or WebP file"]
    result = train(fast_config(tmp_path, tiny_tree, skip_bad_images=True))
    assert (tmp_path / "model" / "model.pth").is_file() and len(result.history) == 1


def fast_preprocessing():
    from dogbreed.core.transforms import Preprocessing

    return Preprocessing(image_size=32)


@pytest.mark.slow  # a training run (about 7 s): make test, not make test-quick
def test_non_finite_weights_stop_the_run_without_export(tmp_path: Path, tiny_tree: Path) -> None:
    weights = tmp_path / "inf_backbone.pth"
    state = build_resnet50(1000).state_dict()
    state["conv1.weight"] = torch.full_like(state["conv1.weight"], float("inf"))
    torch.save(state, weights)
    config = fast_config(tmp_path, tiny_tree, weights=str(weights), epochs=2)
    with pytest.raises(TrainingDiverged) as caught:
        train(config)
    assert re.search(r"the training loss is nan at batch 1 in epoch 1: training diverged and nothing was exported. "
                     r"Lower --lr \(now 0.002\)", str(caught.value)), str(caught.value)
    assert not (tmp_path / "model" / "model.pth").exists()


def test_predict_device_cuda_without_a_gpu_is_one_line(tiny_model_dir: Path, tmp_path: Path, monkeypatch,
                                                       capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image = tmp_path / "dog.png"
    Image.new("RGB", (40, 30)).save(image)
    assert predict_cli.main(["--model-dir", str(tiny_model_dir), "--device", "cuda", str(image)]) == 2
    assert _one_error_line(capsys) == "error: device 'cuda': this machine has no CUDA GPU visible to torch: use cpu"


def test_predict_decompression_bomb_is_one_line(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(huge_png(20000))  # 400 megapixels in ~60 KB: over PIL's bomb limit
    good = tmp_path / "dog.png"
    Image.new("RGB", (40, 30)).save(good)
    # A per-file error like any broken photo: the other images are still answered, the exit status says 1 failed.
    assert predict_cli.main(["--model-dir", str(tiny_model_dir), "--jsonl", str(bomb), str(good)]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["image"] == str(bomb) and records[0]["error"] == (
        "too many pixels to decode safely (400 megapixels): resize it")
    assert records[0]["error"].endswith("): resize it") and "Traceback" not in err
    assert records[1]["image"] == str(good) and len(records[1]["predictions"]) == 3


@pytest.mark.parametrize("argv, message", [
    (["--top-k", "0"], "error: --top-k must be at least 1, got 0"),
    (["--batch-size", "-3"], "error: --batch-size must be at least 1, got -3"),
    (["--explain-top-k", "0"], "error: --explain-top-k must be at least 1, got 0"),
    (["--top-k", "1001"], "error: --top-k must be at most 1000 (breeds listed per image), got 1001"),
    (["--batch-size", "4097"], "error: --batch-size must be at most 4096 (images decoded and held in memory at "
                               "once), got 4097"),
    (["--explain-top-k", "21"], "error: --explain-top-k must be at most 20 (panels per overlay, each at the "
                                "photo's size), got 21"),
])
def test_predict_bad_counts_name_the_value(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert predict_cli.main(["--model-dir", str(tmp_path / "none"), *argv, str(tmp_path / "dog.jpg")]) == 2
    assert _one_error_line(capsys) == message


@pytest.mark.parametrize("argv, message", [
    (["--workers", "257"], "error: --workers must be between 1 and 256 processes, or -1 for one per CPU (each is a "
                           "process decoding full-size images), got 257"),
    (["--workers", "0"], "error: --workers must be between 1 and 256 processes, or -1 for one per CPU (each is a "
                         "process decoding full-size images), got 0"),
    (["--workers", "-2"], "error: --workers must be between 1 and 256 processes, or -1 for one per CPU (each is a "
                          "process decoding full-size images), got -2"),
    (["--image-size", "31"], "error: --image-size must be between 32 and 2048 (the training range), got 31"),
    (["--image-size", "2049"], "error: --image-size must be between 32 and 2048 (the training range), got 2049"),
    (["--short-side", "8193"], "error: --short-side must be at most 8192 pixels (prepared images are reduced, never "
                               "enlarged), got 8193"),
    (["--short-side", "7"], "error: --short-side must be at least 8 pixels (default: 258), got 7"),
    (["--quality", "101"], "error: --quality must be between 1 and 100 (default: 95), got 101"),
    (["--quality", "0"], "error: --quality must be between 1 and 100 (default: 95), got 0"),
])
def test_prepare_bad_numbers_name_the_value(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert prepare_cli.main(["--data-dir", str(tmp_path / "none"), "--output", str(tmp_path / "out"), *argv]) == 2
    assert _one_error_line(capsys) == message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--workers", "1"], ["--workers", "256"], ["--workers", "-1"],
                                  ["--image-size", "32"], ["--image-size", "2048"], ["--quality", "1"],
                                  ["--quality", "100"], ["--short-side", "8"], ["--short-side", "8192"]])
def test_prepare_numbers_at_the_edge_of_their_range_pass(tmp_path: Path, capsys, argv: list[str]) -> None:
    """The last accepted values: the command goes on to the data and stops there (no such folder)."""
    assert prepare_cli.main(["--data-dir", str(tmp_path / "none"), "--output", str(tmp_path / "out"), *argv]) == 2
    assert _one_error_line(capsys) == (f"error: data dir {tmp_path / 'none'} does not exist: pass --data-dir pointing "
                                       "at a folder with train/ valid/ test/ subfolders")


def test_prepare_caps_its_workers_at_twice_the_cpus_and_says_so(tmp_path, capsys, caplog, monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    with caplog.at_level("INFO", logger="dogbreed"):
        assert prepare_cli.main(["--data-dir", str(tmp_path / "none"), "--output", str(tmp_path / "out"),
                                 "--workers", "8"]) == 2
    assert [r.getMessage() for r in caplog.records if r.name == "dogbreed.cli.prepare"] == [
        "--workers 8 capped at 2 (2 x the 1 CPU(s)): decoding is CPU-bound"]
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level("INFO", logger="dogbreed"):
        prepare_cli.main(["--data-dir", str(tmp_path / "none"), "--output", str(tmp_path / "out"), "--workers", "2"])
    assert [r.getMessage() for r in caplog.records if r.name == "dogbreed.cli.prepare"] == []  # 2 x 1: not capped


def test_hpo_zero_trials_is_one_line(tiny_tree: Path, capsys) -> None:
    assert hpo_cli.main(["--local", "--trials", "0", "--data-dir", str(tiny_tree)]) == 2
    assert _one_error_line(capsys) == ("error: --trials must be between 1 and 1000 (each trial is a whole training "
                                       "run), got 0")


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "error: --workers must be between 1 and 64 (each worker process holds its own copy of the "
                         "model), got 0"),
    (["--port", "65534"], "error: --port must be between 1 and 65531 (the endpoint uses --port..--port+4; e.g. "
                          "8080), got 65534"),
    (["--response-timeout", "0"], "error: --response-timeout must be between 1 and 86400 seconds (default: 60), "
                                  "got 0"),
])
def test_serve_bad_numbers_are_one_line_and_leave_no_temp_dir(tiny_model_dir: Path, tmp_path: Path, monkeypatch,
                                                               capsys, argv: list[str], message: str) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert serve_cli.main(["--model-dir", str(tiny_model_dir), *argv]) == 2
    assert _one_error_line(capsys) == message
    assert list(tmp_path.iterdir()) == []
