"""Log lines with figures that no other test read back (issue 24: every printed figure checked against a value
worked out by hand): the worker caps, the feature cache's rebuild reasons, S3 downloads, the handler's failure line."""

from __future__ import annotations

import logging

import pytest
import torch


def _messages(caplog, name: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith(name)]


@pytest.mark.parametrize("workers, batches, line", [
    (8, 3, "8 DataLoader workers capped at 3 for the valid split: it has 3 batches per epoch"),
    (4, 1, "4 DataLoader workers capped at 1 for the valid split: it has 1 batch per epoch"),
    (4, 0, "4 DataLoader workers capped at 1 for the valid split: it has 0 batches per epoch"),
])
def test_dataloader_workers_beyond_the_batches_are_capped_in_one_line(caplog, workers, batches, line):
    from dogbreed.data.datamodule import LoaderSettings

    with caplog.at_level(logging.INFO, logger="dogbreed"):
        capped = LoaderSettings(num_workers=workers, pin_memory=True).for_batches(batches, "valid")
    assert (capped.num_workers, capped.pin_memory) == (max(1, batches), True)
    assert _messages(caplog, "dogbreed.data") == [line]


def test_as_many_workers_as_batches_are_kept_silently(caplog):
    from dogbreed.data.datamodule import LoaderSettings

    with caplog.at_level(logging.INFO, logger="dogbreed"):
        settings = LoaderSettings(num_workers=3)
        assert settings.for_batches(3, "train") is settings
        assert LoaderSettings(num_workers=1).for_batches(0, "test").num_workers == 1
    assert _messages(caplog, "dogbreed.data") == []


def test_a_feature_cache_is_rebuilt_saying_why(tmp_path, caplog):
    from dogbreed.training.head_training import CachedFeatures, load_features, save_features

    path = tmp_path / "valid.pt"
    cached = CachedFeatures(features=torch.ones(4, 1, 8), labels=torch.tensor([0, 1, 0, 1]))
    save_features(path, "key-a", cached)
    with caplog.at_level(logging.WARNING, logger="dogbreed"):
        assert load_features(path, "key-b", count=5, views=1) is None
        path.write_bytes(b"")
        assert load_features(path, "key-a", count=4, views=1) is None
    assert _messages(caplog, "dogbreed.training") == [
        f"feature cache {path} does not match (key, feature shape, label count): rebuilding it",
        f"feature cache {path} is unreadable (the file is empty): rebuilding it"]


class _Context:
    def __init__(self) -> None:
        self.status: tuple[int, str] | None = None
        self.content_type: tuple[int, str] | None = None

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = (code, phrase)

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_type = (index, value)


def test_a_failed_request_is_logged_whole_and_answered_without_internals(caplog):
    import json
    from types import SimpleNamespace

    from dogbreed.serving.handlers import _client_safe_error_response

    context = _Context()
    with caplog.at_level(logging.ERROR, logger="dogbreed"):
        body = _client_safe_error_response(context, SimpleNamespace(status_code=400, message="empty image:\n  send"),
                                           "Traceback: in input_fn")
        assert context.status == (400, "empty image: send")  # the HTTP reason phrase on one line
        crash = _client_safe_error_response(context, RuntimeError("CUDA error: out of memory"), "Traceback: in model")
    assert json.loads(body[0]) == {"code": 400, "message": "empty image:\n  send"}
    assert json.loads(crash[0]) == {"code": 500, "message": "internal error while serving the request: the endpoint "
                                                            "logs have the details"}
    assert context.status == (500, "internal error while serving the request: the endpoint logs have the details")
    assert context.content_type == (0, "application/json")
    assert _messages(caplog, "dogbreed.serving") == [
        "request failed with HTTP 400: empty image:\n  send\nTraceback: in input_fn",
        "request failed with HTTP 500: \nTraceback: in model"]  # the exception itself is in the trace
