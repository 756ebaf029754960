"""What the local endpoint needs around TorchServe: prerequisite checks, the config it writes, its log.

The config is the toolkit's ``default-ts.properties`` with what the container leaves to chance set on purpose:
a trailing newline (without it the toolkit's appended ``default_response_timeout`` fused with
``enable_model_api`` and both were lost), model registration off, and the management API moved off the
inference port onto a Unix socket inside the work dir (only its owner can connect), so no local process can
register models or rescale workers through ``--port``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
from importlib import resources
from pathlib import Path

from dogbreed.core.errors import DogBreedError

HOST = "127.0.0.1"
TS_SERVER_CLASS = "org.pytorch.serve.ModelServer"
EXTRA_VMARGS = "-XX:-UsePerfData"  # no hsperfdata_<user> dir in the system temp dir
MANAGEMENT_SOCKET = "management.sock"
DEFAULT_RESPONSE_TIMEOUT = 60  # seconds TorchServe gives one request before answering 500
MAX_PORT = 65535 - 4  # the endpoint uses port .. port+4
UNIX_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included
WORKER_SOCKET = "tmp/.ts.sock.9000"  # TorchServe's worker sockets live in $TMPDIR (work_dir/tmp)
# Lines of TorchServe's log that are our own readiness polls or metrics, not news.
LOG_NOISE = ("ACCESS_LOG", "TS_METRICS", "MetricCollector")
WORKER_FAILED = ("Load model failed", "Backend worker process died")
MODEL_LOG = "MODEL_LOG - "


class ServeError(DogBreedError):
    """The local endpoint cannot start (no Java, port taken, model not loading) or stopped."""


def check_java() -> str:
    """Path of a Java 11+ runtime, which TorchServe needs."""
    java_home = os.environ.get("JAVA_HOME")  # what TorchServe's launcher uses first
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not Path(java).is_file():
        raise ServeError("java not found on PATH: TorchServe needs Java 11+; install it with "
                         "apt-get install -y openjdk-17-jre-headless")
    out = subprocess.run([java, EXTRA_VMARGS, "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = 0
    if match:
        major = int(match.group(1))
        major = int(match.group(2) or 0) if major == 1 else major  # "1.8.0" means Java 8
    if major < 11:
        raise ServeError(f"{java} is Java {major or 'of unknown version'}: TorchServe needs Java 11+ "
                         "(apt-get install -y openjdk-17-jre-headless)")
    return java


def check_port_range(port: int) -> None:
    if not 1 <= port <= MAX_PORT:
        raise ServeError(f"--port must be between 1 and {MAX_PORT} (the endpoint uses --port..--port+4; e.g. "
                         f"8080), got {port}")


def check_ports_free(ports: list[int]) -> None:
    for port in ports:
        if not 1 <= port <= 65535:
            raise ServeError(f"port {port} is out of range (1..65535): pass another --port")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                raise ServeError(f"port {port} on {HOST} is in use ({exc.strerror}): stop what uses it or pass "
                                 f"another --port (the endpoint uses --port..--port+4)") from exc


def check_no_torchserve() -> None:
    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        if TS_SERVER_CLASS in (process.info.get("cmdline") or []):
            raise ServeError(f"a TorchServe server is already running (pid {process.info['pid']}): the "
                             "SageMaker toolkit allows one per machine; stop it first")


def check_socket_paths(work_dir: Path) -> None:
    """TorchServe's sockets (workers', management) live in the work dir; Linux caps their paths at 107 bytes."""
    longest = max(len(os.fsencode(work_dir / name)) for name in (WORKER_SOCKET, MANAGEMENT_SOCKET))
    if longest > UNIX_SOCKET_PATH_MAX:
        raise ServeError(f"work dir {work_dir} is too long a path for TorchServe's sockets ({longest} > "
                         f"{UNIX_SOCKET_PATH_MAX} bytes): pass a shorter --work-dir")


def write_default_properties(work_dir: Path) -> Path:
    """The toolkit's default-ts.properties, fixed (see the module docstring), written into ``work_dir``."""
    default = resources.files("sagemaker_pytorch_serving_container").joinpath("etc/default-ts.properties")
    lines = [line for line in default.read_text(encoding="utf-8").splitlines()
             if not line.startswith(("enable_model_api=", "default_response_timeout="))]
    lines = [f"{line} {EXTRA_VMARGS}" if line.startswith("vmargs=") else line for line in lines]
    lines += ["enable_model_api=false", ""]  # the trailing newline keeps the toolkit's appended keys separate
    path = work_dir / "default-ts.properties"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def management_address(work_dir: Path) -> str:
    return f"unix:{work_dir / MANAGEMENT_SOCKET}"


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


def management_get(work_dir: Path, path: str, timeout: float = 2.0) -> object:
    """GET ``path`` from TorchServe's management API (its Unix socket in ``work_dir``), parsed as JSON."""
    connection = _UnixHTTPConnection(work_dir / MANAGEMENT_SOCKET, timeout)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def meaningful_lines(text: str) -> list[str]:
    """The log without our readiness polls and metrics lines."""
    return [line for line in text.splitlines() if line.strip() and not any(noise in line for noise in LOG_NOISE)]


def worker_failed(text: str) -> bool:
    return any(marker in text for marker in WORKER_FAILED)


def worker_error(text: str, lines: int = 5) -> str:
    """The last lines of the first worker traceback in TorchServe's log (prefixes stripped), e.g. the
    ``SyntaxError`` of a broken ``code/inference.py`` or the ``ArtifactError`` of a broken model."""
    died = text.find("Backend worker process died")
    body = text[died:] if died >= 0 else text
    traceback: list[str] = []
    for line in body.splitlines()[1:]:
        if MODEL_LOG not in line:
            continue
        message = line.split(MODEL_LOG, 1)[1]
        if traceback and message.startswith(("s_name_part0", "Backend worker process died")):
            break  # the next worker attempt
        if '"<frozen ' not in message:  # importlib's own frames say nothing about the error
            traceback.append(message)
    tail = traceback[-lines:]
    # a cut window starts at its first frame, not at a code line or its ^^^^ marker left from the frame before
    starts = [i for i, line in enumerate(tail) if line.startswith(("  File ", "Traceback"))]
    if len(traceback) > lines and starts:
        tail = tail[starts[0]:]
    return "\n".join(tail)
