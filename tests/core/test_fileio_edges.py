"""Strict JSON at its edges: NaN and infinities inside tuples and nested containers become null too."""

from __future__ import annotations

import json

from dogbreed.core.fileio import finite_json, strict_json


def test_nan_inside_a_tuple_or_a_nested_container_is_written_as_null():
    value = {"range": (0.5, float("nan")), "rows": [{"ece": float("inf")}, (1, -float("inf"))], "n": 3}
    assert strict_json(value, sort_keys=True) == (
        '{"n": 3, "range": [0.5, null], "rows": [{"ece": null}, [1, null]]}')
    assert finite_json((float("nan"), 2.0)) == [None, 2.0]
    assert json.loads(strict_json([(1.0,), []])) == [[1.0], []]


def test_an_interrupted_write_under_the_final_name_leaves_no_partial_file(tmp_path, monkeypatch):
    """Ctrl-C (or a SIGTERM turned into an exception) during the fsync: the half-written checkpoint is removed, so
    the syncer never uploads it, and the interrupt goes on."""
    import pytest

    from dogbreed.core.fileio import write_under_final_name

    def interrupted_fsync(descriptor: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dogbreed.core.fileio.os.fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_under_final_name(tmp_path / "epoch=2.ckpt", b"x" * 1000)
    assert list(tmp_path.iterdir()) == []
