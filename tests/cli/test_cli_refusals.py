"""Command refusals no other test quoted, each as the user sees it: one line on stderr, exit status 2, nothing
written (issue 24: every refusal read back)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from dogbreed.cli import debug_report, import_model, package, predict, serve


def _error(capsys, main, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("\n") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def test_a_debug_report_of_a_folder_without_a_trial(tmp_path, capsys):
    (tmp_path / "debug").mkdir()
    assert _error(capsys, debug_report.main, ["--trial", tmp_path / "debug", "--output-dir", tmp_path / "out"]) == (
        f"--trial {tmp_path / 'debug'}: no smdebug trial there (expected an index/ folder); pass the --debug-dir of "
        "a profiled run or the job's S3 debug-output path")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, values, message", [
    ("--mean", ["inf", "0.4", "0.4"], "--mean must be three finite numbers, got inf 0.4 0.4"),
    ("--mean", ["0.5", "-inf", "0.4"], "--mean must be three finite numbers, got 0.5 -inf 0.4"),
    ("--std", ["0.2", "0", "0.2"], "--std must be three positive finite numbers, got 0.2 0 0.2"),
])
def test_import_statistics_that_are_not_finite_are_refused(tmp_path, capsys, option, values, message):
    argv = ["--state-dict", tmp_path / "w.pt", "--classes", tmp_path / "c.txt", "--model-dir", tmp_path / "m",
            option, *values]
    assert _error(capsys, import_model.main, argv) == message
    assert not (tmp_path / "m").exists()


def test_import_statistics_at_their_edges_pass_the_check(tmp_path, capsys):
    """-1e308 is finite and a tiny std positive: the command goes on to the weights (there are none)."""
    argv = ["--state-dict", tmp_path / "w.pt", "--classes", tmp_path / "c.txt", "--model-dir", tmp_path / "m",
            "--mean", "-1e308", "0", "1e308", "--std", "1e-300", "1", "1"]
    assert _error(capsys, import_model.main, argv) == f"--classes {tmp_path / 'c.txt'}: no such file"


def _dataset(root: Path, classes: int, valid: bool = True) -> Path:
    for split in ("train", "valid") if valid else ("train",):
        for index in range(classes):
            folder = root / split / f"{index:03d}.Breed_{index}"
            folder.mkdir(parents=True)
            Image.new("RGB", (40, 40), (index * 40, 0, 0)).save(folder / "a.jpg")
    return root


def test_package_checks_the_dataset_it_measures_precision_on(tiny_model_dir, tmp_path, capsys):
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    argv = ["--model-dir", model, "--output", tmp_path / "m.tar.gz", "--precision", "bf16", "--data-dir"]
    no_valid = _dataset(tmp_path / "novalid", 3, valid=False)
    assert _error(capsys, package.main, [*argv, no_valid]) == (
        f"--data-dir {no_valid} has no validation split (valid/): the reduced precision is checked on held-out "
        "images, so give the dataset with the valid/ folder the model was validated on")
    other = _dataset(tmp_path / "other", 2)
    assert _error(capsys, package.main, [*argv, other]) == (
        f"--data-dir {other}: {other / 'valid'} has 2 class folders but the model predicts 3 breeds: pass the "
        "dataset the model was trained on")
    assert not (tmp_path / "m.tar.gz").exists()
    assert sorted(p.name for p in model.iterdir()) == sorted(p.name for p in tiny_model_dir.iterdir())


def test_package_output_that_is_a_directory(tiny_model_dir, tmp_path, capsys):
    assert _error(capsys, package.main, ["--model-dir", tiny_model_dir, "--output", tmp_path]) == (
        f"--output {tmp_path} is a directory: pass the archive's file name, e.g. {tmp_path}/model.tar.gz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data, reason", [
    (b"BM" + b"\x00" * 60, "unreadable image header (Unsupported BMP header type (0))"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 10, "unreadable image header (could not create decoder object)"),
    (b"", "empty file"),
])
def test_an_image_whose_header_pil_cannot_read_is_named(tmp_path, data, reason):
    path = tmp_path / "x.img"
    path.write_bytes(data)
    with pytest.raises(ValueError) as refused:
        predict.read_image(str(path))
    assert str(refused.value) == reason


def test_explain_refuses_an_int8_model(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from dogbreed.serving.predictor import Predictor

    monkeypatch.setattr(Predictor, "from_model_dir", classmethod(lambda cls, *a, **k: SimpleNamespace(
        precision="int8")))
    image = tmp_path / "dog.png"
    Image.new("RGB", (40, 40)).save(image)
    assert _error(capsys, predict.main, ["--model-dir", tiny_model_dir, "--explain", tmp_path / "cams", image]) == (
        "--explain needs the gradients of a float model and this one serves int8: add --precision fp32")
    assert not (tmp_path / "cams").exists()


def test_own_code_without_an_archive_is_refused(tiny_model_dir, capsys):
    assert _error(capsys, serve.main, ["--model-dir", tiny_model_dir, "--own-code"]) == (
        "--own-code applies to --model-data (an archive); a --model-dir is always served with this dogbreed's "
        "handlers")



@pytest.mark.parametrize("options, message", [
    (["--image-size", "64", "--resize-size", "63"],
     "--resize-size must be at least the crop size (64) and at most 4096, got 63"),
    (["--resize-size", "4097"], "--resize-size must be at least the crop size (224) and at most 4096, got 4097"),
    (["--resize-size", "223"], "--resize-size must be at least the crop size (224) and at most 4096, got 223"),
    (["--image-size", "31"], "--image-size must be between 32 and 2048, got 31"),
    (["--image-size", "2049"], "--image-size must be between 32 and 2048, got 2049"),
])
def test_import_sizes_outside_their_range_are_refused_before_any_file_is_read(tmp_path, capsys, options, message):
    argv = ["--state-dict", tmp_path / "w.pt", "--classes", tmp_path / "c.txt", "--model-dir", tmp_path / "m", *options]
    assert _error(capsys, import_model.main, argv) == message


@pytest.mark.parametrize("options", [["--image-size", "64", "--resize-size", "64"], ["--resize-size", "4096"],
                                     ["--image-size", "32"], ["--image-size", "2048", "--resize-size", "4096"]])
def test_import_sizes_at_their_edges_pass_the_check(tmp_path, capsys, options):
    argv = ["--state-dict", tmp_path / "w.pt", "--classes", tmp_path / "c.txt", "--model-dir", tmp_path / "m", *options]
    assert _error(capsys, import_model.main, argv) == f"--classes {tmp_path / 'c.txt'}: no such file"
