"""One set of words for JSON a user sent or wrote: a request body, a model config, a --config or --classes file."""

from __future__ import annotations

import json

import pytest

from dogbreed.core.errors import ArtifactError, ConfigError
from dogbreed.core.jsontext import JsonTextError, parse_json

DEEP = "[" * 100000 + "]" * 100000


@pytest.mark.parametrize("text, reason", [
    (DEEP, "nested too deeply"),  # a RecursionError inside json: never Python's own sentence
    ("1" * 5000, "a number of more than 4300 digits"),  # Python's int-to-str guard, not its advice
    ('{"image": ', "Expecting value at line 1, column 11"),
    ('{\n  "a": 1,\n  "b" 2}', "Expecting ':' delimiter at line 3, column 7"),  # a line past the first, 1-based
    (b'{"image": "\xff\xfe"}', "not UTF-8 text: invalid start byte at byte 11"),
    (bytearray(b"\xc3"), "not UTF-8 text: unexpected end of data at byte 0"),  # what TorchServe hands a handler
])
def test_each_refusal_in_a_few_words(text, reason):
    with pytest.raises(JsonTextError) as refused:
        parse_json(text)
    assert str(refused.value) == reason
    assert isinstance(refused.value, ValueError)  # callers that catch ValueError still do


@pytest.mark.parametrize("text, value", [
    (b'\xef\xbb\xbf{"epochs": 3}', {"epochs": 3}),  # a UTF-8 byte-order mark, as Windows editors write
    ('{"breed": "K\u00e4rntner"}', {"breed": "K\u00e4rntner"}),
    ('{"breed": "K\u00e4rntner"}'.encode(), {"breed": "K\u00e4rntner"}),
    (bytearray(b"[1, 2.5, null]"), [1, 2.5, None]),
])
def test_good_json_is_parsed(text, value):
    assert parse_json(text) == value


def test_utf16_bytes_are_not_guessed():
    """json.loads would detect UTF-16 from the zero bytes; a model config or request body is UTF-8."""
    with pytest.raises(JsonTextError) as refused:
        parse_json('{"a": 1}'.encode("utf-16-le"))
    assert str(refused.value) == "Expecting property name enclosed in double quotes at line 1, column 2"
    assert json.loads('{"a": 1}'.encode("utf-16-le")) == {"a": 1}  # what the guess would have accepted


def test_every_reader_words_a_deep_nest_the_same(tmp_path):
    """--config crashed with a RecursionError traceback and --classes let it escape; the request and the model
    config quoted Python's sentence or their own. Now one reason, each with its reader's prefix and advice."""
    from dogbreed.config.parser import load_config_file
    from dogbreed.serving.artifact import read_model_config
    from dogbreed.serving.model_import import read_class_names
    from dogbreed.serving.requests import RequestError, ServingLimits, decode_json

    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    with pytest.raises(ConfigError) as config:
        load_config_file(path)
    assert str(config.value) == f"--config {path}: not a readable JSON file (nested too deeply)"
    with pytest.raises(ArtifactError) as classes:
        read_class_names(path)
    assert str(classes.value) == f"--classes {path}: starts like a JSON list but is not valid JSON (nested too deeply)"
    with pytest.raises(RequestError) as request:
        decode_json(DEEP.encode(), ServingLimits.from_env({}))
    assert (request.value.status_code, request.value.message) == (
        400, 'malformed JSON (nested too deeply): send {"image": "<base64>"} or {"instances": ["<base64>", ...]}')
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_config.json").write_text(DEEP)
    with pytest.raises(ArtifactError) as artifact:
        read_model_config(model_dir)
    assert str(artifact.value) == (
        f"{model_dir / 'model_config.json'} is not valid JSON (nested too deeply): re-export the model (python -m "
        "entry_points.train --model-dir ...), or for weights from elsewhere make the model dir with python -m "
        "entry_points.import_model")
