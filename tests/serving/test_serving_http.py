"""The local endpoint over HTTP with a tiny model: what the port exposes, bodies TorchServe or the toolkit would
choke on, strict decoding. One server for the module (real TorchServe + SageMaker toolkit)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogbreed.serving.local_endpoint import LocalEndpoint
from tests.helpers.inference_support import encode
from tests.serving.test_inference_endpoint import free_base_port, post


@pytest.fixture(scope="module")
def endpoint(tiny_model_dir: Path, tmp_path_factory):
    server = LocalEndpoint(tmp_path_factory.mktemp("serve"), model_dir=tiny_model_dir, port=free_base_port(18880))
    server.start(timeout=600)
    yield server
    server.stop()


def noise_png() -> bytes:
    rng = np.random.default_rng(9)
    return encode(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_management_api_is_not_on_the_inference_port(endpoint: LocalEndpoint) -> None:
    assert _status(urllib.request.Request(f"{endpoint.url}/models")) == 404
    scale = urllib.request.Request(f"{endpoint.url}/models/model?min_worker=3&synchronous=true", method="PUT")
    assert _status(scale) in (404, 405)
    register = urllib.request.Request(f"{endpoint.url}/models?url=http://example.com/x.mar", method="POST")
    assert _status(register) in (404, 405)
    assert endpoint.ready_workers() == 1  # still reachable by its owner, over the work dir's Unix socket
    config = (endpoint.work_dir / "sagemaker-ts.properties").read_text().splitlines()
    assert "enable_model_api=false" in config and "default_response_timeout=60" in config
    assert (endpoint.work_dir / "management.sock").exists() and oct(endpoint.work_dir.stat().st_mode)[-3:] == "700"


@pytest.mark.slow
def test_form_urlencoded_body_gets_our_415_when_torchserve_parses_it(endpoint: LocalEndpoint) -> None:
    """curl --data without -H Content-Type sends application/x-www-form-urlencoded."""
    status, content_type, body = post(endpoint, b"image=dog.jpg", {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, content_type) == (415, "application/json")
    assert "Content-Type 'application/x-www-form-urlencoded' is not supported" in json.loads(body)["message"]


@pytest.mark.slow
def test_form_urlencoded_binary_is_refused_by_torchserve_before_python(endpoint: LocalEndpoint) -> None:
    """The documented limit (docs/serving.md, the error table): TorchServe's Java front end decodes a form body
    before any handler runs; binary bytes fail there with its own 500. No traceback either way; the fix is
    -H Content-Type."""
    status, _, body = post(endpoint, noise_png(), {"Content-Type": "application/x-www-form-urlencoded"})
    if status == 415:  # the bytes happened to parse as a form: our answer
        assert "not supported" in json.loads(body)["message"]
        return
    assert status == 500 and json.loads(body)["type"] == "ErrorDataDecoderException"
    assert b"Traceback" not in body
    assert post(endpoint, noise_png(), {"Content-Type": "image/png"})[0] == 200


@pytest.mark.slow
def test_non_utf8_json_body_is_400(endpoint: LocalEndpoint) -> None:
    status, content_type, body = post(endpoint, b'{"image": "\xff\xfe"}', {"Content-Type": "application/json"})
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body)["message"].startswith("malformed JSON ('utf-8' codec can't decode byte 0xff")


@pytest.mark.slow
def test_strict_decoding_over_http(endpoint: LocalEndpoint) -> None:
    png = noise_png()
    status, _, body = post(endpoint, png[: len(png) // 2] + png[-12:], {"Content-Type": "image/png"})
    assert status == 400 and "image is truncated" in json.loads(body)["message"]
    status, _, body = post(endpoint, png + b"vendor trailer " * 500, {"Content-Type": "image/png"})
    answer = json.loads(body)
    assert status == 200 and answer["confident"] is None and len(answer["predictions"]) == 3  # no rule set
