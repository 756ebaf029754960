"""dogbreed.core.errors, third pass: a failure torch_load_reason does not recognise is told by its first
non-blank line, never its last (a traceback-like message's last line is the least telling)."""

from __future__ import annotations

from dogbreed.core.errors import torch_load_reason


def test_an_unrecognised_failure_is_told_by_its_first_non_blank_line():
    exc = RuntimeError("\n   the disk went away  \nwhile reading block 7\n\n")
    assert torch_load_reason(exc) == "the disk went away"
    assert torch_load_reason(RuntimeError("\n \n")) == "RuntimeError"  # nothing but blanks: the error's kind
