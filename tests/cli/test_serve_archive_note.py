"""serve's note before it runs an archive's own code/inference.py: given for --model-data, not with --own-code and
not for a --model-dir (served with dogbreed's handlers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dogbreed.cli import serve
from dogbreed.serving import local_endpoint


class _Endpoint:
    def __init__(self, work_dir: Path, **kwargs: Any) -> None:
        self.log_path, self.url = work_dir / "log", "http://127.0.0.1"

    def check_model_source(self) -> None:
        pass

    def start(self, timeout: float) -> None:
        pass


@pytest.mark.parametrize("source, own_code, noted", [
    ("--model-data", False, True), ("--model-data", True, False), ("--model-dir", False, False),
])
def test_the_archive_code_note_comes_only_where_the_archives_code_runs(tmp_path, monkeypatch, capsys, source,
                                                                      own_code, noted):
    monkeypatch.setattr(local_endpoint, "LocalEndpoint", _Endpoint)
    monkeypatch.setattr(local_endpoint, "serve_until_interrupted", lambda endpoint, announce: 0)
    model = tmp_path / ("model.tar.gz" if source == "--model-data" else "model")
    serve.serve_command([source, str(model), "--work-dir", str(tmp_path / "work"), *(["--own-code"] * own_code)])
    note = (f"note: {model} carries code/inference.py, which the endpoint runs as Python code with your rights (that "
            "is how SageMaker serves an archive): serve only archives you trust, or pass --own-code to serve its "
            "weights with this dogbreed's own handlers")
    assert (note in capsys.readouterr().err.splitlines()) is noted
