"""Temperature scaling: the fit, ECE/NLL, the artifact round trip and what serving does with the temperature."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dogbreed.core.calibration import (
    calibrated_probabilities,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from dogbreed.core.errors import ArtifactError
from dogbreed.core.network import build_resnet50
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving import handlers
from dogbreed.serving.artifact import ModelConfig, read_model_config, save_artifact
from dogbreed.serving.predictor import Predictor
from tests.helpers.builders import fast_config, save_image, write_tree


def test_ece_of_a_hand_computed_example():
    # Confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.4 (right).
    probabilities = torch.tensor([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.4, 0.35, 0.25]],
                                 dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 0])
    # Bins (15 equal, right-closed): 0.9 -> bin 13 (0.8667, 0.9333]: acc 0.5, conf 0.9 -> |gap| 0.4, weight 2/4;
    # 0.6 -> bin 8 (0.5333, 0.6]: acc 1, conf 0.6 -> 0.4, weight 1/4; 0.4 -> bin 5 (0.3333, 0.4]: 1 vs 0.4 -> 0.6.
    expected = 0.5 * 0.4 + 0.25 * 0.4 + 0.25 * 0.6
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected, abs=1e-12)
    counts = [row["count"] for row in reliability_bins(probabilities, labels)]
    assert counts[13] == 2 and counts[8] == 1 and counts[5] == 1 and sum(counts) == 4


def test_nll_matches_the_definition():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    expected = -(math.log(math.exp(1.0) / (math.exp(1.0) + 1)) + math.log(1 / (1 + math.exp(0.5)))) / 2
    assert negative_log_likelihood(logits, labels, temperature=2.0) == pytest.approx(expected, abs=1e-12)


def test_fit_temperature_recovers_the_temperature_of_overconfident_logits():
    torch.manual_seed(0)
    calibrated = torch.randn(4000, 10) * 1.5
    labels = torch.distributions.Categorical(logits=calibrated).sample()  # labels drawn from softmax(calibrated)
    fitted = fit_temperature(calibrated * 3.0, labels)  # the model is 3x overconfident
    assert fitted == pytest.approx(3.0, rel=0.05)
    before = expected_calibration_error(calibrated_probabilities(calibrated * 3.0), labels)
    after = expected_calibration_error(calibrated_probabilities(calibrated * 3.0, fitted), labels)
    assert after < before / 3


def test_fit_temperature_rejects_mismatched_inputs():
    with pytest.raises(ValueError) as refused:
        fit_temperature(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    assert str(refused.value) == "need (N, C) logits and N labels, got (3, 2) and (4,)"


def _artifact(tmp_path, **fields) -> tuple:
    torch.manual_seed(0)
    net = build_resnet50(3).eval()
    config = ModelConfig(class_names=["a", "b", "c"], preprocessing=Preprocessing(image_size=32), **fields)
    return save_artifact(tmp_path / "model", net, config), net


def test_temperature_survives_the_round_trip_and_scales_served_probabilities_exactly(tmp_path):
    model_dir, net = _artifact(tmp_path, temperature=2.5)
    assert json.loads((model_dir / "model_config.json").read_text())["temperature"] == 2.5
    predictor = Predictor.from_model_dir(model_dir, device="cpu")
    assert predictor.temperature == 2.5
    images = [save_image(tmp_path / f"{i}.jpg", size=(50, 40), color=(40 * i, 90, 200 - 30 * i)) for i in range(3)]
    batch = predictor.preprocess(images)
    with torch.no_grad():
        expected = torch.softmax(net(batch) / 2.5, dim=1)
    assert torch.allclose(predictor.predict_proba(batch), expected, atol=1e-6)
    result = handlers.predict_fn(handlers.input_fn(images[0].read_bytes(), "image/jpeg"), predictor)
    assert torch.allclose(result.probabilities[0], expected[0], atol=1e-6)
    unscaled = torch.softmax(net(batch), dim=1)
    assert not torch.allclose(unscaled, expected, atol=1e-3)  # T really changes what is served


def test_an_artifact_without_the_new_fields_loads_with_temperature_1_and_no_abstention(tmp_path):
    model_dir, _ = _artifact(tmp_path)
    path = model_dir / "model_config.json"
    payload = json.loads(path.read_text())
    for key in ("temperature", "abstention", "tta"):
        payload.pop(key)
    path.write_text(json.dumps(payload))
    config = read_model_config(model_dir)
    assert (config.temperature, config.abstention, config.tta) == (1.0, None, "none")


@pytest.mark.parametrize("field, value, problem", [
    ("temperature", 0, "temperature must be a finite number > 0, got 0"),
    ("temperature", "2", "temperature must be a finite number > 0, got '2'"),
    ("temperature", float("inf"), "temperature must be a finite number > 0, got inf"),
    ("abstention", {"score": "softmax", "threshold": 0.5},
     "abstention score must be one of max_probability, energy, got 'softmax'"),
    ("abstention", {"score": "energy"},
     "abstention must be an object with \"score\" and \"threshold\", got {'score': 'energy'}"),
    ("tta", "flips", "tta must be one of none, flip, tencrop, got 'flips'"),
])
def test_invalid_serving_fields_are_rejected_naming_the_field(tmp_path, field, value, problem):
    model_dir, _ = _artifact(tmp_path)
    path = model_dir / "model_config.json"
    payload = json.loads(path.read_text())
    payload[field] = value
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError) as refused:
        read_model_config(model_dir)
    assert str(refused.value) == (f"{path}: {problem}: re-export the model (python -m entry_points.train --model-dir "
                                  "...), or for weights from elsewhere make the model dir with python -m "
                                  "entry_points.import_model")


@pytest.mark.slow
def test_training_an_overconfident_model_then_scaling_lowers_test_ece(tmp_path):
    """A head trained far too long on a few features of a random backbone memorises its training images and is
    overconfident on new ones; the fitted temperature (> 1) must lower the test ECE."""
    from dogbreed.training.run import train

    data = write_tree(tmp_path / "data", {"train": 6, "valid": 24, "test": 24}, seed=3)
    config = fast_config(tmp_path, data, finetune="head", cached_views=1, epochs=60, lr=0.05, weight_decay=0.0,
                         batch_size=6, image_size=32, abstention_score="none", logger="none")
    train(config)
    report = json.loads((tmp_path / "reports" / "metrics.json").read_text())["calibration"]
    assert report["temperature"] > 1
    assert report["test"]["ece_after"] < report["test"]["ece_before"]
    assert report["test"]["nll_after"] < report["test"]["nll_before"]
    assert read_model_config(tmp_path / "model").temperature == pytest.approx(report["temperature"])
    assert (tmp_path / "reports" / "calibration.png").stat().st_size > 10_000
