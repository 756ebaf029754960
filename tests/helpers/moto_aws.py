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


def _accept_binary_endpoint_payloads(response_class: Any) -> None:
    """moto decodes request bodies as UTF-8 and later JSON-encodes them; endpoint payloads are image bytes.

    Read them raw and keep a base64 text copy for moto's bookkeeping (the recorder has the original bytes).
    """
    if getattr(response_class, "_dogbreed_binary_ok", False):
        return
    original = response_class.setup_class

    def setup_class(self: Any, request: Any, full_url: str, headers: Any, use_raw_body: bool | None = None) -> None:
        original(self, request, full_url, headers, use_raw_body=True)
        if isinstance(self.body, bytes):
            self.body = base64.b64encode(self.body).decode("ascii")

    response_class.setup_class = setup_class
    response_class._dogbreed_binary_ok = True


# Optional structures moto answers as ``{}`` when they were never set; AWS leaves them out, and SDK v3's resource
# classes (pydantic) refuse an empty one (``Model.get``, ``Endpoint.get``, ``EndpointConfig.get``).
_OPTIONAL_STRUCTURES = ("VpcConfig", "DataCaptureConfig")
_DESCRIBE_ACTIONS = ("describe_model", "describe_endpoint", "describe_endpoint_config")


def _describe_like_aws(response_class: Any) -> None:
    """Make moto's Describe{Model,Endpoint,EndpointConfig} answers leave unset optional structures out, as AWS
    does (only the answer changes: moto's own bookkeeping keeps its empty dicts)."""
    if getattr(response_class, "_dogbreed_describe_ok", False):
        return
    from moto.core.responses import ActionResult

    def wrap(original: Any) -> Any:
        def action(self: Any) -> Any:
            result = original(self)
            answer = result.result
            answer = dict(answer if isinstance(answer, dict) else answer.response_object)
            for key in _OPTIONAL_STRUCTURES:
                if key in answer and not answer[key]:
                    del answer[key]
            return ActionResult(answer)
        return action

    for name in _DESCRIBE_ACTIONS:
        setattr(response_class, name, wrap(getattr(response_class, name)))
    response_class._dogbreed_describe_ok = True


@contextmanager
def moto_endpoint(recording: Path | None = None) -> Iterator[str]:
    """Start moto on a free loopback port; point every boto3 client (AWS_ENDPOINT_URL) at it.

    With ``recording``, every request moto receives is appended there (moto's recorder), so a test can
    check what a client really sent rather than moto's canned answers.
    """
    saved = dict(os.environ)
    if recording is not None:
        os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)  # read when moto is first imported
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.server import ThreadedMotoServer

    _accept_binary_endpoint_payloads(SageMakerRuntimeResponse)
    _describe_like_aws(SageMakerResponse)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    if recording is not None:
        # moto reads MOTO_RECORDER_FILEPATH once, when its recorder is created (first import): a test that ran
        # earlier in this process fixed it to that test's file. Point the in-process recorder at ours.
        from moto.moto_api import recorder

        recorder._location = str(recording)
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/recorder/start-recording", method="POST"))
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION, SAGEMAKER_VALIDATE_ROLE="false")
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    try:
        yield url
    finally:
        if recording is not None:
            # The recorder is process-wide: left on, it would keep appending to this test's file, which pytest
            # removes later, and every request of a later test would then fail (500) on the missing file.
            from moto.moto_api import recorder

            recorder.stop_recording()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _entries(recording: Path) -> Iterator[dict[str, Any]]:
    """Recorded entries. moto's threaded server appends from several threads, so entries of concurrent
    requests (parallel S3 uploads) can interleave; those fragments are skipped."""
    text = recording.read_text()
    decoder = json.JSONDecoder()
    position = 0
    while (start := text.find('{"', position)) >= 0:
        try:
            entry, position = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if isinstance(entry, dict) and "url" in entry:
            yield entry


def recorded_calls(recording: Path, operation: str) -> list[dict[str, Any]]:
    """JSON bodies of the recorded AWS JSON-protocol calls to ``operation`` (e.g. 'CreateTrainingJob')."""
    calls = []
    for entry in _entries(recording):
        target = {k.lower(): v for k, v in entry.get("headers", {}).items()}.get("x-amz-target", "")
        if target.endswith(f".{operation}"):
            body = entry["body"]
            calls.append(json.loads(base64.b64decode(body) if entry.get("body_encoded") else body))
    return calls


def recorded_rest_calls(recording: Path, path_fragment: str) -> list[dict[str, Any]]:
    """Recorded REST-protocol requests whose URL contains ``path_fragment`` (method, url, headers, raw body)."""
    calls = []
    for entry in _entries(recording):
        if path_fragment in entry.get("url", ""):
            body = entry.get("body") or ""
            raw = base64.b64decode(body) if entry.get("body_encoded") else body.encode()
            calls.append({"method": entry["method"], "url": entry["url"], "headers": entry.get("headers", {}),
                          "body": raw})
    return calls


def seed_endpoint_results(url: str, bodies: list[str], content_type: str = "application/json") -> None:
    """Queue the answers moto's InvokeEndpoint gives (it cannot run a model)."""
    payload = {"results": [{"Body": b, "ContentType": content_type, "InvokedProductionVariant": "AllTraffic",
                            "CustomAttributes": ""} for b in bodies]}
    request = urllib.request.Request(f"{url}/moto-api/static/sagemaker/endpoint-results", method="POST",
                                     data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request)


def v3_session(bucket: str) -> Any:
    """A SageMaker SDK v3 session on the moto server (inside :func:`moto_endpoint`), ``bucket`` created as its
    default bucket."""
    import boto3
    from sagemaker.core.helper.session_helper import Session

    boto3.client("s3").create_bucket(Bucket=bucket)
    return Session(boto_session=boto3.Session(), default_bucket=bucket)
