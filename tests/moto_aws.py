"""A local moto server standing in for AWS: the real SageMaker SDK sends real requests to it."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FAKE_ROLE = "arn:aws:iam::123456789012:role/dogbreed-notebook"
REGION = "us-east-1"


@contextmanager
def moto_endpoint(recording: Path | None = None) -> Iterator[str]:
    """Start moto on a free loopback port; point every boto3 client (AWS_ENDPOINT_URL) at it.

    With ``recording``, every request moto receives is appended there (moto's recorder), so a test can
    check what a client really sent rather than moto's canned answers.
    """
    if recording is not None:
        os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)  # read when moto is first imported
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    if recording is not None:
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/recorder/start-recording", method="POST"))
    saved = dict(os.environ)
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, SAGEMAKER_SUPPRESS_V2_WARNING="1")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    try:
        yield url
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def recorded_calls(recording: Path, operation: str) -> list[dict[str, Any]]:
    """JSON bodies of the recorded AWS JSON-protocol calls to ``operation`` (e.g. 'CreateTrainingJob')."""
    calls = []
    for line in recording.read_text().splitlines():
        entry = json.loads(line)
        target = {k.lower(): v for k, v in entry.get("headers", {}).items()}.get("x-amz-target", "")
        if target.endswith(f".{operation}"):
            body = entry["body"]
            calls.append(json.loads(base64.b64decode(body) if entry.get("body_encoded") else body))
    return calls
