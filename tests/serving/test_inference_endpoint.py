"""The local endpoint over HTTP: real TorchServe + SageMaker toolkit, one server for the whole module."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
from types import SimpleNamespace

import pytest

from dogbreed.sagemaker.deploy import invoke
from dogbreed.serving.local_endpoint import LocalEndpoint, ServeError, _group_alive, check_java, check_ports_free
from dogbreed.serving.packaging import build_model_archive
from dogbreed.serving.predictor import Predictor
from tests.helpers.inference_support import BAD_REQUESTS, ODD_IMAGES, dog_jpeg


def free_base_port(start: int = 18080) -> int:
    for base in range(start, start + 200, 10):
        try:
            check_ports_free([base, base + 2, base + 3, base + 4])
            return base
        except ServeError:
            continue
    raise RuntimeError("no free loopback ports")


def test_port_in_use_is_reported_before_starting() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServeError) as caught:
            check_ports_free([port])
    assert str(caught.value) == (f"port {port} on 127.0.0.1 is in use (Address already in use): stop what uses it or "
                                 "pass another --port (the endpoint uses --port..--port+4)")


def test_missing_java_is_reported(monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServeError) as caught:
        check_java()
    assert str(caught.value) == ("java not found on PATH: TorchServe needs Java 11+; install it with apt-get install "
                                 "-y openjdk-17-jre-headless")


@pytest.fixture(scope="module")
def endpoint(tiny_model_dir, tmp_path_factory):
    archive = build_model_archive(tiny_model_dir, tmp_path_factory.mktemp("archive") / "model.tar.gz")
    server = LocalEndpoint(tmp_path_factory.mktemp("serve"), model_data=archive, port=free_base_port())
    server.start(timeout=300)
    yield server
    server.stop()


def post(endpoint: LocalEndpoint, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=60)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def post_jpeg(endpoint: LocalEndpoint, data: bytes | None = None) -> list[dict]:
    """The predictions of one image's answer (``{"confident": ..., "predictions": [...]}``)."""
    status, _, body = post(endpoint, data or dog_jpeg(), {"Content-Type": "image/jpeg"})
    assert status == 200, body
    return json.loads(body)["predictions"]


class _ThroughTheLocalEndpoint:
    """What ``Endpoint.invoke`` sends (body, Content-Type, Accept), posted to the local endpoint's /invocations."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint

    def invoke(self, body: bytes, content_type: str, accept: str):
        status, _, answer = post(self.endpoint, body, {"Content-Type": content_type, "Accept": accept})
        assert status == 200, answer
        return SimpleNamespace(body=io.BytesIO(answer))


@pytest.mark.slow
def test_invoke_matches_library_predictor(endpoint, tiny_model_dir) -> None:
    library = Predictor.from_model_dir(tiny_model_dir, device="cpu")
    remote_endpoint = _ThroughTheLocalEndpoint(endpoint)
    for label in range(3):
        image = dog_jpeg(label, seed=label + 10)
        remote = invoke(remote_endpoint, image)["predictions"]
        local = library.predict([image], k=5)[0]
        assert [row["index"] for row in remote] == [p.index for p in local]
        assert [row["probability"] for row in remote] == pytest.approx([p.probability for p in local], abs=1e-5)


@pytest.mark.slow
def test_invoke_json_batch(endpoint) -> None:
    images = [base64.b64encode(dog_jpeg(i)).decode() for i in range(2)]
    body = json.dumps({"instances": images, "top_k": 2}).encode()
    answers = invoke(_ThroughTheLocalEndpoint(endpoint), body, content_type="application/json")
    assert len(answers) == 2 and all(len(answer["predictions"]) == 2 for answer in answers)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BAD_REQUESTS) + ["wrong_accept"])
def test_bad_input_gets_4xx_and_server_keeps_serving(endpoint, name: str) -> None:
    if name == "wrong_accept":
        body, content_type, expected = dog_jpeg(), "image/jpeg", 406
        message = "cannot answer in 'text/csv': set Accept to application/json or application/x-npy"
        headers = {"Content-Type": content_type, "Accept": "text/csv"}
    else:
        body, content_type, expected, message = BAD_REQUESTS[name]
        headers = {"Content-Type": content_type} if content_type else {}
    status, response_type, response = post(endpoint, body if isinstance(body, bytes) else body.encode(), headers)
    assert status == expected, response[:300]
    assert b"Traceback" not in response and b'File "' not in response
    if status != 413 or name != "oversize_payload":  # TorchServe itself may refuse an oversize body first
        assert response_type.startswith("application/json") and json.loads(response)["message"] == message
    assert len(post_jpeg(endpoint)) == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_images_get_200(endpoint, name: str) -> None:
    data, content_type = ODD_IMAGES[name]
    status, _, body = post(endpoint, data, {"Content-Type": content_type, "Accept": "application/json, text/csv"})
    assert status == 200 and len(json.loads(body)["predictions"]) == 3


@pytest.mark.slow
def test_concurrent_clients_all_succeed(endpoint) -> None:
    images = [dog_jpeg(i % 3, seed=i) for i in range(4)]
    failures: list[str] = []

    def client(image: bytes) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", endpoint.port, timeout=120)
        try:
            for _ in range(50):
                connection.request("POST", "/invocations", body=image, headers={"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or len(json.loads(body)["predictions"]) != 3:
                    failures.append(f"{response.status} {body[:100]!r}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(image,)) for image in images]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert failures == [] and not any(thread.is_alive() for thread in threads)


@pytest.mark.slow
def test_stop_leaves_no_process_port_or_stray_file(endpoint) -> None:
    group, work_dir = endpoint.process.pid, endpoint.work_dir
    endpoint.stop()
    assert not _group_alive(group)
    check_ports_free(endpoint.ports)
    # TorchServe's config, logs, pid file and model store were all written inside the work dir.
    config = (work_dir / "sagemaker-ts.properties").read_text()
    assert "-XX:-UsePerfData" in config and "default_workers_per_model=1" in config
    assert (work_dir / "logs" / "ts_log.log").is_file() and (work_dir / "tmp" / ".model_server.pid").is_file()
    assert (work_dir / ".sagemaker" / "ts" / "models").is_dir()
    # The worker imported the dogbreed copy packaged in code/, not the source checkout.
    assert f"from {work_dir / 'ml' / 'model' / 'code' / 'dogbreed'} serving 3 breeds" in endpoint.log_path.read_text()
