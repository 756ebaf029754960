"""The SageMaker handlers called directly: content types, batches, top-k, Accept, every error status."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import torch
from sagemaker_inference.errors import GenericInferenceToolkitError

from dogbreed.core.errors import ConfigError
from dogbreed.core.images import open_image
from dogbreed.serving import handlers as inference
from dogbreed.serving.predictor import Predictor
from dogbreed.serving.requests import RequestError
from tests.helpers.inference_support import (
    BAD_REQUESTS,
    ODD_IMAGES,
    b64,
    dog_image,
    dog_jpeg,
    encode,
    json_body,
    npy,
    truncated_jpeg,
)

EXPECTED_KEYS = {"breed", "index", "probability"}


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    """Request handling needs no trained model: the random-weights model dir loads in about a second."""
    from sagemaker_inference.transformer import Transformer

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])  # model_fn swaps it
        yield inference.model_fn(str(tiny_model_dir))


def run(predictor: Predictor, body, content_type: str, accept: str | None = "application/json"):
    result = inference.predict_fn(inference.input_fn(body, content_type), predictor)
    return inference.output_fn(result, accept)


def check_top_k(answer: dict, predictor: Predictor, k: int) -> None:
    assert set(answer) == {"confident", "abstention", "predictions"} and answer["confident"] is None  # no rule set
    rows = answer["predictions"]
    assert len(rows) == k
    assert all(set(row) == EXPECTED_KEYS for row in rows)
    assert [row["breed"] for row in rows] == [predictor.class_names[row["index"]] for row in rows]
    probabilities = [row["probability"] for row in rows]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6


def test_model_fn_loads_eval_mode_artifact(predictor: Predictor) -> None:
    assert not predictor.net.training
    assert predictor.class_names == ["Affenpinscher", "Afghan hound", "Airedale terrier"]
    assert predictor.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_model_fn_refuses_pickled_objects_in_weights(tmp_path, tiny_model_dir) -> None:
    (tmp_path / "model_config.json").write_text((tiny_model_dir / "model_config.json").read_text())
    torch.save({"payload": ConfigError("not a tensor")}, tmp_path / "model.pth")
    with pytest.raises(Exception) as refused:
        inference.model_fn(str(tmp_path))
    assert str(refused.value) == (
        f"{tmp_path / 'model.pth'} cannot be loaded as a state_dict (it holds pickled Python objects, starting with "
        "dogbreed.core.errors.ConfigError, not only tensors; dogbreed loads weights only and never runs code from a "
        "weights file): re-export the model (python -m entry_points.train --model-dir ...), or for weights from "
        "elsewhere make the model dir with python -m entry_points.import_model")


def test_model_fn_rejects_bad_limit_variable(tiny_model_dir, monkeypatch) -> None:
    monkeypatch.setenv("DOGBREED_TOP_K", "three")
    with pytest.raises(ConfigError) as refused:
        inference.model_fn(str(tiny_model_dir))
    assert str(refused.value) == "environment variable DOGBREED_TOP_K='three' must be a positive integer (default 5)"


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/x-image", "application/octet-stream",
                                          "image/JPEG; charset=binary"])
def test_jpeg_bytes_give_top5_json(predictor: Predictor, content_type: str) -> None:
    body, response_type = run(predictor, bytearray(dog_jpeg()), content_type)
    assert response_type == "application/json"
    check_top_k(json.loads(body), predictor, k=3)  # 3 classes: top-5 is clamped to 3


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_images_are_answered(predictor: Predictor, name: str) -> None:
    data, content_type = ODD_IMAGES[name]
    check_top_k(json.loads(run(predictor, data, content_type)[0]), predictor, k=3)


def test_json_single_image_with_top_k(predictor: Predictor) -> None:
    body, _ = run(predictor, json_body(image=b64(dog_jpeg()), top_k=2), "application/json")
    check_top_k(json.loads(body), predictor, k=2)


def test_json_data_uri_and_bytes_body_are_accepted(predictor: Predictor) -> None:
    payload = json_body(image="data:image/jpeg;base64," + b64(dog_jpeg())).encode()
    check_top_k(json.loads(run(predictor, payload, "application/json")[0]), predictor, k=3)


def test_json_instances_give_one_list_per_image(predictor: Predictor) -> None:
    images = [dog_jpeg(label, seed=label) for label in range(3)]
    body, _ = run(predictor, json_body(instances=[b64(i) for i in images], top_k=1), "application/json")
    answers = json.loads(body)
    assert len(answers) == 3 and all(len(answer["predictions"]) == 1 for answer in answers)
    expected = predictor.predict(images, k=1)
    assert [answer["predictions"][0]["index"] for answer in answers] == [preds[0].index for preds in expected]


def test_top_k_default_comes_from_environment(predictor: Predictor, monkeypatch) -> None:
    monkeypatch.setenv("DOGBREED_TOP_K", "2")
    check_top_k(json.loads(run(predictor, dog_jpeg(), "image/jpeg")[0]), predictor, k=2)


def test_npy_single_image_and_npy_response(predictor: Predictor) -> None:
    array = np.asarray(dog_image(1), dtype=np.uint8)
    body, response_type = run(predictor, npy(array), "application/x-npy", accept="application/x-npy")
    probabilities = np.load(io.BytesIO(body), allow_pickle=False)
    assert response_type == "application/x-npy" and probabilities.shape == (3,)
    expected = predictor.predict_proba(predictor.preprocess([dog_image(1)]))[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)


def test_npy_batch_gives_one_row_per_image(predictor: Predictor) -> None:
    batch = np.stack([np.asarray(dog_image(i).resize((40, 30)), dtype=np.uint8) for i in range(4)])
    body, _ = run(predictor, npy(batch), "application/x-npy", accept="application/x-npy")
    probabilities = np.load(io.BytesIO(body), allow_pickle=False)
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_handler_probabilities_equal_library_predictor(predictor: Predictor) -> None:
    data = dog_jpeg(2, seed=7)
    result = inference.predict_fn(inference.input_fn(data, "image/jpeg"), predictor)
    assert torch.equal(result.probabilities, predictor.predict_proba(predictor.preprocess([data])))


@pytest.mark.parametrize("accept, expected", [
    (None, "application/json"), ("*/*", "application/json"), ("application/json, text/csv", "application/json"),
    ("application/json; charset=utf-8", "application/json"), ("text/csv, application/x-npy;q=0.5", "application/x-npy"),
    ("application/x-npy;q=0.2, application/json;q=0.9", "application/json"), ("text/csv, */*", "application/json"),
])
def test_accept_variants(predictor: Predictor, accept: str | None, expected: str) -> None:
    assert run(predictor, dog_jpeg(), "image/jpeg", accept)[1] == expected


@pytest.mark.parametrize("accept", ["text/csv", "application/xml, text/html", "application/json;q=0"])
def test_unsupported_accept_is_406(predictor: Predictor, accept: str) -> None:
    with pytest.raises(GenericInferenceToolkitError) as caught:
        run(predictor, dog_jpeg(), "image/jpeg", accept)
    assert caught.value.status_code == 406
    assert caught.value.message == f"cannot answer in '{accept}': set Accept to application/json or application/x-npy"


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_bad_requests_get_4xx_with_what_to_send(predictor: Predictor, name: str) -> None:
    body, content_type, status, message = BAD_REQUESTS[name]
    with pytest.raises(GenericInferenceToolkitError) as caught:  # truncation is found by predict_fn's strict decode
        run(predictor, body, content_type)
    assert (caught.value.status_code, caught.value.message) == (status, message)


def test_truncated_jpeg_still_loads_for_training_but_not_for_serving(predictor: Predictor) -> None:
    assert open_image(truncated_jpeg()).size == (256, 256)
    with pytest.raises(GenericInferenceToolkitError) as refused:
        run(predictor, truncated_jpeg(), "image/jpeg")
    assert (refused.value.status_code, refused.value.message) == (
        400, "image is truncated (the file ends inside its image data): use the complete file")


def test_pixel_limit_is_configurable(monkeypatch) -> None:
    monkeypatch.setenv("DOGBREED_MAX_PIXELS", "100")
    with pytest.raises(GenericInferenceToolkitError) as caught:
        inference.input_fn(encode(dog_image(0).resize((20, 20)), "PNG"), "image/png")
    assert caught.value.status_code == 413 and caught.value.message == (
        "image is 20x20 (0.0 megapixels), over the 0.0001 megapixel limit: resize it before sending")


def test_without_the_toolkit_errors_are_our_own(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "sagemaker_inference.errors", None)
    with pytest.raises(RequestError) as caught:
        inference.input_fn(b"", "image/jpeg")
    assert caught.value.status_code == 400
