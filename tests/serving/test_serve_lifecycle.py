"""`serve` as a process: SIGHUP stops everything it started; a model that cannot load fails fast with its error."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import psutil
import pytest

from dogbreed.serving.local_endpoint import check_ports_free
from dogbreed.serving.packaging import build_model_archive, extract_model_archive
from tests.serving.test_inference_endpoint import free_base_port

REPO = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "entry_points.serve", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _processes_using(path: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if any(str(path) in part for part in (process.info.get("cmdline") or [])):
            found.append(process.info["pid"])
    return found


@pytest.mark.slow
def test_sighup_stops_serve_its_server_and_removes_the_work_dir(tiny_model_dir: Path) -> None:
    port = free_base_port(18580)
    serve = _serve("--model-dir", str(tiny_model_dir), "--port", str(port), "--timeout", "600")
    assert serve.stdout is not None
    line = serve.stdout.readline()  # blocks until serving (or until serve exits)
    match = re.match(r"serving http://127\.0\.0\.1:(\d+)/invocations \(work dir (.+)\); Ctrl-C to stop", line)
    assert match, line + serve.communicate(timeout=120)[1][-3000:]
    work_dir = Path(match.group(2))
    assert _processes_using(work_dir), "TorchServe should be running from the work dir"
    serve.send_signal(signal.SIGHUP)  # the terminal was closed
    _, err = serve.communicate(timeout=120)
    assert serve.returncode == 0, err[-3000:]
    assert not work_dir.exists()  # the temp dir with its model copy is gone
    assert _processes_using(work_dir) == []  # no orphaned TorchServe or worker
    check_ports_free([port, port + 1, port + 2, port + 3, port + 4])


@pytest.mark.slow
def test_archive_whose_code_does_not_import_fails_with_the_workers_error(tiny_model_dir: Path,
                                                                          tmp_path: Path) -> None:
    staged = extract_model_archive(build_model_archive(tiny_model_dir, tmp_path / "good.tar.gz"), tmp_path / "staged")
    broken_line = len((staged / "code" / "inference.py").read_text().splitlines()) + 2  # after a blank line
    with open(staged / "code" / "inference.py", "a") as handle:
        handle.write("\ndef broken(:\n")
    archive = tmp_path / "broken.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staged, arcname=".")
    serve = _serve("--model-data", str(archive), "--port", str(free_base_port(18680)), "--timeout", "600")
    _, err = serve.communicate(timeout=900)
    assert serve.returncode == 2, err[-3000:]
    lines = err.strip().splitlines()
    assert lines[0] == (f"note: {archive} carries code/inference.py, which the endpoint runs as Python code with your "
                        "rights (that is how SageMaker serves an archive): serve only archives you trust, or pass "
                        "--own-code to serve its weights with this dogbreed's own handlers")
    error = lines[-1]
    # The end of the worker's traceback, folded into one line and starting at a frame (not at the tail of an
    # earlier one); the work dir is a temp name serve picks.
    pattern = (r"error: the model failed to load in the serving worker: "
               r'File "(\S+/dogbreed-serve-[^/\s]+)/ml/model/code/inference\.py", '
               + f"line {broken_line}; " + re.escape("def broken(: ^; SyntaxError: invalid syntax; full log: ")
               + r"\1/serve\.log")
    assert re.fullmatch(pattern, error), error
    assert "Traceback" not in lines[-1][:60]
    log = Path(re.search(r"full log: (\S+serve\.log)", error).group(1))
    try:
        assert "SyntaxError: invalid syntax" in log.read_text()  # the log it points to is kept
        assert _processes_using(log.parent) == []
    finally:
        shutil.rmtree(log.parent, ignore_errors=True)


@pytest.mark.slow
def test_own_code_serves_the_same_archive_with_our_handlers(tiny_model_dir: Path, tmp_path: Path) -> None:
    staged = extract_model_archive(build_model_archive(tiny_model_dir, tmp_path / "good.tar.gz"), tmp_path / "staged")
    (staged / "code" / "inference.py").write_text("raise SystemExit('archive code ran')\n")
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staged, arcname=".")
    serve = _serve("--model-data", str(archive), "--own-code", "--port", str(free_base_port(18780)),
                   "--timeout", "600")
    assert serve.stdout is not None
    line = serve.stdout.readline()
    try:
        assert line.startswith("serving http://127.0.0.1:"), line + serve.communicate(timeout=120)[1][-3000:]
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=120)
    assert serve.returncode == 0 and "note:" not in err  # no warning: the archive's code never ran
