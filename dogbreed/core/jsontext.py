"""JSON text from a user (a request body, a model config, a --config or --classes file), parsed with one set of
reasons for a refusal. ``json.loads`` raises four kinds of error for bad input, and two of them quote Python's
internals: a RecursionError ("maximum recursion depth exceeded while decoding a JSON array from a unicode string")
for ``[[[[...`` and a ValueError about ``sys.set_int_max_str_digits`` for a 5000-digit number. Every reader says the
same thing in the same words instead."""

from __future__ import annotations

import json
import sys
from typing import Any, Union


class JsonTextError(ValueError):
    """Why the text is not usable JSON, in a few words (no advice: each caller says what to send instead)."""


def json_problem(exc: BaseException) -> str:
    """The reason ``json.loads`` refused some text, for one of the errors it raises."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text: {exc.reason} at byte {exc.start}"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return f"a number of more than {sys.get_int_max_str_digits()} digits"
    return str(exc)


def parse_json(text: Union[str, bytes, bytearray]) -> Any:
    """``json.loads`` whose every refusal is a :class:`JsonTextError` worded by :func:`json_problem`; bytes are
    read as UTF-8."""
    try:  # UTF-8 as RFC 8259 asks (a leading BOM, as Windows editors write, is skipped), never a guessed UTF-16
        return json.loads(bytes(text).decode("utf-8-sig") if isinstance(text, (bytes, bytearray)) else text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise JsonTextError(json_problem(exc)) from exc
