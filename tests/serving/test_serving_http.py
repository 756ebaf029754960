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
    assert json.loads(body)["message"] == (
        "Content-Type 'application/x-www-form-urlencoded' is not supported: use one of image/jpeg, image/png, "
        "image/webp, application/x-image, application/octet-stream, application/json, application/x-npy (with curl, "
        "send the file with --data-binary @FILE (-d/--data removes its line breaks) and -H 'Content-Type: "
        "image/jpeg')")


@pytest.mark.slow
def test_form_urlencoded_binary_gets_our_415_from_the_front(endpoint: LocalEndpoint) -> None:
    """TorchServe's Java front end would decode a form body before any handler runs (binary bytes failed there with
    its own 500); the front answers the handlers' 415 first."""
    status, _, body = post(endpoint, noise_png(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "not supported" in json.loads(body)["message"]
    assert post(endpoint, noise_png(), {"Content-Type": "image/png"})[0] == 200


def _raw(endpoint: LocalEndpoint, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection."""
    import socket

    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_only_the_sagemaker_routes_answer_and_odd_requests_are_closed(endpoint: LocalEndpoint) -> None:
    """Each of these reached TorchServe's own behaviour before (a hang, a reset, a second inference route, the
    OpenAPI description); through the front each is a JSON 4xx and a closed socket."""
    for request, status in ((b"HEAD /invocations HTTP/1.1\r\n\r\n", 405),
                            (b"OPTIONS / HTTP/1.1\r\n\r\n", 404),
                            (b"GET /api-description HTTP/1.1\r\n\r\n", 404),
                            (b"POST /predictions/model HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 404),
                            (b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: -5\r\n\r\n",
                             400)):
        answer = _raw(endpoint, request)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()) and b"Connection: close" in answer, answer[:200]
    ping = _raw(endpoint, b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")  # returns: the server closed
    assert ping.startswith(b"HTTP/1.1 200 ")


@pytest.mark.slow
def test_non_utf8_json_body_is_400(endpoint: LocalEndpoint) -> None:
    status, content_type, body = post(endpoint, b'{"image": "\xff\xfe"}', {"Content-Type": "application/json"})
    assert (status, content_type) == (400, "application/json")
    assert json.loads(body)["message"] == (
        "malformed JSON (not UTF-8 text: invalid start byte at byte 11): send "
        '{"image": "<base64>"} or {"instances": ["<base64>", ...]}')


@pytest.mark.slow
def test_strict_decoding_over_http(endpoint: LocalEndpoint) -> None:
    png = noise_png()
    status, _, body = post(endpoint, png[: len(png) // 2] + png[-12:], {"Content-Type": "image/png"})
    message = json.loads(body)["message"]
    assert (status, message) == (400, "image is truncated (the file ends inside its image data): use the complete file")
    status, _, body = post(endpoint, png + b"vendor trailer " * 500, {"Content-Type": "image/png"})
    answer = json.loads(body)
    assert status == 200 and answer["confident"] is None and len(answer["predictions"]) == 3  # no rule set
