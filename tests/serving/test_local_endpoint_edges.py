"""LocalEndpoint before it starts: what it refuses (exact messages) and where it will listen and log. Fast: no
TorchServe is launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogbreed.serving.local_endpoint import LocalEndpoint
from dogbreed.serving.torchserve_setup import ServeError


def test_the_address_log_and_ports_follow_the_port_and_work_dir(tmp_path):
    endpoint = LocalEndpoint(tmp_path / "serve", model_dir=tmp_path / "model", port=18123, workers=2,
                             response_timeout=7)
    assert endpoint.url == "http://127.0.0.1:18123"
    assert endpoint.log_path == (tmp_path / "serve").resolve() / "serve.log"
    assert endpoint.ports == [18123, 18124, 18125, 18126, 18127]
    assert (endpoint.workers, endpoint.response_timeout, endpoint.own_code) == (2, 7, False)
    assert endpoint.process is None and endpoint.front is None


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give exactly one of model_dir (a trained model dir) or model_data (a model.tar.gz)"),
    ({"model_dir": "m", "model_data": "m.tar.gz"},
     "give exactly one of model_dir (a trained model dir) or model_data (a model.tar.gz)"),
    ({"model_dir": "m", "workers": 0}, "--workers 0: run at least 1 worker"),
    ({"model_dir": "m", "response_timeout": 0}, "--response-timeout 0: give at least 1 second"),
    ({"model_dir": "m", "port": 0}, "--port 0 is out of range: the endpoint uses --port..--port+4, so pass "
                                    "1..65531 (e.g. 8080)"),
    ({"model_dir": "m", "port": 65532}, "--port 65532 is out of range: the endpoint uses --port..--port+4, so pass "
                                        "1..65531 (e.g. 8080)"),
])
def test_bad_settings_are_refused_before_anything_starts(tmp_path, kwargs, message):
    with pytest.raises(ServeError) as caught:
        LocalEndpoint(tmp_path / "serve", **kwargs)
    assert str(caught.value) == message
    assert not (tmp_path / "serve").exists()


@pytest.mark.parametrize("kwargs", [{"workers": 1, "response_timeout": 1, "port": 1},
                                    {"port": 65531}])
def test_the_last_accepted_settings_construct(tmp_path, kwargs):
    assert LocalEndpoint(Path(tmp_path), model_dir="m", **kwargs).ports[-1] == kwargs["port"] + 4


def test_torchserve_gets_its_addresses_workers_and_dirs_from_the_environment(tmp_path, monkeypatch):
    import sys

    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setenv("DOGBREED_TOP_K", "3")
    monkeypatch.delenv("SAGEMAKER_SUPPRESS_V2_WARNING", raising=False)  # set by the test session itself
    endpoint = LocalEndpoint(tmp_path / "serve", model_dir=tmp_path / "model", port=18123, workers=2,
                             response_timeout=7)
    work = (tmp_path / "serve").resolve()
    env = endpoint._environment()
    assert {k: v for k, v in env.items() if k.startswith(("SAGEMAKER_", "TS_")) or k in (
        "TMPDIR", "TEMP", "TMP", "LOG_LOCATION", "METRICS_LOCATION", "PATH")} == {
        "SAGEMAKER_BASE_DIR": f"{work}/ml", "SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_BIND_TO_PORT": "18123",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "7",
        "TS_INFERENCE_ADDRESS": "http://127.0.0.1:18124", "TS_MANAGEMENT_ADDRESS": f"unix:{work}/management.sock",
        "TS_METRICS_ADDRESS": "http://127.0.0.1:18125", "TS_GRPC_INFERENCE_ADDRESS": "127.0.0.1",
        "TS_GRPC_MANAGEMENT_ADDRESS": "127.0.0.1", "TS_GRPC_INFERENCE_PORT": "18126",
        "TS_GRPC_MANAGEMENT_PORT": "18127", "TMPDIR": f"{work}/tmp", "TEMP": f"{work}/tmp", "TMP": f"{work}/tmp",
        "LOG_LOCATION": f"{work}/logs", "METRICS_LOCATION": f"{work}/logs",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin",
    }
    assert env["DOGBREED_TOP_K"] == "3"  # the caller's environment passes through
