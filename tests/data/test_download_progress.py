"""download_dataset reads in 1 MiB chunks and moves the progress bar by each (a dataset zip is ~1 GB: one read would
show nothing until the end), with the total from Content-Length. A stand-in urlopen serves a zip from memory."""

from __future__ import annotations

import io
import os
import zipfile

from dogbreed.data import sources


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: bool) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))} if length else {}
        self.asked: list[int | None] = []

    def read(self, size=-1):  # type: ignore[override]
        self.asked.append(size)
        return super().read(size)


class RecordingBar:
    made: list["RecordingBar"] = []

    def __init__(self, total, description, **kwargs) -> None:
        self.total, self.description, self.kwargs, self.updates = total, description, kwargs, []
        RecordingBar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        self.updates.append(n)


def zipped_dataset() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("dogImages/train/001.Affenpinscher/a.jpg", os.urandom(2 * 1024 * 1024 + 100))
    return buffer.getvalue()


def test_the_download_moves_the_bar_per_mebibyte_with_the_total(tmp_path, monkeypatch):
    data = zipped_dataset()
    responses = []

    def urlopen(url, timeout):
        assert (url, timeout) == ("https://example.com/dogImages.zip", 60)
        responses.append(FakeResponse(data, length=True))
        return responses[-1]

    RecordingBar.made.clear()
    monkeypatch.setattr(sources.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(sources, "Progress", RecordingBar)
    root = sources.download_dataset("https://example.com/dogImages.zip", tmp_path / "data")
    assert root == tmp_path / "data" / "dogImages" and (root / "train" / "001.Affenpinscher" / "a.jpg").is_file()
    (bar,) = RecordingBar.made
    assert (bar.total, bar.description, bar.kwargs) == (len(data), "downloading dogImages.zip",
                                                        {"unit": "B", "leave": True})
    assert bar.updates == [1 << 20, 1 << 20, len(data) - 2 * (1 << 20)]
    assert responses[0].asked == [1 << 20] * 4
    assert not (tmp_path / "data" / ".download.zip.part").exists()


def test_without_a_content_length_the_bar_has_no_total(tmp_path, monkeypatch):
    RecordingBar.made.clear()
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: FakeResponse(zipped_dataset(), False))
    monkeypatch.setattr(sources, "Progress", RecordingBar)
    sources.download_dataset("http://example.com/x/dogImages.zip", tmp_path / "data")
    assert RecordingBar.made[0].total is None and len(RecordingBar.made[0].updates) == 3


def test_download_without_a_url_fetches_the_public_dogimages_zip_into_data(monkeypatch, tiny_tree):
    from pathlib import Path

    from dogbreed.config.parser import parse_config

    seen = []
    monkeypatch.setattr(sources, "download_dataset", lambda url, dest: seen.append((url, dest)) or tiny_tree)
    assert sources.resolve_splits(parse_config(["--download"]).data, seed=0).train == tiny_tree / "train"
    sources.resolve_splits(parse_config(["--download", "--dataset-url", "https://example.com/d.zip", "--data-dir",
                                         "elsewhere"]).data, seed=0)
    assert seen == [("https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip", Path("data")),
                    ("https://example.com/d.zip", Path("elsewhere"))]
