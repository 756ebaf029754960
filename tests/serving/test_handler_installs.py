"""What the serving worker changes in SageMaker's inference toolkit, and what it says when it cannot: error bodies
without tracebacks, JSON bodies left as bytes for input_fn."""

from __future__ import annotations

import logging
import sys

from dogbreed.serving import handlers


def test_the_toolkits_error_handler_is_replaced_by_one_that_keeps_tracebacks_out(monkeypatch, caplog):
    from sagemaker_inference.transformer import Transformer

    monkeypatch.setattr(Transformer, "handle_error", Transformer.__dict__["handle_error"])
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.handlers"):
        assert handlers.install_client_safe_errors() is True
    assert Transformer.__dict__["handle_error"].__func__ is handlers._client_safe_error_response
    assert caplog.messages == []


def test_a_toolkit_without_handle_error_keeps_its_format_and_says_so(monkeypatch, caplog):
    from sagemaker_inference import transformer

    monkeypatch.setattr(transformer, "Transformer", type("Transformer", (), {}))
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.handlers"):
        assert handlers.install_client_safe_errors() is False
    assert caplog.messages == ["sagemaker_inference.Transformer has no handle_error: error bodies keep the toolkit "
                               "format"]


def test_without_the_toolkit_nothing_is_installed_and_nothing_said(monkeypatch, caplog):
    for name in ("sagemaker_inference", "sagemaker_inference.transformer"):
        monkeypatch.setitem(sys.modules, name, None)  # every import from the toolkit fails
    with caplog.at_level(logging.INFO, logger="dogbreed.serving.handlers"):
        assert handlers.install_client_safe_errors() is False
        assert handlers.install_raw_bodies() is False
    assert caplog.messages == []


def test_json_and_csv_bodies_reach_input_fn_undecoded(monkeypatch):
    from sagemaker_inference import content_types

    monkeypatch.setattr(content_types, "UTF8_TYPES", [content_types.JSON, content_types.CSV])
    assert handlers.install_raw_bodies() is True
    assert content_types.UTF8_TYPES == []
