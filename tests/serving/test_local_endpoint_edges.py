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
    ({"model_dir": "m", "workers": 0}, "--workers must be at least 1, got 0"),
    ({"model_dir": "m", "response_timeout": 0}, "--response-timeout must be at least 1 second, got 0"),
    ({"model_dir": "m", "port": 0}, "--port must be between 1 and 65531 (the endpoint uses --port..--port+4; e.g. "
                                    "8080), got 0"),
    ({"model_dir": "m", "port": 65532}, "--port must be between 1 and 65531 (the endpoint uses --port..--port+4; "
                                        "e.g. 8080), got 65532"),
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
    monkeypatch.delenv("PATH")
    assert endpoint._environment()["PATH"] == str(Path(sys.executable).parent)  # no ":" that would add the cwd
    monkeypatch.setenv("PATH", "")
    assert endpoint._environment()["PATH"] == str(Path(sys.executable).parent)


def _fake_java(home: Path, version_line: str) -> Path:
    java = home / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return java


@pytest.mark.parametrize("version_line, major", [
    ('openjdk version "17.0.2" 2022-01-18', 17), ('openjdk version "11" 2018-09-25', 11),
    ('java version "1.8.0_292"', 8), ('openjdk version "10.0.2" 2018-07-17', 10), ("no version here", 0),
])
def test_java_home_comes_first_and_java_11_is_the_floor(tmp_path, monkeypatch, version_line, major):
    from dogbreed.serving.torchserve_setup import check_java

    java = _fake_java(tmp_path / "jdk", version_line)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no other java to find
    if major >= 11:
        assert check_java() == str(java)
        return
    with pytest.raises(ServeError) as caught:
        check_java()
    assert str(caught.value) == (f"{java} is Java {major or 'of unknown version'}: TorchServe needs Java 11+ "
                                 "(apt-get install -y openjdk-17-jre-headless)")


def test_without_java_home_or_java_on_path_it_says_how_to_install_it(tmp_path, monkeypatch):
    from dogbreed.serving.torchserve_setup import check_java

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServeError) as caught:
        check_java()
    assert str(caught.value) == ("java not found on PATH: TorchServe needs Java 11+; install it with "
                                 "apt-get install -y openjdk-17-jre-headless")


def test_the_model_is_staged_where_the_toolkit_looks_for_it_and_a_used_work_dir_is_refused(tiny_model_dir, tmp_path):
    work = tmp_path / "serve"
    endpoint = LocalEndpoint(work, model_dir=tiny_model_dir)
    model_root = endpoint._prepare()
    # the toolkit serves $SAGEMAKER_BASE_DIR/model (SageMaker's /opt/ml/model)
    assert model_root == work.resolve() / "ml" / "model"
    assert Path(endpoint._environment()["SAGEMAKER_BASE_DIR"]) / "model" == model_root
    assert {"model_config.json", "model.pth", "code"} <= {p.name for p in model_root.iterdir()}
    assert (model_root / "code" / "inference.py").is_file()
    assert (work / "tmp").is_dir() and (work / "logs").is_dir()
    with pytest.raises(ServeError) as refused:
        LocalEndpoint(work, model_dir=tiny_model_dir)._prepare()
    assert str(refused.value) == f"{work.resolve()} was used by another run: pass a new or empty work dir"


class _Running:
    """A stand-in for the launched process: alive until told otherwise."""

    pid = 0

    def poll(self) -> None:
        return None


def test_start_waits_until_every_worker_is_ready_not_the_first(tmp_path, monkeypatch):
    from dogbreed.serving import local_endpoint

    endpoint = LocalEndpoint(tmp_path / "serve", model_dir=tmp_path / "model", workers=3)
    endpoint.process = _Running()  # type: ignore[assignment]
    polls = iter([0, 1, 2, 3, 3])
    answered: list[int] = []

    def ready() -> int:
        answered.append(next(polls))
        return answered[-1]

    monkeypatch.setattr(endpoint, "ready_workers", ready)
    monkeypatch.setattr(local_endpoint.time, "sleep", lambda seconds: None)
    endpoint._wait_until_ready(60)
    assert answered == [0, 1, 2, 3]  # returned at the first poll that saw all 3 workers READY


def test_a_start_that_fails_after_the_launch_stops_what_it_launched(tmp_path, monkeypatch):
    from dogbreed.serving import local_endpoint

    for check in ("check_java", "check_ports_free", "check_no_torchserve", "check_socket_paths"):
        monkeypatch.setattr(local_endpoint, check, lambda *args: None)
    endpoint = LocalEndpoint(tmp_path / "serve", model_dir=tmp_path / "model")
    monkeypatch.setattr(endpoint, "check_model_source", lambda: None)
    monkeypatch.setattr(endpoint, "_prepare", lambda: tmp_path)
    monkeypatch.setattr(local_endpoint.subprocess, "Popen", lambda *args, **kwargs: _Running())

    def never_ready(timeout: float) -> None:
        raise ServeError("the model did not load within 1 s")

    stopped: list[object] = []
    monkeypatch.setattr(endpoint, "_wait_until_ready", never_ready)
    monkeypatch.setattr(endpoint, "stop", lambda *args: stopped.append(endpoint.process))
    with pytest.raises(ServeError, match="^the model did not load within 1 s$"):
        endpoint.start(timeout=1)
    assert len(stopped) == 1 and isinstance(stopped[0], _Running)  # the launched process was stopped, once


def test_a_worker_that_never_gets_ready_is_refused_at_the_deadline_with_the_log_tail(tmp_path, monkeypatch):
    from dogbreed.serving import local_endpoint

    endpoint = LocalEndpoint(tmp_path / "serve", model_dir=tmp_path / "model", workers=2)
    endpoint.process = _Running()  # type: ignore[assignment]
    endpoint.log_path.parent.mkdir(parents=True)
    endpoint.log_path.write_text("Model server started.\nLoading model dogbreed\n")
    clock = iter([100.0, 100.0, 101.0, 102.5])  # the deadline (100 + 2), two polls, then past it
    monkeypatch.setattr(local_endpoint.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(local_endpoint.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(endpoint, "ready_workers", lambda: 1)  # one of two workers ready
    with pytest.raises(ServeError) as refused:
        endpoint._wait_until_ready(2)
    assert str(refused.value) == (f"the model did not load within 2 s:\nModel server started.\nLoading model dogbreed\n"
                                  f"full log: {endpoint.log_path}")
