"""Run the real SageMaker PyTorch serving stack (toolkit + TorchServe, no Docker) on 127.0.0.1.

Everything it writes stays in ``work_dir``: the model (``ml/model``), TorchServe's config, model
store, logs and temp files. The one deviation from the container is the config path: the toolkit
hard-codes ``/etc/sagemaker-ts.properties``, so a tiny wrapper points it into ``work_dir`` and
then calls the unmodified ``serving.main()``. Only one TorchServe may run per machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from dogbreed.core.errors import DogBreedError
from dogbreed.serving.packaging import extract_model_archive, stage_model_dir

HOST = "127.0.0.1"
MODEL_NAME = "model"
TS_SERVER_CLASS = "org.pytorch.serve.ModelServer"
EXTRA_VMARGS = "-XX:-UsePerfData"  # no hsperfdata_<user> dir in the system temp dir
WRAPPER = """
import sys
from sagemaker_inference import model_server
from sagemaker_pytorch_serving_container import serving, torchserve
work = sys.argv[1]
torchserve.TS_CONFIG_FILE = work + "/sagemaker-ts.properties"
torchserve.DEFAULT_TS_CONFIG_FILE = work + "/default-ts.properties"
model_server.REQUIREMENTS_PATH = work + "/requirements-already-installed.txt"
serving.main()
"""


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


def check_ports_free(ports: list[int]) -> None:
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                raise ServeError(f"port {port} on {HOST} is in use ({exc.strerror}): stop what uses it or pass "
                                 f"another --port (the endpoint uses --port, --port+2, --port+3, --port+4)") from exc


def check_no_torchserve() -> None:
    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        if TS_SERVER_CLASS in (process.info.get("cmdline") or []):
            raise ServeError(f"a TorchServe server is already running (pid {process.info['pid']}): the "
                             "SageMaker toolkit allows one per machine; stop it first")


def _http_json(url: str, timeout: float = 2.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


class LocalEndpoint:
    """One local SageMaker-style endpoint; use as a context manager or call start()/stop()."""

    def __init__(self, work_dir: Path | str, *, model_dir: Path | str | None = None,
                 model_data: Path | str | None = None, port: int = 8080, workers: int = 1) -> None:
        if (model_dir is None) == (model_data is None):
            raise ServeError("give exactly one of model_dir (a trained model dir) or model_data (a model.tar.gz)")
        if workers < 1:
            raise ServeError(f"workers must be at least 1, got {workers}")
        self.work_dir = Path(work_dir).resolve()
        self.model_dir, self.model_data = model_dir, model_data
        self.port, self.workers = port, workers
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "serve.log"

    @property
    def ports(self) -> list[int]:
        return [self.port, self.port + 2, self.port + 3, self.port + 4]

    def _prepare(self) -> Path:
        model_root = self.work_dir / "ml" / "model"
        if model_root.exists():
            raise ServeError(f"{self.work_dir} was used by another run: pass a new or empty work dir")
        if self.model_dir is not None:
            stage_model_dir(self.model_dir, model_root)
        elif self.model_data is not None:
            extract_model_archive(self.model_data, model_root)
        for name in ("tmp", "logs"):
            (self.work_dir / name).mkdir(parents=True, exist_ok=True)
        default = resources.files("sagemaker_pytorch_serving_container").joinpath("etc/default-ts.properties")
        text = re.sub(r"^vmargs=(.*)$", lambda m: f"vmargs={m.group(1)} {EXTRA_VMARGS}",
                      default.read_text(encoding="utf-8"), flags=re.MULTILINE)
        (self.work_dir / "default-ts.properties").write_text(text, encoding="utf-8")
        return model_root

    def _environment(self) -> dict[str, str]:
        tmp = str(self.work_dir / "tmp")
        env = dict(os.environ)
        env.update({
            "SAGEMAKER_BASE_DIR": str(self.work_dir / "ml"),
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers),
            # TorchServe's env overrides (enable_envvars_config=true) beat the toolkit's 0.0.0.0.
            "TS_INFERENCE_ADDRESS": self.url,
            "TS_MANAGEMENT_ADDRESS": self.url,
            "TS_METRICS_ADDRESS": f"http://{HOST}:{self.port + 2}",
            "TS_GRPC_INFERENCE_ADDRESS": HOST,
            "TS_GRPC_MANAGEMENT_ADDRESS": HOST,
            "TS_GRPC_INFERENCE_PORT": str(self.port + 3),
            "TS_GRPC_MANAGEMENT_PORT": str(self.port + 4),
            "TMPDIR": tmp, "TEMP": tmp, "TMP": tmp,
            "LOG_LOCATION": str(self.work_dir / "logs"),
            "METRICS_LOCATION": str(self.work_dir / "logs"),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        })
        return env

    def start(self, timeout: float = 180.0) -> "LocalEndpoint":
        """Check prerequisites, launch, and return once every worker has loaded the model."""
        check_java()
        check_ports_free(self.ports)
        check_no_torchserve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(self.work_dir)], cwd=self.work_dir, env=self._environment(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def ready_workers(self) -> int:
        try:
            described = _http_json(f"{self.url}/models/{MODEL_NAME}")
        except (urllib.error.URLError, OSError, ValueError):
            return 0
        models = described if isinstance(described, list) else [described]
        return sum(worker.get("status") == "READY" for model in models if isinstance(model, dict)
                   for worker in model.get("workers", []))

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServeError(f"the serving process exited during startup: see {self.log_path}\n{self.log_tail()}")
            if self.ready_workers() >= self.workers:
                return
            time.sleep(0.25)
        raise ServeError(f"the model did not load within {timeout:.0f} s: see {self.log_path}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the toolkit (it forwards to TorchServe); kill what is left of the group after ``timeout``."""
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


def serve_until_interrupted(endpoint: LocalEndpoint) -> int:
    """Block until Ctrl-C or SIGTERM (then stop cleanly) or until the server dies by itself."""

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while endpoint.running():
            time.sleep(0.5)
        print(f"error: the endpoint stopped by itself; see {endpoint.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        endpoint.stop()
        signal.signal(signal.SIGTERM, previous)
