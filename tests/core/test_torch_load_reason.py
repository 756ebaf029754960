"""Why torch.load(weights_only=True) refused a file, in dogbreed's words, for the files users actually hand over:
junk of every kind torch reads differently, a cut-short archive, an empty file and a pickled object."""

from __future__ import annotations

import io

import pytest
import torch

from dogbreed.core.errors import pickled_global, torch_load_reason
from tests.helpers.builders import pickle_of_a_gone_class

NOT_TORCH = "it is not a PyTorch file: neither torch.save's zip archive nor a pickle"


def _refusal(data: bytes) -> BaseException:
    with pytest.raises(BaseException) as refused:
        torch.load(io.BytesIO(data), weights_only=True)
    return refused.value


@pytest.mark.parametrize("data", [
    b"junk bytes here",  # torch's legacy reader looks the bytes up as a magic number: KeyError '543911541'
    b"\x80\x02junk",  # a pickle's protocol byte, then too few bytes: struct.error
    b"\x80\x02}q\x00.",  # a whole pickle of {} but not torch's: Invalid magic number
    b"garbage" * 100,  # Unsupported operand 103
    bytes(range(256)) * 4,  # Unsupported operand 0, inside torch's "Weights only load failed" text
])
def test_junk_is_not_a_pytorch_file_never_pickled_objects(data):
    assert torch_load_reason(_refusal(data)) == NOT_TORCH


@pytest.mark.parametrize("kept", [3000, 5000, 40_000])
def test_a_cut_short_archive_from_memory_or_from_a_file(tmp_path, kept):
    """torch raises three different errors for the same cut file: its reader's RuntimeError, or a seek before the
    start (ValueError from memory, OSError EINVAL from a path) when the cut is early."""
    buffer = io.BytesIO()
    torch.save({f"w{i}": torch.zeros(1000) for i in range(20)}, buffer)
    damaged = "its zip archive is incomplete or damaged: a cut-short or corrupted copy"
    assert torch_load_reason(_refusal(buffer.getvalue()[:kept])) == damaged
    path = tmp_path / "cut.pth"
    path.write_bytes(buffer.getvalue()[:kept])
    with pytest.raises(BaseException) as refused:
        torch.load(path, weights_only=True)
    assert torch_load_reason(refused.value) == damaged


def test_an_empty_file_and_an_unreadable_one():
    assert torch_load_reason(_refusal(b"")) == "the file is empty"
    assert torch_load_reason(PermissionError(13, "Permission denied")) == "[Errno 13] Permission denied"


def test_a_pickled_object_is_named_and_torchs_advice_is_left_out():
    refusal = _refusal(pickle_of_a_gone_class())
    assert pickled_global(refusal) == "gone_module.Thing"
    assert torch_load_reason(refusal) == ("it holds pickled Python objects, starting with gone_module.Thing, not only "
                                          "tensors; dogbreed loads weights only and never runs code from a weights "
                                          "file")
    assert pickled_global(RuntimeError("no global here")) is None
