"""Cross-split duplicates: copies inside one split are not a leak; a group lists every copy in every split."""

from __future__ import annotations

from pathlib import Path

from dogbreed.data.duplicates import cross_split_duplicates


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_copies_within_one_split_are_not_a_leak(tmp_path):
    # two identical train files and a valid file of the same size but other bytes: the size spans two splits,
    # the content does not
    a = _write(tmp_path / "train" / "x" / "a.jpg", b"AAAA")
    b = _write(tmp_path / "train" / "y" / "b.jpg", b"AAAA")
    c = _write(tmp_path / "valid" / "x" / "c.jpg", b"CCCC")
    assert cross_split_duplicates({"train": [a, b], "valid": [c]}) == []


def test_a_leak_group_holds_every_copy_including_those_in_the_same_split(tmp_path):
    a = _write(tmp_path / "train" / "x" / "a.jpg", b"AAAA")
    b = _write(tmp_path / "train" / "y" / "b.jpg", b"AAAA")
    c = _write(tmp_path / "test" / "x" / "c.jpg", b"AAAA")
    other = _write(tmp_path / "test" / "x" / "d.jpg", b"DDDDD")
    assert cross_split_duplicates({"train": [a, b], "test": [c, other]}) == [[("train", a), ("train", b), ("test", c)]]
