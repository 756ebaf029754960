"""Device and TorchServe set-up refusals no other test quotes, each compared whole (issue 24)."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dogbreed.core.errors import ConfigError
from dogbreed.serving import torchserve_setup
from dogbreed.serving.predictor import resolve_device
from dogbreed.serving.torchserve_setup import ServeError


@pytest.mark.parametrize("device, message", [
    ("gpu", "device 'gpu' is not a device name: use cpu or cuda (cuda:N)"),
    ("cuda:x", "device 'cuda:x' is not a device name: use cpu or cuda (cuda:N)"),
    ("meta", "device 'meta' is not supported here: use cpu or cuda"),
    ("mps", "device 'mps' is not supported here: use cpu or cuda"),
])
def test_a_device_that_is_not_cpu_or_cuda_is_refused(device, message):
    with pytest.raises(ConfigError) as refused:
        resolve_device(device)
    assert str(refused.value) == message


def test_a_gpu_index_past_the_last_one_names_the_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")  # the last one
    with pytest.raises(ConfigError) as refused:
        resolve_device("cuda:2")
    assert str(refused.value) == "device 'cuda:2': this machine has 2 CUDA GPU(s), cuda:0..cuda:1"
    assert resolve_device("cuda") == torch.device("cuda")  # no index: the current one
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_outside_the_tcp_range_is_refused_before_binding(port):
    with pytest.raises(ServeError) as refused:
        torchserve_setup.check_ports_free([port])
    assert str(refused.value) == f"port {port} is out of range (1..65535): pass another --port"


def test_a_port_in_use_names_it_and_the_range_the_endpoint_needs():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError) as refused:
            torchserve_setup.check_ports_free([port])
    assert str(refused.value) == (f"port {port} on 127.0.0.1 is in use (Address already in use): stop what uses it "
                                  "or pass another --port (the endpoint uses --port..--port+4)")


def test_a_running_torchserve_is_named_by_its_pid(monkeypatch):
    import psutil

    processes = [SimpleNamespace(info={"pid": 11, "cmdline": None}),
                 SimpleNamespace(info={"pid": 12, "cmdline": ["java", "-cp", "x", "org.pytorch.serve.ModelServer"]})]
    monkeypatch.setattr(psutil, "process_iter", lambda attrs: iter(processes))
    with pytest.raises(ServeError) as refused:
        torchserve_setup.check_no_torchserve()
    assert str(refused.value) == ("a TorchServe server is already running (pid 12): the SageMaker toolkit allows one "
                                  "per machine; stop it first")
    monkeypatch.setattr(psutil, "process_iter", lambda attrs: iter(processes[:1]))
    torchserve_setup.check_no_torchserve()  # a process without a command line is not one


def test_a_work_dir_too_long_for_a_unix_socket_is_refused_at_the_byte(tmp_path):
    # the worker socket's path is the longer one: <work dir>/tmp/.ts.sock.9000 (18 bytes after the dir)
    fits = tmp_path / ("w" * (107 - 18 - len(f"{tmp_path}/")))
    assert len(f"{fits}/tmp/.ts.sock.9000") == 107
    torchserve_setup.check_socket_paths(fits)  # exactly 107 bytes: the limit
    longer = Path(str(fits) + "w")
    with pytest.raises(ServeError) as refused:
        torchserve_setup.check_socket_paths(longer)
    assert str(refused.value) == (f"work dir {longer} is too long a path for TorchServe's sockets (108 > 107 bytes): "
                                  "pass a shorter --work-dir")
