"""dogbreed.core.jsontext, third pass: a bytearray (what TorchServe hands a handler) is read as UTF-8 like bytes,
never handed to json.loads, which would guess UTF-16 from its zero bytes."""

from __future__ import annotations

import json

import pytest

from dogbreed.core.jsontext import JsonTextError, parse_json


def test_utf16_in_a_bytearray_is_not_guessed_either():
    body = bytearray('{"a": 1}'.encode("utf-16-le"))
    assert json.loads(body) == {"a": 1}  # what the guess would have accepted
    with pytest.raises(JsonTextError) as refused:
        parse_json(body)
    assert str(refused.value) == "Expecting property name enclosed in double quotes at line 1, column 2"


def test_a_bytearray_with_a_byte_order_mark_is_read_as_utf8():
    assert parse_json(bytearray(b'\xef\xbb\xbf{"breed": "K\xc3\xa4rntner"}')) == {"breed": "K\u00e4rntner"}
