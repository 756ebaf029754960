"""The Predictor's answer from logits, on hand-made logits whose probabilities and scores are exact: the abstention
threshold at its boundary, the temperature applied once to probabilities and to the score, the top-k cap."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dogbreed.core.abstention import AbstentionRule
from dogbreed.core.image_policy import ImagePolicy
from dogbreed.core.transforms import Preprocessing
from dogbreed.serving.artifact import ModelConfig
from dogbreed.serving.predictor import Predictor

NAMES = ["akita", "beagle", "corgi", "dingo"]


def predictor(temperature: float = 1.0, rule: AbstentionRule | None = None) -> Predictor:
    """A Predictor whose network is never run: ``answers`` and ``probabilities`` only read its config."""
    config = ModelConfig(class_names=list(NAMES), preprocessing=Preprocessing(image_size=32),
                         temperature=temperature, abstention=rule)
    return Predictor(nn.Identity(), config, torch.device("cpu"), policy=ImagePolicy())


def test_a_score_equal_to_the_threshold_is_confident_and_one_below_it_is_not():
    # max_probability, T = 1: [0, 0, -1000, -1000] -> 0.5 exactly (exp(-1000) underflows to 0), [0, 0, 0, 0] -> 0.25
    rule = AbstentionRule("max_probability", 0.5, 0.95)
    logits = torch.tensor([[0.0, 0.0, -1000.0, -1000.0], [0.0, 0.0, 0.0, 0.0], [0.0, -1000.0, -1000.0, -1000.0]])
    at, below, above = predictor(rule=rule).answers(logits, k=1)
    assert (at.confident, at.rejection) == (True, None)  # "below the threshold" is rejected, not "at it"
    assert (above.confident, above.rejection) == (True, None)
    assert below.confident is False and below.rejection is not None
    assert below.rejection.to_dict() == {
        "reason": ("no breed clears the confidence threshold: the image may not show a dog, or shows a breed or a "
                   "kind of photo the model was not trained on"),
        "score": 0.25, "threshold": 0.5, "score_type": "max_probability"}


def test_the_energy_score_is_taken_at_the_artifacts_temperature():
    # energy = T * logsumexp(logits / T). Logits [2, 2, 2, 2], T = 2: 2 * (1 + ln 4) = 4.7726; at T = 1 it would be
    # 2 + ln 4 = 3.3863. A threshold of 4 between the two: confident at T = 2, rejected were T ignored.
    rule = AbstentionRule("energy", 4.0, 0.95)
    [answer] = predictor(temperature=2.0, rule=rule).answers(torch.full((1, 4), 2.0), k=4)
    assert (answer.confident, answer.rejection) == (True, None)
    # the same logits with T = 1: rejected, with the score T * logsumexp written out
    [rejected] = predictor(temperature=1.0, rule=rule).answers(torch.full((1, 4), 2.0), k=4)
    assert rejected.confident is False and rejected.rejection is not None
    assert rejected.rejection.score == pytest.approx(2 + math.log(4), abs=1e-12)


def test_the_max_probability_score_is_taken_at_the_artifacts_temperature():
    # logits [ln 9, 0] over 2 live classes: T = 1 -> 0.9; T = 2 -> softmax([ln 3, 0]) = 0.75. Threshold 0.8.
    rule = AbstentionRule("max_probability", 0.8, 0.95)
    logits = torch.tensor([[math.log(9.0), 0.0, -1000.0, -1000.0]])
    [answer] = predictor(temperature=2.0, rule=rule).answers(logits, k=2)
    assert answer.confident is False and answer.rejection is not None
    assert answer.rejection.score == pytest.approx(0.75, abs=1e-6)  # ln 9 in float32
    assert [p.probability for p in answer.predictions] == pytest.approx([0.75, 0.25], abs=1e-6)


def test_probabilities_divide_the_logits_by_the_temperature_once():
    # logits [ln 16, 0], T = 2: softmax([ln 4, 0]) = [0.8, 0.2]; divided twice it would be softmax([ln 2, 0]) = 2/3
    logits = torch.tensor([[math.log(16.0), 0.0, -1000.0, -1000.0]])
    probabilities = predictor(temperature=2.0).probabilities(logits)
    assert probabilities.tolist()[0] == pytest.approx([0.8, 0.2, 0.0, 0.0], abs=1e-6)


def test_top_k_gives_every_class_when_asked_for_all_of_them_or_more():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    for k in (4, 5, 100):
        [answer] = predictor().answers(logits, k=k)
        assert [(p.breed, p.index) for p in answer.predictions] == [
            ("akita", 0), ("corgi", 2), ("beagle", 1), ("dingo", 3)]
        assert answer.confident is None  # no rule: nothing claimed
    [one] = predictor().answers(logits, k=1)
    assert [p.breed for p in one.predictions] == ["akita"]


def test_the_precision_the_artifact_records_is_the_one_loaded_unless_the_caller_names_one(tmp_path, monkeypatch):
    """Only the choice is under test: the config is written by hand and the loader returns a stand-in network."""
    import json

    from dogbreed.serving import precision
    from dogbreed.serving import predictor as predictor_module
    from dogbreed.serving.artifact import read_model_config

    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: frozenset({"amx_bf16"}))  # a CPU with bf16
    monkeypatch.setattr(predictor_module, "load_artifact",
                        lambda model_dir, map_location: (nn.Identity(), read_model_config(model_dir)))
    config = {"class_names": list(NAMES), "preprocessing": {"image_size": 32}}
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    assert Predictor.from_model_dir(tmp_path, device="cpu").precision == "fp32"  # nothing recorded: fp32
    config["precision"] = {"mode": "bf16", "agreement": 1.0, "max_abs_delta_p": 0.002, "images": 9}
    (tmp_path / "model_config.json").write_text(json.dumps(config))
    assert Predictor.from_model_dir(tmp_path, device="cpu").precision == "bf16"  # what package --precision chose
    assert Predictor.from_model_dir(tmp_path, device="cpu", precision="fp32").precision == "fp32"  # the caller's


def test_a_policy_refusal_at_decode_keeps_its_status_and_names_the_instance():
    """predict_fn decodes with the predictor's own policy: a refusal there keeps the policy's status (413 for
    pixels, not a blanket 400) and, in a batch, says which instance."""
    import io

    from PIL import Image
    from sagemaker_inference.errors import GenericInferenceToolkitError

    from dogbreed.serving import handlers
    from dogbreed.serving.requests import InferenceRequest

    def png(side: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), (90, 60, 30)).save(buffer, "PNG")
        return buffer.getvalue()

    config = ModelConfig(class_names=list(NAMES), preprocessing=Preprocessing(image_size=32))
    strict = Predictor(nn.Identity(), config, torch.device("cpu"), policy=ImagePolicy(max_pixels=100))
    with pytest.raises(GenericInferenceToolkitError) as refused:
        handlers.predict_fn(InferenceRequest([png(10), png(20)], batched=True), strict)
    assert (refused.value.status_code, refused.value.message) == (
        413, '"instances"[1]: image is 20x20 (0.0 megapixels), over the 0.0001 megapixel limit: resize it before '
             "sending")


def test_each_kind_of_answer_as_json_carries_only_its_own_fields():
    """Confident: no rejection and no "no rule" note; rejected: the rejection, no note; no rule: the note only."""
    from dogbreed.serving.answers import Answer, BreedPrediction, Rejection

    best = [BreedPrediction("beagle", 1, 0.5)]
    rejection = Rejection(0.5, 0.75, "max_probability")
    assert Answer(best, confident=True).to_dict() == {
        "confident": True, "predictions": [{"breed": "beagle", "index": 1, "probability": 0.5}]}
    assert Answer(best, confident=False, rejection=rejection).to_dict() == {
        "confident": False, "predictions": [{"breed": "beagle", "index": 1, "probability": 0.5}],
        "rejection": {"reason": ("no breed clears the confidence threshold: the image may not show a dog, or shows "
                                 "a breed or a kind of photo the model was not trained on"),
                      "score": 0.5, "threshold": 0.75, "score_type": "max_probability"}}
    assert Answer(best).to_dict() == {
        "confident": None, "abstention": ("no abstention rule is set for this model: every image gets its best "
                                          "guesses, including images that are not dogs"),
        "predictions": [{"breed": "beagle", "index": 1, "probability": 0.5}]}
    assert Answer(best, confident=False, rejection=rejection).to_text() == (
        "NOT CONFIDENT (max_probability 0.500 < threshold 0.750: no breed clears the confidence threshold); best "
        "guesses: beagle (1) 0.500")
