"""Run the real SageMaker PyTorch serving stack (toolkit + TorchServe, no Docker) on 127.0.0.1.

Everything it writes stays in ``work_dir``: the model (``ml/model``), TorchServe's config, model
store, logs and temp files. The one deviation from the container is the config path: the toolkit
hard-codes ``/etc/sagemaker-ts.properties``, so a tiny wrapper points it into ``work_dir`` and
then does what the toolkit's ``serving.main()`` does (``torchserve.start_torchserve`` with the toolkit's handler
service, retried the same way) without importing torch in the launcher. Only one TorchServe may run per machine.

Clients talk to ``--port``, where :mod:`dogbreed.serving.front` answers only the SageMaker routes (with header and
body timeouts) and forwards them to TorchServe's inference API on ``--port + 1`` (loopback only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from dogbreed.core.constants import CONFIG_FILENAME, WEIGHTS_FILENAME
from dogbreed.core.errors import ArtifactError
from dogbreed.serving.front import EndpointFront
from dogbreed.serving.packaging import extract_model_archive, stage_model_dir
from dogbreed.serving.requests import ServingLimits
from dogbreed.serving.torchserve_setup import (
    DEFAULT_RESPONSE_TIMEOUT,
    HOST,
    ServeError,
    check_java,
    check_no_torchserve,
    check_port_range,
    check_ports_free,
    check_socket_paths,
    management_address,
    management_get,
    meaningful_lines,
    worker_error,
    worker_failed,
    write_default_properties,
)

__all__ = ["HOST", "LocalEndpoint", "ServeError", "check_java", "check_ports_free", "serve_until_interrupted"]

MODEL_NAME = "model"
WRAPPER = """
import sys
from importlib.util import find_spec
from subprocess import CalledProcessError
from retrying import retry
from sagemaker_inference import model_server
from sagemaker_pytorch_serving_container import torchserve
work = sys.argv[1]
torchserve.TS_CONFIG_FILE = work + "/sagemaker-ts.properties"
torchserve.DEFAULT_TS_CONFIG_FILE = work + "/default-ts.properties"
model_server.REQUIREMENTS_PATH = work + "/requirements-already-installed.txt"
# serving.main() of the toolkit, minus its import of the handler service: that import (torch) only serves to name
# the handler's file, and cost the launcher ~1.5 s before TorchServe could start. Same retry as the toolkit's.
handler = find_spec("sagemaker_pytorch_serving_container.handler_service").origin
@retry(stop_max_delay=1000 * 30, retry_on_exception=lambda error: isinstance(error, CalledProcessError))
def start():
    torchserve.start_torchserve(handler_service=handler)
start()
"""
# Signals that stop `serve` cleanly: Ctrl-C, kill, and the terminal closing (SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LocalEndpoint:
    """One local SageMaker-style endpoint; use as a context manager or call start()/stop().

    ``own_code``: serve a ``model_data`` archive's weights with this dogbreed's handlers instead of running the
    archive's ``code/inference.py`` (which is Python code, run with the caller's rights).
    """

    def __init__(self, work_dir: Path | str, *, model_dir: Path | str | None = None,
                 model_data: Path | str | None = None, port: int = 8080, workers: int = 1,
                 own_code: bool = False, response_timeout: int = DEFAULT_RESPONSE_TIMEOUT) -> None:
        if (model_dir is None) == (model_data is None):
            raise ServeError("give exactly one of model_dir (a trained model dir) or model_data (a model.tar.gz)")
        if workers < 1:
            raise ServeError(f"--workers must be at least 1, got {workers}")
        if response_timeout < 1:
            raise ServeError(f"--response-timeout must be at least 1 second, got {response_timeout}")
        check_port_range(port)
        self.work_dir = Path(work_dir).resolve()
        self.model_dir, self.model_data = model_dir, model_data
        self.port, self.workers = port, workers
        self.own_code, self.response_timeout = own_code, response_timeout
        self.process: subprocess.Popen | None = None
        self.front: EndpointFront | None = None
        self.timings: dict[str, float] = {}  # seconds spent by start(): checks, stage (bench/serve_latency.py)
        self.launched_at = 0.0  # time.time() when TorchServe was launched

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "serve.log"

    @property
    def ports(self) -> list[int]:
        """The front, TorchServe's inference API behind it, metrics, gRPC inference and gRPC management."""
        return [self.port, self.port + 1, self.port + 2, self.port + 3, self.port + 4]

    @property
    def backend_url(self) -> str:
        """TorchServe's own inference API, behind the front (not for clients)."""
        return f"http://{HOST}:{self.port + 1}"

    def check_model_source(self) -> None:
        """The model dir holds an artifact's files, the archive exists (their contents are checked when staged)."""
        if self.model_dir is not None:
            model_dir = Path(self.model_dir)
            if not model_dir.is_dir():
                raise ArtifactError(f"--model-dir {model_dir} does not exist: pass the --model-dir written by "
                                    "python -m entry_points.train (default: outputs/model)")
            missing = [name for name in (WEIGHTS_FILENAME, CONFIG_FILENAME) if not (model_dir / name).is_file()]
            if missing:
                raise ArtifactError(f"--model-dir {model_dir} lacks {', '.join(missing)}: pass a dir written by "
                                    "python -m entry_points.train --model-dir")
        elif self.model_data is not None and not Path(self.model_data).is_file():
            raise ArtifactError(f"--model-data {self.model_data} not found: build one with "
                                "python -m entry_points.package")

    def _prepare(self) -> Path:
        model_root = self.work_dir / "ml" / "model"
        if model_root.exists():
            raise ServeError(f"{self.work_dir} was used by another run: pass a new or empty work dir")
        if self.model_dir is not None:
            stage_model_dir(self.model_dir, model_root)
        elif self.model_data is not None:
            extract_model_archive(self.model_data, model_root, own_code=self.own_code)
        for name in ("tmp", "logs"):
            (self.work_dir / name).mkdir(parents=True, exist_ok=True)
        write_default_properties(self.work_dir)
        return model_root

    def _environment(self) -> dict[str, str]:
        tmp = str(self.work_dir / "tmp")
        env = dict(os.environ)
        env.update({
            "SAGEMAKER_BASE_DIR": str(self.work_dir / "ml"),
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(self.response_timeout),
            # TorchServe's env overrides (enable_envvars_config=true) beat the toolkit's 0.0.0.0.
            "TS_INFERENCE_ADDRESS": self.backend_url,
            # The management API (register models, scale workers) is not on --port: it listens on a Unix socket
            # in the work dir, which only its owner can reach.
            "TS_MANAGEMENT_ADDRESS": management_address(self.work_dir),
            "TS_METRICS_ADDRESS": f"http://{HOST}:{self.port + 2}",
            "TS_GRPC_INFERENCE_ADDRESS": HOST,
            "TS_GRPC_MANAGEMENT_ADDRESS": HOST,
            "TS_GRPC_INFERENCE_PORT": str(self.port + 3),
            "TS_GRPC_MANAGEMENT_PORT": str(self.port + 4),
            "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp,
            "LOG_LOCATION": str(self.work_dir / "logs"),
            "METRICS_LOCATION": str(self.work_dir / "logs"),
            # this Python's scripts first (java is found on the rest); no trailing separator when PATH is unset,
            # which would put the current directory on the search path
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), *filter(None, [env.get("PATH")])]),
        })
        return env

    def start(self, timeout: float = 180.0) -> "LocalEndpoint":
        """Check prerequisites, launch, and return once every worker has loaded the model.

        Fails as soon as a worker fails to load it, with the worker's own error lines (the log is kept).
        """
        self.check_model_source()  # first: a missing --model-dir is named even while another server runs
        started = time.monotonic()
        check_java()
        check_ports_free(self.ports)
        check_no_torchserve()
        check_socket_paths(self.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work_dir, 0o700)  # the management socket lives here
        self.timings = {"checks": time.monotonic() - started}
        self._prepare()
        self.timings["stage"] = time.monotonic() - started - self.timings["checks"]
        self.launched_at = time.time()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(self.work_dir)], cwd=self.work_dir, env=self._environment(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self._wait_until_ready(timeout)
            limits = ServingLimits.from_env()
            self.front = EndpointFront(HOST, self.port, self.port + 1, max_body_bytes=limits.max_payload_bytes,
                                       backend_timeout=self.response_timeout + 5.0).start()
        except BaseException:
            self.stop()
            raise
        return self

    def ready_workers(self) -> int:
        try:
            described = management_get(self.work_dir, f"/models/{MODEL_NAME}")
        except (OSError, ValueError):
            return 0
        models = described if isinstance(described, list) else [described]
        return sum(worker.get("status") == "READY" for model in models if isinstance(model, dict)
                   for worker in model.get("workers", []))

    def _log_chunks(self) -> Iterator[str]:
        """The log text as it grows (read incrementally)."""
        offset, text = 0, ""
        while True:
            if self.log_path.is_file():
                with open(self.log_path, "rb") as log:
                    log.seek(offset)
                    chunk = log.read()
                offset += len(chunk)
                text += chunk.decode("utf-8", errors="replace")
            yield text

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        log = self._log_chunks()
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServeError(f"the serving process exited during startup:\n{self.log_tail()}\n"
                                 f"full log: {self.log_path}")
            if worker_failed(next(log)):
                raise ServeError(f"the model failed to load in the serving worker:\n{self._worker_error(log)}\n"
                                 f"full log: {self.log_path}")
            if self.ready_workers() >= self.workers:
                return
            time.sleep(0.25)
        raise ServeError(f"the model did not load within {timeout:.0f} s:\n{self.log_tail()}\n"
                         f"full log: {self.log_path}")

    def _worker_error(self, log: Iterator[str]) -> str:
        """Wait (briefly) until the worker's traceback is in the log, then return its last lines."""
        deadline = time.monotonic() + 5.0
        text = next(log)
        while "Stopped Scanner" not in text[text.find("Backend worker process died"):] and time.monotonic() < deadline:
            time.sleep(0.1)
            text = next(log)
        return worker_error(text) or self.log_tail()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the log, without our readiness polls and metrics lines."""
        if not self.log_path.is_file():
            return ""
        return "\n".join(meaningful_lines(self.log_path.read_text(encoding="utf-8", errors="replace"))[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the toolkit (it forwards to TorchServe); kill what is left of the group after ``timeout``."""
        if self.front is not None:
            self.front.stop()
            self.front = None
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the wrapper leads a group holding java and workers
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10.0
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.wait(5)
        self.process = None

    def __enter__(self) -> "LocalEndpoint":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _group_alive(group: int) -> bool:
    """Whether a live (non-zombie) process of our process group remains."""
    import psutil

    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.info["pid"]) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# TorchServe's access log line: ... ACCESS_LOG - /127.0.0.1:54321 "POST /invocations HTTP/1.1" 200 32
ACCESS_LINE = re.compile(r'ACCESS_LOG - \S+ "(\S+) (\S+)[^"]*" (\d{3}) (\d+)')


def request_line(log_line: str) -> str | None:
    """``POST /invocations 200 32 ms`` for one access-log line of the server's log, else None."""
    match = ACCESS_LINE.search(log_line)
    if match is None:
        return None
    method, path, status, duration = match.groups()
    return f"{method} {path} {status} {duration} ms"


class RequestLog:
    """The requests the server logged since this was made, one line each (its own readiness polls came before)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.offset = log_path.stat().st_size if log_path.is_file() else 0
        self.partial = b""

    def new_lines(self) -> list[str]:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        lines = (request_line(line.decode("utf-8", "replace")) for line in complete)
        return [line for line in lines if line]


def serve_until_interrupted(endpoint: LocalEndpoint, announce: str = "") -> int:
    """Print ``announce``, then one line per request, until Ctrl-C, SIGTERM or SIGHUP (then stop cleanly) or until
    the server dies by itself. A signal that arrives right after the announcement (a client that waits for it) is a
    clean stop too."""
    previous = {signum: signal.signal(signum, raise_keyboard_interrupt) for signum in STOP_SIGNALS}
    try:
        requests = RequestLog(endpoint.log_path)
        if announce:
            print(announce, flush=True)
        while endpoint.running():
            time.sleep(0.5)
            for line in requests.new_lines():
                print(line, flush=True)
        print(f"error: the endpoint stopped by itself; see {endpoint.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        endpoint.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
