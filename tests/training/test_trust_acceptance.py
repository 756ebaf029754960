"""Issue 21's acceptance on a model at chance: 3 breeds x 8 images per split, 1 epoch from scratch at 32 px.
Neither the temperature nor an abstention rule is applied (each says why), the artifact carries neither, the run
says the model is no better than chance, ``predict`` and ``serve`` warn once when they load it, and every headline
figure has an interval that brackets it."""

from __future__ import annotations

import json
import logging

import pytest

from dogbreed.cli.predict import predict_command
from dogbreed.cli.serve import _warn_if_at_chance
from dogbreed.serving.artifact import quality_warning, read_model_config
from tests.helpers.builders import fast_config, write_tree

pytestmark = pytest.mark.slow  # a training run


@pytest.fixture(scope="module")
def at_chance_run(tmp_path_factory):
    from dogbreed.training.run import train

    root = tmp_path_factory.mktemp("guesser")  # no "chance" in the paths the summary prints
    tree = write_tree(root / "data", {"train": 8, "valid": 8, "test": 8})
    config = fast_config(root, tree, epochs=1, image_size=32, weights="none", finetune="full")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("dogbreed").addHandler(handler)
    try:
        result = train(config)
    finally:
        logging.getLogger("dogbreed").removeHandler(handler)
    metrics = json.loads((config.outputs.output_dir / "metrics.json").read_text())
    return config, result, metrics, records


def test_calibration_and_abstention_are_off_with_reasons_and_absent_from_the_artifact(at_chance_run):
    config, _, metrics, _ = at_chance_run
    calibration, abstention = metrics["calibration"], metrics["abstention"]
    assert calibration["applied"] is False and calibration["temperature"] == 1.0
    assert calibration["reason"].startswith("the model is no better than chance on validation")
    assert abstention["applied"] is False and "threshold" not in abstention
    assert "does not separate" in abstention["reason"] or "needed" in abstention["reason"]
    saved = json.loads((config.outputs.model_dir / "model_config.json").read_text())
    assert saved["temperature"] == 1.0 and saved["abstention"] is None
    assert read_model_config(config.outputs.model_dir).abstention is None


def test_the_run_says_the_model_is_no_better_than_chance(at_chance_run):
    _, result, metrics, records = at_chance_run
    quality = metrics["quality"]
    assert quality["better_than_chance"] is False
    assert quality["test"]["images"] == 24 and quality["test"]["chance"] == pytest.approx(1 / 3)
    assert quality["test"]["p_value"] >= 0.05
    chance_lines = [line for line in result.summary if "chance" in line]
    assert len(chance_lines) == 1 and "NOT better than chance" in chance_lines[0]
    assert any("NOT better than chance" in r.getMessage() and r.levelno == logging.WARNING for r in records)


def test_every_headline_figure_has_an_interval_that_brackets_it(at_chance_run):
    _, result, metrics, _ = at_chance_run
    test = metrics["test"]
    low, high = test["acc_ci95"]
    assert low <= test["acc"] <= high and 0 <= low < high <= 1
    assert test["f1_macro_ci95"][0] <= test["f1_macro"] <= test["f1_macro_ci95"][1]
    ece = metrics["calibration"]["test"]
    assert ece["ece_after_ci95"][0] <= ece["ece_after"] <= ece["ece_after_ci95"][1]
    figures = next(line for line in result.summary if "test_acc" in line)
    assert f"test_acc {test['acc']:.3f} [{low:.2f}, {high:.2f}]" in figures


def test_predict_and_serve_warn_once_when_they_load_it(at_chance_run, tmp_path, capsys):
    config, _, metrics, _ = at_chance_run
    model_dir = config.outputs.model_dir
    image = next(p for p in (config.data.data_dir / "test").rglob("*.jpg"))
    # The warning quotes the recorded test figures: correct answers of 24 test images (3 classes x 8; which count
    # a 1-epoch guesser reaches depends on the CPU's floating point), chance 1/3.
    test = metrics["quality"]["test"]
    assert test["images"] == 24 and test["correct"] / 24 < 0.5
    expected = ("warning: this model was no better than chance when trained (test accuracy "
                f"{test['correct'] / 24:.3f}, chance 0.333): its answers are guesses; retrain it (more data, more "
                "epochs, pretrained weights) before relying on them")
    capsys.readouterr()
    records = json.loads(predict_command(["--model-dir", str(model_dir), "--json", str(image)]).summary)
    assert capsys.readouterr().err == f"{expected}\n"  # once
    assert records[0]["confident"] is None and records[0]["abstention"] == (
        "no abstention rule is set for this model: every image gets its best guesses, including images that are not "
        "dogs")
    _warn_if_at_chance(model_dir)
    assert capsys.readouterr().err == f"{expected}\n"
    assert quality_warning(read_model_config(model_dir)) == expected
